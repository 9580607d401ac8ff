// Command runner measures spawnd side by side with minimal C and Go
// accept+fork+exec servers and the peers that are installed (ucspi-tcp
// tcpserver, xinetd, Postfix spawn(8) under its own master(8)), all
// serving `/bin/echo ok` as nobody on loopback, beside the raw spawn
// ceiling (bench/ceiling: no socket at all), and prints the result as
// markdown tables. With -strace N it also counts the system calls of
// spawnd's executor and listener per connection. See bench/README.md.
//
//	go run ./bench/runner -bin bin
//
// Progress goes to standard error, the report to standard output. Every
// process the runner starts is stopped, by PID, when it ends, when it is
// interrupted, and when it runs over its time limit.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"spawnd/bench/loadgen"
)

// Paths of the runner's sources, relative to the repository root, which is
// where `make bench` runs it.
const (
	cserverSrc = "bench/cserver/cserver.c"
	loadPkg    = "./bench/load"
	ceilingPkg = "./bench/ceiling"
	goPkg      = "./bench/goserver"
)

// sample is one measured run of one server at one concurrency.
type sample struct {
	res   loadgen.Result
	cpuUS float64 // the daemon's CPU time per connection, microseconds
}

// rssKB is the memory of one spawnd process, in KiB.
type rssKB struct{ idle, loaded, after int }

type bench struct {
	env      *env
	load     string // the load generator binary
	dur      time.Duration
	maxConns int
	samples  map[string]map[int][]sample // server key, concurrency
	rss      map[string]*rssKB           // "executor", "listener"
	strace   *straceResult               // -strace: spawnd's system calls per connection
}

func main() {
	bin := flag.String("bin", "bin", "`directory` holding spawnd and spawnd-listener")
	runs := flag.Int("runs", 3, "repeats of every measurement")
	dur := flag.Duration("d", 3*time.Second, "length of one measurement")
	concList := flag.String("c", "1,16,64", "concurrency levels, comma separated")
	maxConns := flag.Int("n", 100000, "most connections in one measurement")
	only := flag.String("only", "", "measure only these servers, comma separated: ceiling,cserver,goserver,tcpserver,xinetd,postfix,spawnd")
	straceN := flag.Int("strace", 0, "after the runs, count spawnd's system calls over this many connections at c=16 with strace -c (0: not)")
	limit := flag.Duration("limit", 0, "stop everything and fail after this long (0: 1.5 times the planned time plus a minute)")
	keep := flag.Bool("keep", false, "keep the temporary directory with the configurations and logs")
	flag.Parse()

	var concs []int
	for _, f := range strings.Split(*concList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fatalf("-c %s: not a list of positive numbers", *concList)
		}
		concs = append(concs, c)
	}
	if *runs < 1 || *dur <= 0 || *maxConns < 1 {
		fatalf("-runs, -d and -n must be positive")
	}
	if os.Geteuid() != 0 {
		fatalf("must run as root: every server switches to the user nobody")
	}
	if _, err := os.Stat(cserverSrc); err != nil {
		fatalf("%s not found: run from the repository root (make bench)", cserverSrc)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		fatalf("no user nobody: %v", err)
	}
	group := nobody.Gid
	if g, err := user.LookupGroupId(nobody.Gid); err == nil {
		group = g.Name
	}
	tmp, err := os.MkdirTemp("", "spawnd-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	// The servers' unprivileged processes must reach their files below.
	if err := os.Chmod(tmp, 0o755); err != nil {
		fatalf("%v", err)
	}

	reg := &registry{}
	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			reg.stopAll()
			if *keep {
				logf("kept %s", tmp)
			} else {
				os.RemoveAll(tmp)
			}
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		logf("%v: stopping every server", s)
		cleanup()
		os.Exit(130)
	}()

	b := &bench{
		env:      &env{tmp: tmp, bin: *bin, reg: reg, nobody: nobody, group: group},
		load:     filepath.Join(tmp, "load"),
		dur:      *dur,
		maxConns: *maxConns,
		samples:  map[string]map[int][]sample{},
		rss:      map[string]*rssKB{},
	}
	planned := time.Duration(11**runs*len(concs)) * (*dur + 300*time.Millisecond)
	if *limit == 0 {
		*limit = planned*3/2 + time.Minute
	}
	time.AfterFunc(*limit, func() {
		logf("over the time limit of %s: stopping every server", *limit)
		cleanup()
		os.Exit(1)
	})

	if *straceN > 0 {
		*limit += 5 * time.Minute
	}
	code := b.run(concs, *runs, *only, planned, *straceN)
	cleanup()
	os.Exit(code)
}

func (b *bench) run(concs []int, runs int, only string, planned time.Duration, straceN int) int {
	if out, err := exec.Command("go", "build", "-o", b.load, loadPkg).CombinedOutput(); err != nil {
		logf("go build %s: %v: %s", loadPkg, err, out)
		return 1
	}
	started := time.Now()
	busy, steal := cpuBusy(time.Second)
	quiet := fmt.Sprintf("CPU busy in the second before start %.0f%% (steal %.0f%%), load average %s", busy, steal, loadAvg())
	logf("planned measuring time %s; %s", planned.Round(time.Second), quiet)

	starts := []struct {
		name  string
		start func() ([]*server, error)
	}{
		{"ceiling", func() ([]*server, error) { return startCeiling(b.env, ceilingPkg) }},
		{"cserver", func() ([]*server, error) { return startCServer(b.env, cserverSrc) }},
		{"goserver", func() ([]*server, error) { return startGoServer(b.env, goPkg) }},
		{"tcpserver", func() ([]*server, error) { return startTCPServer(b.env) }},
		{"xinetd", func() ([]*server, error) { return startXinetd(b.env) }},
		{"postfix", func() ([]*server, error) { return startPostfix(b.env) }},
		{"spawnd", func() ([]*server, error) { return startSpawnd(b.env) }},
	}
	var servers []*server
	var notes []string
	code := 0
	for _, s := range starts {
		if only != "" && !strings.Contains(","+only+",", ","+s.name+",") {
			continue
		}
		got, err := s.start()
		if _, skip := err.(skipError); skip {
			notes = append(notes, fmt.Sprintf("%s: skipped: %v", s.name, err))
			logf("%s: skipped: %v", s.name, err)
			continue
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: failed to start: %v", s.name, err))
			logf("%s: failed to start: %v", s.name, err)
			code = 1
			continue
		}
		for _, sv := range got {
			if sv.direct != nil {
				servers = append(servers, sv)
				b.samples[sv.key] = map[int][]sample{}
				continue
			}
			logf("%s: serving on %s (pid %d)", sv.key, sv.addr, sv.proc.cmd.Process.Pid)
			// Warm up: first connections fill caches and start Postfix's processes.
			loadgen.Run(loadgen.Config{Addr: sv.addr, Concurrency: 4, Duration: 500 * time.Millisecond,
				MaxConns: 200, Expect: "ok\n", ConnTimeout: 5 * time.Second})
			servers = append(servers, sv)
			b.samples[sv.key] = map[int][]sample{}
		}
	}
	if len(servers) == 0 {
		logf("nothing to measure")
		return 1
	}
	b.memory(servers, func(r *rssKB, kb int) { r.idle = kb })

	for rep := 1; rep <= runs; rep++ {
		for _, c := range concs {
			for _, s := range servers {
				if s.dead != "" {
					continue
				}
				sm, err := b.measure(s, c)
				if b.env.reg.stopping() {
					time.Sleep(time.Hour) // the signal handler or the time limit is ending the program
				}
				if s.proc != nil && s.proc.exited() {
					s.dead = fmt.Sprintf("exited during the runs (%s)", s.proc.cmd.ProcessState)
				} else if err != nil {
					s.dead = err.Error()
				}
				if err != nil || s.dead != "" {
					logf("run %d/%d c=%d %s: stopped measuring: %s", rep, runs, c, s.key, s.dead)
					code = 1
					continue
				}
				b.samples[s.key][c] = append(b.samples[s.key][c], sm)
				r := sm.res
				logf("run %d/%d c=%-3d %-12s %6.0f conn/s  p50 %6.2f  p99 %7.2f ms  daemon CPU %5.0f µs/conn  %d conns, %d failed %s",
					rep, runs, c, s.key, r.ConnPerSec, r.P50, r.P99, sm.cpuUS, r.Conns, r.Failures, r.FirstError)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	time.Sleep(time.Second)
	b.memory(servers, func(r *rssKB, kb int) { r.after = kb })
	if straceN > 0 {
		for _, s := range servers {
			if s.key == "spawnd" && s.dead == "" {
				res, err := b.syscalls(s, straceN)
				if err != nil {
					notes = append(notes, fmt.Sprintf("strace: %v", err))
					logf("strace: %v", err)
					code = 1
				}
				b.strace = res
			}
		}
	}
	for _, s := range servers {
		if s.dead != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", s.key, s.dead))
		}
		for _, c := range concs {
			for _, sm := range b.samples[s.key][c] {
				if sm.res.Failures > 0 {
					notes = append(notes, fmt.Sprintf("%s: c=%d: %d failed connections, the first: %s",
						s.key, c, sm.res.Failures, sm.res.FirstError))
				}
			}
		}
	}

	b.report(servers, concs, runs, notes, started, quiet)
	return code
}

// measure runs the load generator, as its own process, against s at
// concurrency c, and reads the daemon's CPU time before and after.
func (b *bench) measure(s *server, c int) (sample, error) {
	before := map[string]uint64{}
	for _, st := range s.daemons() {
		before[st.key()] = st.ticks
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(b.load, "-addr", s.addr, "-c", strconv.Itoa(c), "-d", b.dur.String(),
		"-n", strconv.Itoa(b.maxConns), "-expect", `ok\n`)
	if s.direct != nil {
		cmd = exec.Command(s.direct[0], append(s.direct[1:], "-d", b.dur.String(), "-n", strconv.Itoa(b.maxConns))...)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p, err := b.env.reg.start("load", cmd)
	if err != nil {
		return sample{}, err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(b.dur + 30*time.Second)
wait:
	for {
		select {
		case <-p.done:
			break wait
		case <-tick.C:
			b.memory([]*server{s}, func(r *rssKB, kb int) { r.loaded = max(r.loaded, kb) })
		case <-timeout:
			stop(p)
			return sample{}, fmt.Errorf("load generator still running after %s", b.dur+30*time.Second)
		}
	}
	var ticks uint64
	for _, st := range s.daemons() {
		ticks += st.ticks - before[st.key()] // a process new since then counts whole
	}
	var r struct {
		loadgen.Result
		CPUUS *float64 `json:"cpu_us"` // a direct measurement's own
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return sample{}, fmt.Errorf("%s: %s %s", p.name, p.cmd.ProcessState, strings.TrimSpace(stderr.String()))
	}
	sm := sample{res: r.Result}
	if r.CPUUS != nil {
		sm.cpuUS = *r.CPUUS
	} else if ok := r.Conns - r.Failures; ok > 0 {
		sm.cpuUS = float64(ticks) * clockTick * 1e6 / float64(ok)
	}
	return sm, nil
}

// memory reads VmRSS of the processes of every server that reports memory
// (spawnd's executor and listener) and hands each to set.
func (b *bench) memory(servers []*server, set func(*rssKB, int)) {
	for _, s := range servers {
		if s.memory == nil || s.dead != "" {
			continue
		}
		for _, st := range s.memory() {
			role := "listener"
			if st.pid == s.proc.cmd.Process.Pid {
				role = "executor"
			}
			kb, err := rssKiB(st.pid)
			if err != nil {
				continue
			}
			if b.rss[role] == nil {
				b.rss[role] = &rssKB{}
			}
			set(b.rss[role], kb)
		}
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	logf(format, args...)
	os.Exit(2)
}

// versions names the installed peer packages, where dpkg can tell.
func versions() string {
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Package} ${Version}, ", "postfix", "xinetd", "ucspi-tcp").Output()
	return strings.TrimSuffix(string(out), ", ")
}
