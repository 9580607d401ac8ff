package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"spawnd/bench/loadgen"
)

// straceResult is what -strace counted: per process role, each system
// call's count over n connections.
type straceResult struct {
	n       int                       // connections served while traced
	threads map[string]int            // role: threads traced
	calls   map[string]map[string]int // role, system call: calls
}

// syscalls traces every thread of spawnd's executor and of its listener,
// each with its own `strace -c`, while the load generator makes n
// connections at c=16, and returns the counts. Threads are attached one
// by one (-p TID for each in /proc/PID/task), not with -f, so that the
// commands the executor forks are not counted: only the daemons' own
// calls. The Go runtime has started its threads by then (the runs before).
func (b *bench) syscalls(s *server, n int) (*straceResult, error) {
	strace, ok := lookPath("strace")
	if !ok {
		return nil, fmt.Errorf("not installed (apt-get install strace)")
	}
	res := &straceResult{n: n, threads: map[string]int{}, calls: map[string]map[string]int{}}
	type tracer struct {
		role, out string
		p         *proc
	}
	var tracers []tracer
	stopAll := func() {
		for _, t := range tracers {
			t.p.cmd.Process.Signal(syscall.SIGINT)
		}
		for _, t := range tracers {
			select {
			case <-t.p.done:
			case <-time.After(10 * time.Second):
				stop(t.p)
			}
		}
	}
	for _, st := range s.daemons() {
		role := "listener"
		if st.pid == s.proc.cmd.Process.Pid {
			role = "executor"
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", st.pid))
		if err != nil {
			stopAll()
			return nil, err
		}
		out := filepath.Join(b.env.tmp, "strace-"+role)
		args := []string{"-c", "-q", "-o", out}
		for _, t := range tasks {
			args = append(args, "-p", t.Name())
		}
		p, err := b.env.reg.start("strace-"+role, exec.Command(strace, args...))
		if err != nil {
			stopAll()
			return nil, err
		}
		tracers = append(tracers, tracer{role, out, p})
		res.threads[role] = len(tasks)
		// Attached once every thread's TracerPid is strace.
		deadline := time.Now().Add(10 * time.Second)
		for !traced(st.pid, p.cmd.Process.Pid) {
			if time.Now().After(deadline) || p.exited() {
				stopAll()
				return nil, fmt.Errorf("strace did not attach to the %s (pid %d)", role, st.pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var stdout bytes.Buffer
	cmd := exec.Command(b.load, "-addr", s.addr, "-c", "16", "-d", "5m", "-n", strconv.Itoa(n), "-expect", `ok\n`)
	cmd.Stdout = &stdout
	p, err := b.env.reg.start("load", cmd)
	if err == nil {
		select {
		case <-p.done:
		case <-time.After(6 * time.Minute):
			stop(p)
		}
	}
	stopAll()
	if err != nil {
		return nil, err
	}
	var r loadgen.Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Conns != n || r.Failures > 0 {
		return nil, fmt.Errorf("load under strace: %d of %d connections, %d failed (%s) %v", r.Conns, n, r.Failures, r.FirstError, err)
	}
	for _, t := range tracers {
		calls, err := parseStraceC(readString(t.out))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", t.out, err)
		}
		res.calls[t.role] = calls
	}
	return res, nil
}

// traced reports whether tracer traces every thread of pid.
func traced(pid, tracer int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if !strings.Contains(string(b), "\nTracerPid:\t"+strconv.Itoa(tracer)+"\n") {
			return false
		}
	}
	return len(tasks) > 0
}

// parseStraceC reads strace -c's table: "% time seconds usecs/call calls
// errors syscall", the errors column empty where there were none.
func parseStraceC(text string) (map[string]int, error) {
	calls := map[string]int{}
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			return nil, fmt.Errorf("line %q: %v", l, err)
		}
		calls[f[len(f)-1]] = n
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("no system calls in %q", text)
	}
	return calls, nil
}

// report writes, per process, each system call's calls per connection,
// most first, and the total.
func (r *straceResult) report(p func(string, ...any)) {
	p("### spawnd system calls per connection")
	p("")
	p("`strace -c` on every thread of each process (`-p TID` each; the commands the executor forks are not traced), "+
		"over %d connections at c=16 after the timed runs. Calls per connection; ptrace slows both processes, so only the counts mean anything.", r.n)
	p("")
	for _, role := range []string{"executor", "listener"} {
		calls := r.calls[role]
		if calls == nil {
			continue
		}
		names := make([]string, 0, len(calls))
		total := 0
		for name, c := range calls {
			names = append(names, name)
			total += c
		}
		sort.Slice(names, func(i, j int) bool {
			if calls[names[i]] != calls[names[j]] {
				return calls[names[i]] > calls[names[j]]
			}
			return names[i] < names[j]
		})
		var cells []string
		for _, name := range names {
			if per := float64(calls[name]) / float64(r.n); per >= 0.05 {
				cells = append(cells, fmt.Sprintf("%s %.2f", name, per))
			}
		}
		p("- **%s** (%d threads): %.2f calls per connection: %s", role, r.threads[role], float64(total)/float64(r.n), strings.Join(cells, ", "))
	}
	p("")
}
