package test

// Issue 13, reload in process: SIGHUP loads the configuration again in the
// same process, without re-executing it: new requests go by the new
// configuration, running commands keep their old time limit, the sockets
// of services that stayed stay open, those of removed services close.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReloadUnderLoad: 2,000 connections at concurrency 16 to a TCP and a
// unix service that every configuration has, across 20 reloads that add
// a service, remove the one the reload before added, change the command
// of another and the time limit of a slow one. No connection to the
// services that exist throughout fails; after each reload the changed
// service answers with its new command; a removed service's port is
// closed; each slow command, started just before a reload, is killed at
// the limit it started with, not the next one.
func TestReloadUnderLoad(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	tcp, chg, slow := loopback(t), loopback(t), loopback(t)
	sock := filepath.Join(tempDir(t), "stable.sock")
	extras := make([]string, 21)
	for i := range extras {
		extras[i] = loopback(t)
	}
	limits := []int{2, 4}
	probe, ready := probeService(t)
	conf := func(k int) string {
		return probe + fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", tcp) +
			sock + " unix - n n - 0 spawnd user=nobody argv=/bin/echo ok\n" +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo word%d\n", chg, k) +
			fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=%d user=nobody argv=/bin/sh -c { echo go; exec /bin/sleep 30.%s }\n", slow, limits[k%2], m) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo extra%d\n", extras[k], k)
	}
	d := StartServe(t, Config{Master: conf(0), Args: []string{"-v"}, Ready: []string{ready}})
	pid := d.Pid()

	var done, failed atomic.Int64
	var first atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Minute)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += 16 {
				select {
				case <-stop:
					if done.Load() >= 2000 {
						return
					}
				default:
				}
				network, addr := "tcp", tcp
				if i%2 == 1 {
					network, addr = "unix", sock
				}
				got, err := Talk(network, addr, "", 30*time.Second)
				if err == nil && got != "ok\n" {
					err = fmt.Errorf("got %q", got)
				}
				if err != nil && failed.Add(1) == 1 {
					first.Store(fmt.Errorf("%s %s: %w", network, addr, err))
				}
				done.Add(1)
			}
		}()
	}

	type slowRun struct {
		limit int
		took  time.Duration
	}
	slows := make([]slowRun, 20)
	var slowWG sync.WaitGroup
	for k := 1; k <= 20; k++ {
		slowWG.Add(1)
		started := make(chan struct{})
		go func(i, limit int) {
			defer slowWG.Done()
			t0 := time.Now()
			defer close(started)
			c, err := net.DialTimeout("tcp", slow, 10*time.Second)
			if err != nil {
				slows[i] = slowRun{limit, -1}
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b := make([]byte, 3)
			if n, _ := io.ReadFull(c, b); n != 3 {
				slows[i] = slowRun{limit, -1}
				return
			}
			started <- struct{}{}
			io.Copy(io.Discard, c)
			slows[i] = slowRun{limit, time.Since(t0)}
		}(k-1, limits[(k-1)%2])
		<-started // the command runs before the reload that changes its limit
		os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(conf(k)), 0o644)
		d.Signal(syscall.SIGHUP)
		if !waitFor(20*time.Second, func() bool { return strings.Count(d.ReadLog(), "reload: configuration is valid") >= k }) {
			t.Fatalf("reload %d not logged:\n%s", k, d.ReadLog())
		}
		want := fmt.Sprintf("word%d\n", k)
		var got string
		if !waitFor(10*time.Second, func() bool { got, _ = Talk("tcp", chg, "", 5*time.Second); return got == want }) {
			t.Fatalf("reload %d: changed service answers %q, want %q", k, got, want)
		}
		if got, err := talkRetry("tcp", extras[k], "", 10*time.Second); got != fmt.Sprintf("extra%d\n", k) {
			t.Fatalf("reload %d: added service answers %q, %v", k, got, err)
		}
		if c, err := net.DialTimeout("tcp", extras[k-1], 2*time.Second); err == nil {
			c.Close()
			t.Errorf("reload %d: the removed service's port %s still accepts", k, extras[k-1])
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	slowWG.Wait()
	t.Logf("%d connections across 20 reloads, %d failed", done.Load(), failed.Load())
	if done.Load() < 2000 || failed.Load() != 0 {
		t.Errorf("%d connections, %d failed, first: %v", done.Load(), failed.Load(), first.Load())
	}
	for i, s := range slows {
		lim := time.Duration(s.limit) * time.Second
		if s.took < lim-300*time.Millisecond || s.took > lim+2*time.Second {
			t.Errorf("slow command %d, limit %v when it started: end of file after %v", i+1, lim, s.took)
		}
	}
	if d.Pid() != pid || !alive(pid) {
		t.Errorf("spawnd %d is gone", pid)
	}
	// The client sees end of file at the kill; the process takes a moment
	// to die, and the executor another to reap it.
	if !waitFor(2*time.Second, func() bool { return len(aliveWith(m)) == 0 }) {
		t.Errorf("%d slow commands outlived their limits by 2s", len(aliveWith(m)))
	}
	if !waitFor(2*time.Second, func() bool { return len(Zombies(pid)) == 0 }) {
		t.Errorf("zombies 2s after the last command ended: %v", Zombies(pid))
	}
	for _, l := range strings.Split(d.ReadLog(), "\n") {
		if strings.Contains(l, "warning:") && !strings.Contains(l, "command time limit exceeded") {
			t.Errorf("warning other than a time limit: %s", l)
		}
	}
}

// TestCommandsOutliveBinds: a command dies of its parent-death signal when
// the thread that forked it ends, so the executor forks on the main
// thread only, which ends with the process (executor invariant 7). Each
// of 5 reloads binds a new unix socket on a thread that then ends
// (bind0666), after 4 more commands have started; at the end all 20
// commands still run and none of their clients has seen end of file. The
// test fails when the loop may run on other threads (the main goroutine
// not locked to the main thread): bind0666's goroutine then takes, and
// ends, a thread the loop forked on.
func TestCommandsOutliveBinds(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	tcp, dir := loopback(t), tempDir(t)
	probe, ready := probeService(t)
	sock := func(k int) string { return filepath.Join(dir, fmt.Sprintf("b%d.sock", k)) }
	conf := func(k int) string {
		s := probe + fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sh -c { echo go; exec /bin/sleep 30.%s }\n", tcp, m)
		for i := 1; i <= k; i++ {
			s += sock(i) + " unix - n n - - spawnd user=nobody argv=/bin/echo bound\n"
		}
		return s
	}
	d := StartServe(t, Config{Master: conf(0), Ready: []string{ready}})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for k := 1; k <= 5; k++ {
		for range 4 {
			c, err := net.DialTimeout("tcp", tcp, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if b := make([]byte, 3); func() bool { n, _ := io.ReadFull(c, b); return n != 3 }() {
				t.Fatalf("reload %d: a command did not start", k)
			}
		}
		os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(conf(k)), 0o644)
		d.Signal(syscall.SIGHUP)
		if !waitFor(20*time.Second, func() bool { return strings.Count(d.ReadLog(), "reload: configuration is valid") >= k }) {
			t.Fatalf("reload %d not logged:\n%s", k, d.ReadLog())
		}
		if got, err := talkRetry("unix", sock(k), "", 10*time.Second); got != "bound\n" {
			t.Fatalf("reload %d: the new unix service answers %q, %v", k, got, err)
		}
	}
	if n := len(aliveWith(m)); n != len(conns) {
		t.Errorf("%d of %d commands still run after the reloads", n, len(conns))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client %d: read %d, %v; want its command still running", i, n, err)
		}
	}
}
