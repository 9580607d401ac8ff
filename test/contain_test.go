package test

// Issue 12, parts 3 to 5: what a command or a compromised listener starts
// is killed with it, whatever it does to leave the process tree; every
// wait on the listener has a deadline; the executor holds each service to
// its own process limit.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// cloneParent is a command that starts sleep 300.MARKER as its parent's
// child (CLONE_PARENT), so that it is the executor's child and not the
// command's, and exits.
const cloneParent = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(56, 0x00008000 | 17, 0, 0, 0, 0)  # clone(CLONE_PARENT|SIGCHLD)
if pid == 0:
    os.execv("/bin/sleep", ["sleep", "300." + sys.argv[1]])
print("go", flush=True)
`

// TestCgroupEscapes: a command that daemonizes a grandchild (setsid and a
// double fork, so that init is its parent) and one whose child is made
// the executor's with CLONE_PARENT: at the time limit each client sees end
// of file and nothing the command started is left within a second. After
// kill -9 of the executor and a new start, nothing of its commands is
// left either, and the new executor says how many it killed.
func TestCgroupEscapes(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err != nil {
			t.Fatal("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified: this test needs one")
		}
	}
	m1, m2, m3 := freshMarker(), freshMarker(), freshMarker()
	for _, m := range []string{m1, m2, m3} {
		killMarked(t, m)
	}
	dir := tempDir(t)
	daemon := writeScript(t, dir, "daemonize", fmt.Sprintf("(setsid sh -c 'sleep 300.%s & sleep 300.%s' &)\necho go\nexec sleep 300.%s\n", m1, m1, m1))
	py := filepath.Join(dir, "cloneparent.py")
	os.WriteFile(py, []byte(cloneParent), 0o644)
	forever := writeScript(t, dir, "forever", fmt.Sprintf("(setsid sleep 300.%s &)\necho go\nexec sleep 300.%s\n", m3, m3))
	a, b, c := loopback(t), loopback(t), loopback(t)
	probe, ready := probeService(t)
	master := probe +
		fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=2 user=nobody argv=%s\n", a, daemon) +
		fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=2 user=nobody argv=/usr/bin/python3 %s %s\n", b, py, m2) +
		fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=3600 user=nobody argv=%s\n", c, forever)
	d := StartServe(t, Config{Master: master, Ready: []string{ready}})
	for _, tc := range []struct{ addr, marker string }{{a, m1}, {b, m2}} {
		start := time.Now()
		got, err := Talk("tcp", tc.addr, "", 20*time.Second)
		took := time.Since(start)
		if err != nil || got != "go\n" {
			t.Fatalf("%s: %q %v\n%s", tc.addr, got, err, d.ReadLog())
		}
		if took < 1500*time.Millisecond || took > 4*time.Second {
			t.Errorf("%s: end of file after %v, limit 2s", tc.addr, took)
		}
		if !waitFor(time.Second, func() bool { return len(aliveWith(tc.marker)) == 0 }) {
			t.Errorf("%s: still running a second after the limit: %v", tc.addr, aliveWith(tc.marker))
		}
	}
	if !waitFor(5*time.Second, func() bool { return len(Zombies(d.Pid())) == 0 }) {
		t.Errorf("zombie children of the executor: %v", Zombies(d.Pid()))
	}
	// A command that outlives the executor's kill -9.
	go Talk("tcp", c, "", 60*time.Second)
	if !waitFor(10*time.Second, func() bool { return len(aliveWith(m3)) == 2 }) {
		t.Fatalf("the long command did not start: %v", aliveWith(m3))
	}
	syscall.Kill(d.Pid(), syscall.SIGKILL)
	d.Wait(10 * time.Second)
	if !waitFor(5*time.Second, func() bool { return len(aliveWith(m3)) == 1 }) {
		t.Logf("after kill -9: %v running (the parent-death signal ends the command, not what it left)", aliveWith(m3))
	}
	d2 := StartServe(t, Config{Master: master, Ready: []string{ready}, Main: ""})
	if !waitFor(5*time.Second, func() bool { return len(aliveWith(m3)) == 0 }) {
		t.Errorf("after a new start, still running: %v\n%s", aliveWith(m3), d2.ReadLog())
	}
	if _, ok := d2.WaitLog(`warning: killed [1-9]\d* processes left in \S+ by spawnd pid `+strconv.Itoa(d.Pid()), 5*time.Second); !ok {
		t.Errorf("the new executor did not say what it killed:\n%s", d2.ReadLog())
	}
}

// TestHostileListenerOverLimit: Runs past a service's own process limit
// (2) are a violation although the hard cap is far: the executor does not
// count on the listener to keep maxproc.
func TestHostileListenerOverLimit(t *testing.T) {
	h := startHostile(t, "overlimit", 3)
	h.attack(t)
	re := `warning: listener protocol violation: run request past service \S+'s process limit of 2`
	if _, ok := h.d.WaitLog(re, 20*time.Second); !ok {
		t.Fatalf("no line matching %q:\n%s\n%s", re, h.d.ReadLog(), h.notes())
	}
	if n := len(aliveWith(h.marker)); n != 2 {
		t.Errorf("%d commands running, want the limit of 2", n)
	}
	if !h.restarted(10 * time.Second) {
		t.Errorf("no second listener: %s", h.notes())
	}
}

// deafListener starts a hostile listener that ignores SIGTERM and SIGUSR1
// and leaves a process of its own, in a session of its own, holding the
// pair and the listening sockets; it returns that process's pid.
func deafListener(t *testing.T) (*hostileRun, int) {
	h := startHostile(t, "deaf", 0)
	h.attack(t)
	if !h.waitNotes("attack done", 1, 10*time.Second) {
		t.Fatalf("no attack: %s", h.notes())
	}
	var pids []int
	if !waitFor(5*time.Second, func() bool { pids = aliveWith(h.state); return len(pids) == 1 }) {
		t.Fatalf("the listener's own process: %v", pids)
	}
	return h, pids[0]
}

// TestHostileListenerDeafStop: stop finishes within the listener's grace
// (5s) although the listener ignores SIGTERM, and nothing it started is
// left.
func TestHostileListenerDeafStop(t *testing.T) {
	h, child := deafListener(t)
	start := time.Now()
	h.d.Signal(syscall.SIGTERM)
	if _, ok := h.d.Wait(15 * time.Second); !ok {
		t.Fatalf("spawnd still running 15s after SIGTERM:\n%s", h.d.ReadLog())
	}
	t.Logf("stopped after %v", time.Since(start))
	if alive(child) {
		t.Errorf("the listener's process %d outlived spawnd", child)
	}
	if _, ok := h.d.WaitLog(`warning: listener pid \d+ did not leave in time: killing it`, time.Second); !ok {
		t.Errorf("no warning that the listener was killed:\n%s", h.d.ReadLog())
	}
}

// TestHostileListenerDeafReload: a reload finishes within the grace
// although the listener ignores SIGUSR1: it is killed with what it
// started, and a new listener serves.
func TestHostileListenerDeafReload(t *testing.T) {
	h, child := deafListener(t)
	h.d.Signal(syscall.SIGHUP)
	if !h.restarted(15 * time.Second) {
		t.Fatalf("no new listener 15s after SIGHUP:\n%s\n%s", h.d.ReadLog(), h.notes())
	}
	if !waitFor(2*time.Second, func() bool { return !alive(child) }) {
		t.Errorf("the old listener's process %d outlived it", child)
	}
}

// TestHostileListenerCapFlood: a listener that keeps the executor at its
// hard cap, a new Run for every result, for six seconds, does not starve
// the time limits: every command of the 2s service ends within 3.5s.
func TestHostileListenerCapFlood(t *testing.T) {
	h := startHostileWrap(t, "capflood", 4, []string{"prlimit", "--nofile=128:128", "--"})
	h.attack(t)
	if !h.waitNotes("capflood:", 1, 30*time.Second) {
		t.Fatalf("the flood did not end:\n%s\n%s", h.notes(), h.d.ReadLog())
	}
	sm := regexp.MustCompile(`capflood: (\d+) runs, (\d+) results, longest (\d+)`).FindStringSubmatch(h.notes())
	if sm == nil {
		t.Fatalf("notes: %s", h.notes())
	}
	results, _ := strconv.Atoi(sm[2])
	longest, _ := strconv.Atoi(sm[3])
	t.Logf("%s runs, %d results, longest %.2fs", sm[1], results, float64(longest)/1e6)
	if results == 0 || longest > 3500000 {
		t.Errorf("%d results, longest run %.2fs: the time limit of 2s came late", results, float64(longest)/1e6)
	}
	if re := regexp.MustCompile(`protocol violation`); re.MatchString(h.d.ReadLog()) {
		t.Errorf("a violation at the cap:\n%s", h.d.ReadLog())
	}
}

var _ = exec.Command
