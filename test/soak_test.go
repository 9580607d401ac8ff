package test

// Issue 7, load: the soak. Only with SPAWND_SOAK=1 (make soak), not in
// make test: 100,000 connections at concurrency 64 across three services
// (echo over TCP, echo over a unix socket, cat of a small payload over
// TCP). Zero connections may fail; afterwards the executor's and the
// listener's descriptors are back to their baseline, their resident
// memory is back near it, and no zombie is left. The figures are logged.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// soakConnections and soakConcurrency are the figures;
// SPAWND_SOAK_N overrides the count for a shorter run.
const (
	soakConnections = 100000
	soakConcurrency = 64
)

func TestSoak(t *testing.T) {
	if os.Getenv("SPAWND_SOAK") != "1" {
		t.Skip("the soak runs only with SPAWND_SOAK=1 (make soak)")
	}
	requireRoot(t)
	n := soakConnections
	if s := os.Getenv("SPAWND_SOAK_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	echo, cat := loopback(t), loopback(t)
	sock := filepath.Join(tempDir(t), "soak.sock")
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - 0 spawnd user=nobody argv=/bin/echo ok\n", echo) +
			sock + " unix - n n - 0 spawnd user=nobody argv=/bin/echo ok\n" +
			fmt.Sprintf("%s inet n n n - 0 spawnd user=nobody argv=/bin/cat\n", cat) + probe,
		Ready: []string{ready},
	})
	payload := strings.Repeat("soak payload line\n", 64) // 1,152 bytes
	job := func(i int) error {
		network, addr, in, want := "tcp", echo, "", "ok\n"
		switch i % 3 {
		case 1:
			network, addr = "unix", sock
		case 2:
			addr, in, want = cat, payload, payload
		}
		got, err := Talk(network, addr, in, 60*time.Second)
		if err == nil && got != want {
			err = fmt.Errorf("%s %s: %d bytes, want %d", network, addr, len(got), len(want))
		}
		return err
	}
	// Warm-up, then the baseline once nothing runs.
	if r := load(3000, soakConcurrency, 5*time.Minute, job); r.failed > 0 {
		t.Fatalf("warm-up: %d of %d failed, first: %v", r.failed, r.done, r.first)
	}
	lpid := d.Listener()
	waitQuiet(d, 30*time.Second)
	time.Sleep(time.Second)
	efd, lfd := countFds(d.Pid()), countFds(lpid)
	erss, lrss := rssKiB(d.Pid()), rssKiB(lpid)
	ecpu, lcpu := cpuTicks(d.Pid()), cpuTicks(lpid)
	t.Logf("baseline: executor %d fds %d KiB, listener %d fds %d KiB", efd, erss, lfd, lrss)

	// Sample the peaks while the soak runs.
	stop := make(chan struct{})
	peaks := make(chan [4]int, 1)
	go func() {
		var p [4]int
		for {
			select {
			case <-stop:
				peaks <- p
				return
			case <-time.After(500 * time.Millisecond):
			}
			p[0] = max(p[0], OpenFds(d.Pid()))
			p[1] = max(p[1], OpenFds(lpid))
			p[2] = max(p[2], rssKiB(d.Pid()))
			p[3] = max(p[3], rssKiB(lpid))
		}
	}()
	r := load(n, soakConcurrency, 45*time.Minute, job)
	close(stop)
	peak := <-peaks
	t.Logf("soak: %d connections in %v (%.0f/s) at concurrency %d on %d CPUs, %d failed",
		r.done, r.took.Round(time.Millisecond), float64(r.done)/r.took.Seconds(), soakConcurrency, runtime.NumCPU(), r.failed)
	t.Logf("peaks during the soak: executor %d fds %d KiB, listener %d fds %d KiB", peak[0], peak[2], peak[1], peak[3])
	t.Logf("CPU during the soak: executor %.1fs, listener %.1fs",
		float64(cpuTicks(d.Pid())-ecpu)/100, float64(cpuTicks(lpid)-lcpu)/100)
	if r.failed > 0 || r.done != n {
		t.Errorf("%d of %d done, %d failed, first: %v", r.done, n, r.failed, r.first)
	}
	if !waitQuiet(d, 60*time.Second) {
		t.Errorf("commands still running after the soak: %v", commands(d))
	}
	time.Sleep(2 * time.Second)
	e, l := settleFds(d.Pid(), efd), settleFds(lpid, lfd)
	erss2, lrss2 := rssKiB(d.Pid()), rssKiB(lpid)
	t.Logf("after: executor %d fds %d KiB, listener %d fds %d KiB", e, erss2, l, lrss2)
	if e > efd || l > lfd {
		t.Errorf("descriptors not back to baseline: executor %d -> %d, listener %d -> %d", efd, e, lfd, l)
	}
	// Go does not return every freed page at once: back near the
	// baseline means within 8 MiB or half again, whichever is more.
	for _, c := range []struct {
		who           string
		before, after int
	}{{"executor", erss, erss2}, {"listener", lrss, lrss2}} {
		if c.after > max(c.before+8<<10, c.before*3/2) {
			t.Errorf("%s resident memory %d KiB -> %d KiB: not back to baseline", c.who, c.before, c.after)
		}
	}
	if z := Zombies(d.Pid()); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	if d.Listener() != lpid {
		t.Errorf("listener changed during the soak: %d -> %d", lpid, d.Listener())
	}
	if w := strings.Count(d.ReadLog(), "warning:"); w > 0 {
		t.Errorf("%d warnings logged during the soak", w)
	}
}
