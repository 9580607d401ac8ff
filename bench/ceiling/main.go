// Command ceiling measures the raw spawn ceiling of this machine: how many
// `/bin/echo ok` commands per second a Go program starts and reaps with
// syscall.ForkExec as nobody (credentials and setsid, as spawnd does),
// output to /dev/null, with a fixed number in flight. It prints one JSON
// object in the load generator's format (bench/loadgen), so that the
// runner puts it beside the servers' connections per second; latency is
// from the fork to the reap, and cpu_us the program's own CPU time per
// command (children excluded).
//
//	ceiling -inflight 2 -d 3s -n 100000 -uid 65534 -gid 65534
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
)

func main() {
	inflight := flag.Int("inflight", 1, "commands in flight at once")
	dur := flag.Duration("d", 3*time.Second, "no command is started after this much time")
	max := flag.Int("n", 100000, "most commands in total")
	uid := flag.Int("uid", 65534, "the commands' uid")
	gid := flag.Int("gid", 65534, "the commands' gid and only group")
	flag.Parse()
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	argv := []string{"/bin/echo", "ok"}
	attr := &syscall.ProcAttr{
		Env:   []string{"PATH=/usr/bin:/bin"},
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd()},
		Sys: &syscall.SysProcAttr{Setsid: true,
			Credential: &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*gid), Groups: []uint32{uint32(*gid)}}},
	}
	var (
		mu       sync.Mutex
		lat      []float64
		failures int
		first    string
		started  int
	)
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for range *inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if started >= *max || time.Now().After(deadline) {
					mu.Unlock()
					return
				}
				started++
				mu.Unlock()
				t := time.Now()
				pid, err := syscall.ForkExec(argv[0], argv, attr)
				var ws syscall.WaitStatus
				if err == nil {
					_, err = syscall.Wait4(pid, &ws, 0, nil)
				}
				mu.Lock()
				if err != nil || ws.ExitStatus() != 0 {
					failures++
					if first == "" {
						first = fmt.Sprintf("%v %v", err, ws)
					}
				} else {
					lat = append(lat, float64(time.Since(t).Microseconds())/1000)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e3
	}
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	out := map[string]any{
		"addr": "fork+exec", "concurrency": *inflight, "seconds": secs, "conns": started, "failures": failures,
		"first_error": first, "conn_per_s": float64(len(lat)) / secs,
		"p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": pct(1),
		"cpu_us": 0.0,
	}
	if len(lat) > 0 {
		out["cpu_us"] = (cpu(after) - cpu(before)) / float64(len(lat))
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
