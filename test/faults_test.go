package test

// Issue 7, faults: spawnd under kill -9, signals, descriptor and process
// exhaustion, and clients and commands that misbehave. Each test says
// what happens and what is checked; every process a test starts is found
// again by pid or by a marker in its arguments and killed at cleanup.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFaultListenerKill9UnderLoad: 16 clients hammer a fast service and 4
// commands of a slow one run when the listener is killed with SIGKILL.
// The same executor starts a new listener within one second; the slow
// commands finish, their clients get their whole output and the new
// listener logs their results (seq 0: peer unknown); every fast client
// gets either its output or a clean close, never a hang; afterwards
// nothing leaked.
func TestFaultListenerKill9UnderLoad(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	fast, slow := loopback(t), loopback(t)
	dir := tempDir(t)
	script := writeScript(t, dir, "slow", fmt.Sprintf("echo $$\nsleep 2.%s\necho done\n", m))
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - 0 spawnd user=nobody argv=/bin/echo ok\n", fast) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=%s\n", slow, script) + probe,
		Args:  []string{"-v"},
		Ready: []string{ready},
	})
	talkRetry("tcp", fast, "", 20*time.Second)
	waitQuiet(d, 5*time.Second)
	efd := countFds(d.Pid())

	type slowResult struct {
		out string
		err error
	}
	slowDone := make(chan slowResult, 4)
	for i := 0; i < 4; i++ {
		go func() { s, err := Talk("tcp", slow, "", 60*time.Second); slowDone <- slowResult{s, err} }()
	}
	if !waitFor(20*time.Second, func() bool { return len(aliveWith(m)) == 4 }) {
		t.Fatalf("4 slow commands did not start: %v", aliveWith(m))
	}

	var served, closed, reset, failed atomic.Int32
	var firstFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := Talk("tcp", fast, "", 20*time.Second)
				switch {
				case err == nil && got == "ok\n":
					served.Add(1)
				case err == nil && got == "":
					closed.Add(1)
				case errors.Is(err, syscall.ECONNRESET):
					reset.Add(1)
				default:
					failed.Add(1)
					firstFail.CompareAndSwap(nil, fmt.Sprintf("%q %v", got, err))
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	old := d.Listener()
	syscall.Kill(old, syscall.SIGKILL)
	killed := time.Now()
	var nl int
	waitFor(10*time.Second, func() bool { nl = d.Listener(); return nl != 0 && nl != old })
	restart := time.Since(killed)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("new listener after %v; fast clients: %d served, %d closed cleanly, %d reset, %d failed",
		restart, served.Load(), closed.Load(), reset.Load(), failed.Load())
	if nl == 0 || nl == old {
		t.Fatalf("no new listener:\n%s", d.ReadLog())
	}
	if restart > time.Second {
		t.Errorf("new listener after %v, want within 1s", restart)
	}
	if failed.Load() > 0 {
		t.Errorf("%d fast clients failed (hang or error), first: %v", failed.Load(), firstFail.Load())
	}
	for i := 0; i < 4; i++ {
		r := <-slowDone
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if r.err != nil || len(lines) != 2 || lines[1] != "done" {
			t.Errorf("slow client got %q, %v; want its pid and done", r.out, r.err)
			continue
		}
		re := fmt.Sprintf(`service=%s peer=\S+ pid=%s status=exit 0`, regexp.QuoteMeta(slow), lines[0])
		if _, ok := d.WaitLog(re, 10*time.Second); !ok {
			t.Errorf("result of command %s not logged (%q)", lines[0], re)
		}
	}
	if _, ok := d.WaitLog(fmt.Sprintf(`warning: listener pid %d killed by signal 9`, old), 5*time.Second); !ok {
		t.Errorf("listener death not logged")
	}
	if got, err := Talk("tcp", fast, "", 20*time.Second); err != nil || got != "ok\n" {
		t.Errorf("after the restart: %q, %v", got, err)
	}
	waitQuiet(d, 10*time.Second)
	if e := settleFds(d.Pid(), efd); e > efd {
		t.Errorf("executor descriptors %d -> %d: %s", efd, e, fdList(d.Pid()))
	}
	if z := Zombies(d.Pid()); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

// TestFaultExecutorKill9: three commands run (two sleeps, one shell with a
// background child and a setsid grandchild) when the executor is killed
// with SIGKILL. The listener exits at once (end of file on its pair),
// every command spawnd started dies by its parent-death signal and its
// client sees end of file, nothing of spawnd is left; a new spawnd on the
// same configuration (stale unix socket, same port) serves again.
// Descendants of a command are not spawnd's children: the test reports
// which survived and kills them.
func TestFaultExecutorKill9(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	tcp, kids := loopback(t), loopback(t)
	dir := tempDir(t)
	sock := filepath.Join(dir, "k.sock")
	family := writeScript(t, dir, "family", fmt.Sprintf("echo $$\nsleep 40.%[1]s &\nsetsid sleep 41.%[1]s &\nsleep 42.%[1]s\n", m))
	probe, ready := probeService(t)
	master := fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sleep 30.%s\n", tcp, m) +
		fmt.Sprintf("%s unix - n n - - spawnd user=nobody argv=/bin/sleep 31.%s\n", sock, m) +
		fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=%s\n", kids, family) + probe
	d := StartServe(t, Config{Master: master, Ready: []string{ready}})
	type result struct {
		who, out string
		err      error
		took     time.Duration
	}
	results := make(chan result, 3)
	var killedAt atomic.Int64
	for _, c := range [][3]string{{"tcp", tcp, "sleep over tcp"}, {"unix", sock, "sleep over unix"}, {"tcp", kids, "shell with children"}} {
		go func() {
			s, err := Talk(c[0], c[1], "", 60*time.Second)
			results <- result{c[2], s, err, time.Since(time.Unix(0, killedAt.Load()))}
		}()
	}
	var cmds []int
	if !waitFor(20*time.Second, func() bool { cmds = commands(d); return len(cmds) == 3 && len(aliveWith(m)) == 5 }) {
		t.Fatalf("commands did not all start: children %v, marked %v", commands(d), aliveWith(m))
	}
	lpid := d.Listener()
	before := aliveWith(m)
	killedAt.Store(time.Now().UnixNano())
	d.Signal(syscall.SIGKILL)
	if _, ok := d.Wait(5 * time.Second); !ok {
		t.Fatal("executor still running after SIGKILL")
	}
	if !waitFor(2*time.Second, func() bool { return !alive(lpid) }) {
		t.Errorf("listener %d still running 2s after the executor died", lpid)
	}
	if !waitFor(2*time.Second, func() bool {
		for _, pid := range cmds {
			if alive(pid) {
				return false
			}
		}
		return true
	}) {
		t.Errorf("commands spawnd started still running after it died: %v of %v", aliveOf(cmds), cmds)
	}
	for i := 0; i < 2; i++ {
		r := <-results
		if r.who == "shell with children" {
			i--
			t.Logf("client of the shell with children: %q %v after %v (its descendants hold the connection)", r.out, r.err, r.took)
			continue
		}
		if r.err != nil || r.out != "" || r.took > 5*time.Second {
			t.Errorf("%s client: %q, %v, %v after the kill; want end of file", r.who, r.out, r.err, r.took)
		}
	}
	if left := ProcsWithArg(d.Dir); len(left) > 0 {
		t.Errorf("spawnd processes left: %v", left)
	}
	var survivors []string
	for _, pid := range aliveWith(m) {
		survivors = append(survivors, fmt.Sprintf("%d %s (ppid %s, sid %s)", pid, cmdline(pid), statFields(pid)[1], statFields(pid)[3]))
	}
	t.Logf("marked before the kill: %v; descendants of commands surviving it (documented: no signal reaches them once the executor is gone): %v", before, survivors)
	for _, pid := range aliveWith(m) {
		syscall.Kill(pid, syscall.SIGKILL)
	}

	d2 := StartServe(t, Config{Master: strings.Replace(master, "/bin/sleep 30."+m, "/bin/echo again", 1), Ready: []string{ready}})
	if got, err := talkRetry("tcp", tcp, "", 20*time.Second); err != nil || got != "again\n" {
		t.Errorf("restarted spawnd: %q, %v\n%s", got, err, d2.ReadLog())
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Errorf("restarted spawnd does not listen on %s (stale socket?): %v", sock, err)
	} else {
		c.Close()
	}
}

// aliveOf returns the pids of the list still alive.
func aliveOf(pids []int) []int {
	var out []int
	for _, pid := range pids {
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestFaultTermTwentyRunning: SIGTERM while 20 commands run (each waits,
// then writes 108,894 bytes): every client gets its whole output, spawnd
// exits 0 and removes its unix socket.
func TestFaultTermTwentyRunning(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	dir := tempDir(t)
	sock := filepath.Join(dir, "term.sock")
	script := writeScript(t, dir, "seq", fmt.Sprintf("sleep 1.%s\nexec seq 1 20000\n", m))
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: sock + " unix - n n - 0 spawnd user=nobody argv=" + script + "\n" + probe,
		Ready:  []string{ready},
	})
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	outs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		go func() {
			s, err := talkRetry("unix", sock, "", 60*time.Second)
			outs <- fmt.Sprint(len(s), s == want.String(), err)
		}()
	}
	if !waitFor(20*time.Second, func() bool { return len(aliveWith(m)) == 20 }) {
		t.Fatalf("20 commands did not start: %d running", len(aliveWith(m)))
	}
	d.Signal(syscall.SIGTERM)
	full := 0
	for i := 0; i < 20; i++ {
		s := <-outs
		if s == fmt.Sprint(want.Len(), true, nil) {
			full++
		} else {
			t.Errorf("client got (bytes, complete, error) %s, want %d bytes", s, want.Len())
		}
	}
	err, ok := d.Wait(30 * time.Second)
	if !ok {
		t.Fatalf("spawnd still running 30s after SIGTERM")
	}
	t.Logf("%d of 20 clients got their full output; spawnd exited: %v", full, err)
	if err != nil {
		t.Errorf("spawnd exited with %v, want 0", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unix socket left behind: %v", err)
	}
}

// TestFaultFdExhaustionListener: the listener's RLIMIT_NOFILE is lowered
// (prlimit on its pid, run as mail_owner) to what it holds, so every accept fails with
// EMFILE while 12 clients wait. The listener does not spin (its CPU time
// over 2 seconds stays under 0.3 s), logs the condition at most once per
// interval, keeps its clients in the backlog, and serves them all once
// the limit is raised again.
func TestFaultFdExhaustionListener(t *testing.T) {
	requireRoot(t)
	tcp := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", tcp),
		Ready:  []string{"tcp " + tcp},
	})
	for i := 0; i < 20; i++ {
		talkRetry("tcp", tcp, "", 20*time.Second)
	}
	l := d.Listener()
	old, err := nofile(l)
	if err != nil {
		t.Fatal(err)
	}
	// Without CAP_SYS_RESOURCE only a process with the listener's own
	// credentials may change its limits: prlimit runs as mail_owner.
	owner := lookupIDs(t, mailOwner())
	setLimit := func(soft uint64) error {
		out, err := exec.Command("setpriv", "--reuid", strconv.Itoa(int(owner.uid)), "--regid", strconv.Itoa(int(owner.gid)), "--clear-groups",
			"prlimit", "--pid", strconv.Itoa(l), fmt.Sprintf("--nofile=%d:%d", soft, old.Max)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("prlimit: %v: %s", err, out)
		}
		return nil
	}
	if err := setLimit(uint64(OpenFds(l))); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := setLimit(old.Cur); err != nil {
				t.Error(err)
			}
		}
	}
	defer restore()
	results := make(chan string, 12)
	for i := 0; i < 12; i++ {
		go func() { s, err := Talk("tcp", tcp, "", 60*time.Second); results <- fmt.Sprint(s, err) }()
	}
	if _, ok := d.WaitLog(`warning: accept: too many open files`, 10*time.Second); !ok {
		t.Errorf("EMFILE not logged:\n%s", d.ReadLog())
	}
	lt, et := cpuTicks(l), cpuTicks(d.Pid())
	time.Sleep(2 * time.Second)
	lcpu, ecpu := cpuTicks(l)-lt, cpuTicks(d.Pid())-et
	warnings := strings.Count(d.ReadLog(), "accept: too many open files")
	t.Logf("out of descriptors for 2s: listener %d ticks, executor %d ticks of CPU; %d warnings", lcpu, ecpu, warnings)
	if lcpu > 30 || ecpu > 30 {
		t.Errorf("CPU while out of descriptors: listener %d, executor %d ticks in 2s: spinning", lcpu, ecpu)
	}
	if warnings > 3 {
		t.Errorf("%d EMFILE warnings in about 2s: not once per interval", warnings)
	}
	if d.Listener() != l || !alive(d.Pid()) {
		t.Fatalf("listener %d -> %d, executor alive %v", l, d.Listener(), alive(d.Pid()))
	}
	restore()
	for i := 0; i < 12; i++ {
		if s := <-results; s != "ok\n<nil>" {
			t.Errorf("client held during the shortage got %q", s)
		}
	}
	if got, err := Talk("tcp", tcp, "", 20*time.Second); err != nil || got != "ok\n" {
		t.Errorf("after the shortage: %q, %v", got, err)
	}
}

// nofile returns pid's RLIMIT_NOFILE from /proc (prlimit(2) on another
// user's process needs CAP_SYS_RESOURCE, which root may lack in a
// container).
func nofile(pid int) (unix.Rlimit, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return unix.Rlimit{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "Max open files")); len(f) >= 2 && strings.HasPrefix(l, "Max open files") {
			cur, err1 := strconv.ParseUint(f[0], 10, 64)
			max, err2 := strconv.ParseUint(f[1], 10, 64)
			if err1 != nil || err2 != nil {
				return unix.Rlimit{}, fmt.Errorf("/proc/%d/limits: %q", pid, l)
			}
			return unix.Rlimit{Cur: cur, Max: max}, nil
		}
	}
	return unix.Rlimit{}, fmt.Errorf("/proc/%d/limits: no Max open files", pid)
}

// TestFaultFdExhaustionSpawnd: spawnd started under prlimit
// --nofile=64:64 (executor and listener), 100 clients of a command that
// runs 2 seconds: more clients than descriptors. spawnd keeps running
// (same executor, same listener), does not spin (CPU over 2 seconds under
// 0.6 s), logs the condition, does not take its own shortage for a
// hostile listener, every client is served or closed cleanly and none
// hangs, and once the commands are done it serves again with its
// descriptors back where they were.
func TestFaultFdExhaustionSpawnd(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed: cannot start spawnd with a low RLIMIT_NOFILE")
	}
	m := freshMarker()
	killMarked(t, m)
	slow, fast := loopback(t), loopback(t)
	dir := tempDir(t)
	script := writeScript(t, dir, "slow", fmt.Sprintf("sleep 2.%s\necho ok\n", m))
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - 0 spawnd user=nobody argv=%s\n", slow, script) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo fast\n", fast) + probe,
		Wrap:  []string{"prlimit", "--nofile=64:64", "--"},
		Ready: []string{ready},
	})
	if got, err := talkRetry("tcp", fast, "", 20*time.Second); err != nil || got != "fast\n" {
		t.Fatalf("%q %v", got, err)
	}
	l := d.Listener()
	waitQuiet(d, 5*time.Second)
	efd, lfd := countFds(d.Pid()), countFds(l)
	var served, closed, failed atomic.Int32
	var firstFail atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := Talk("tcp", slow, "", 90*time.Second)
			switch {
			case err == nil && got == "ok\n":
				served.Add(1)
			case err == nil && got == "", errors.Is(err, syscall.ECONNRESET):
				closed.Add(1)
			default:
				failed.Add(1)
				firstFail.CompareAndSwap(nil, fmt.Sprintf("%q %v", got, err))
			}
		}()
	}
	waitFor(10*time.Second, func() bool { return len(aliveWith(m)) >= 20 })
	peak := len(aliveWith(m))
	lt, et := cpuTicks(l), cpuTicks(d.Pid())
	time.Sleep(2 * time.Second)
	lcpu, ecpu := cpuTicks(l)-lt, cpuTicks(d.Pid())-et
	wg.Wait()
	log := d.ReadLog()
	t.Logf("100 clients: %d served, %d closed, %d failed; %d commands at once; CPU in 2s: listener %d, executor %d ticks",
		served.Load(), closed.Load(), failed.Load(), peak, lcpu, ecpu)
	if w := regexp.MustCompile(`.*warning:.*`).FindAllString(log, 8); len(w) > 0 {
		t.Logf("first warnings:\n%s", strings.Join(w, "\n"))
	}
	if failed.Load() > 0 {
		t.Errorf("%d clients failed or hung, first: %v", failed.Load(), firstFail.Load())
	}
	if lcpu+ecpu > 60 {
		t.Errorf("CPU while out of descriptors: listener %d, executor %d ticks in 2s: spinning", lcpu, ecpu)
	}
	if !regexp.MustCompile(`warning: .*(too many open files|descriptor)`).MatchString(log) {
		t.Errorf("the shortage of descriptors is not logged")
	}
	if strings.Contains(log, "protocol violation") {
		t.Errorf("the executor took its own shortage of descriptors for a hostile listener: %s",
			regexp.MustCompile(`.*protocol violation.*`).FindString(log))
	}
	if !alive(d.Pid()) || d.Listener() != l {
		err, _ := d.Wait(time.Second)
		t.Errorf("executor alive %v (exit: %v), listener %d -> %d", alive(d.Pid()), err, l, d.Listener())
	}
	if got, err := Talk("tcp", fast, "", 20*time.Second); err != nil || got != "fast\n" {
		t.Errorf("after the shortage: %q, %v", got, err)
	}
	if got, err := Talk("tcp", slow, "", 20*time.Second); err != nil || got != "ok\n" {
		t.Errorf("slow service after the shortage: %q, %v", got, err)
	}
	waitQuiet(d, 10*time.Second)
	if l2 := d.Listener(); l2 == l {
		if n := settleFds(l, lfd); n > lfd {
			t.Errorf("listener descriptors %d -> %d: %s", lfd, n, fdList(l))
		}
	}
	if n := settleFds(d.Pid(), efd); n > efd {
		t.Errorf("executor descriptors %d -> %d: %s", efd, n, fdList(d.Pid()))
	}
}

// throwawayUser creates a system user with its own group for the test and
// removes it, after killing its processes, at cleanup.
func throwawayUser(t *testing.T, prefix string) ids {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := fmt.Sprintf("%s%x", prefix, b)
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	u := lookupIDs(t, name)
	t.Cleanup(func() {
		for i := 0; i < 3; i++ {
			for _, pid := range procsOfUid(u.uid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(50 * time.Millisecond)
		}
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
	})
	userNames[u.uid] = name
	return u
}

var userNames = map[uint32]string{}

// procsOfUid returns the live processes whose real uid is uid.
func procsOfUid(uid uint32) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := strings.Fields(procStatus(pid)["Uid"]); len(f) > 0 && f[0] == strconv.Itoa(int(uid)) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestFaultProcExhaustion: RLIMIT_NPROC reached. A throwaway service user
// already runs 30 processes and spawnd runs under prlimit --nproc=24 (the
// listener as a throwaway mail_owner with room for its threads, a second
// service as a third throwaway user), so the command's exec fails with
// EAGAIN after setuid. The client's connection is closed cleanly, the
// failure is logged, the other service and the same listener keep
// serving, and once the user's processes are gone the service works.
func TestFaultProcExhaustion(t *testing.T) {
	requireRoot(t)
	for _, p := range []string{"prlimit", "setpriv", "useradd", "userdel"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed: cannot make a user reach RLIMIT_NPROC", p)
		}
	}
	m := freshMarker()
	killMarked(t, m)
	owner := throwawayUser(t, "spwo")
	svc := throwawayUser(t, "spws")
	other := throwawayUser(t, "spwc")
	var sleeps []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range sleeps {
			c.Process.Kill()
			c.Wait()
		}
	})
	for i := 0; i < 30; i++ {
		c := exec.Command("setpriv", "--reuid", strconv.Itoa(int(svc.uid)), "--regid", strconv.Itoa(int(svc.gid)), "--clear-groups", "/bin/sleep", "120."+m)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sleeps = append(sleeps, c)
	}
	if !waitFor(10*time.Second, func() bool { return len(procsOfUid(svc.uid)) >= 30 }) {
		t.Fatalf("the service user runs %d processes, want 30", len(procsOfUid(svc.uid)))
	}
	limited, free := loopback(t), loopback(t)
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Main: "mail_owner = " + userNames[owner.uid],
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=%s argv=/bin/echo served\n", limited, userNames[svc.uid]) +
			fmt.Sprintf("%s inet n n n - - spawnd user=%s argv=/bin/echo other\n", free, userNames[other.uid]) + probe,
		Wrap:  []string{"prlimit", "--nproc=24:24", "--"},
		Args:  []string{"-v"},
		Ready: []string{ready},
	})
	l := d.Listener()
	if st := procStatus(l); !strings.HasPrefix(st["Uid"], strconv.Itoa(int(owner.uid))+" ") {
		t.Fatalf("listener Uid %q, want the throwaway mail_owner %d (last mail_owner line in main.cf)", st["Uid"], owner.uid)
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		got, err := Talk("tcp", limited, "", 20*time.Second)
		if err != nil || got != "" {
			t.Errorf("at the process limit: client got %q, %v after %v; want a clean close", got, err, time.Since(start))
		}
	}
	re := `warning: command /bin/echo: .*(resource temporarily unavailable|EAGAIN)`
	if line, ok := d.WaitLog(re, 10*time.Second); !ok {
		t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
	} else {
		t.Logf("logged: %s", line)
	}
	if got, err := Talk("tcp", free, "", 20*time.Second); err != nil || got != "other\n" {
		t.Errorf("other service during the shortage: %q, %v", got, err)
	}
	for _, c := range sleeps {
		c.Process.Kill()
		c.Wait()
	}
	sleeps = nil
	waitFor(10*time.Second, func() bool { return len(procsOfUid(svc.uid)) == 0 })
	if got, err := Talk("tcp", limited, "", 20*time.Second); err != nil || got != "served\n" {
		t.Errorf("after the shortage: %q, %v\n%s", got, err, d.ReadLog())
	}
	if d.Listener() != l || !alive(d.Pid()) {
		t.Errorf("listener %d -> %d, executor alive %v", l, d.Listener(), alive(d.Pid()))
	}
	if z := Zombies(d.Pid()); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

// TestFaultMisbehavingPeers: at the same time, against one spawnd: a
// client that never reads a command's output, one that never writes to
// cat, one that resets mid-stream, a command that closes stdout early, a
// command that writes 100 MiB, and a command that exits before reading
// what its client sends. Meanwhile a probe service answers every 100 ms
// within seconds; afterwards the executor's and listener's descriptors are
// back to where they were and no zombie is left.
func TestFaultMisbehavingPeers(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	dir := tempDir(t)
	ep := map[string]string{}
	for _, n := range []string{"probe", "cat", "big", "bignr", "early", "exits"} {
		ep[n] = loopback(t)
	}
	early := writeScript(t, dir, "early", fmt.Sprintf("echo partial\nexec 1>&-\nsleep 1.%s\n", m))
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", ep["probe"]) +
			fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=4 user=nobody argv=/bin/cat\n", ep["cat"]) +
			fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=60 user=nobody argv=/usr/bin/head -c 104857600 /dev/zero\n", ep["big"]) +
			fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=4 user=nobody argv=/usr/bin/head -c 104857600 /dev/zero\n", ep["bignr"]) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=%s\n", ep["early"], early) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo bye\n", ep["exits"]),
		Ready: []string{"tcp " + ep["probe"]},
	})
	for i := 0; i < 50; i++ {
		Talk("tcp", ep["probe"], "", 20*time.Second)
	}
	l := d.Listener()
	waitQuiet(d, 5*time.Second)
	efd, lfd := countFds(d.Pid()), countFds(l)

	stop := make(chan struct{})
	probeErrs := make(chan string, 1000)
	var probes atomic.Int32
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			got, err := Talk("tcp", ep["probe"], "", 10*time.Second)
			probes.Add(1)
			if took := time.Since(start); err != nil || got != "ok\n" || took > 5*time.Second {
				probeErrs <- fmt.Sprintf("%q %v after %v", got, err, took)
			}
		}
	}()

	var wg sync.WaitGroup
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := f(); err != nil {
				t.Errorf("%s: %v (after %v)", name, err, time.Since(start))
			} else {
				t.Logf("%s: as expected after %v", name, time.Since(start))
			}
		}()
	}
	dial := func(name string) (*net.TCPConn, error) {
		c, err := net.Dial("tcp", ep[name])
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(90 * time.Second))
		return c.(*net.TCPConn), nil
	}
	run("client never reads 100 MiB (limit 4s)", func() error {
		c, err := dial("bignr")
		if err != nil {
			return err
		}
		defer c.Close()
		time.Sleep(6 * time.Second) // past the limit without reading
		n, err := io.Copy(io.Discard, c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			return err
		}
		if n >= 100<<20 {
			return fmt.Errorf("read all %d bytes: the time limit did not end the command", n)
		}
		return nil
	})
	run("client never writes to cat (limit 4s)", func() error {
		c, err := dial("cat")
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		if err != nil || len(b) != 0 {
			return fmt.Errorf("got %q, %v; want end of file at the limit", b, err)
		}
		return nil
	})
	run("client resets mid-stream", func() error {
		c, err := dial("big")
		if err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, c, 1<<20); err != nil {
			return err
		}
		c.SetLinger(0)
		return c.Close()
	})
	run("command closes stdout early", func() error {
		c, err := dial("early")
		if err != nil {
			return err
		}
		defer c.Close()
		c.CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "partial\n" {
			return fmt.Errorf("got %q, %v", b, err)
		}
		return nil
	})
	run("command writes 100 MiB", func() error {
		c, err := dial("big")
		if err != nil {
			return err
		}
		defer c.Close()
		c.CloseWrite()
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != 100<<20 {
			return fmt.Errorf("read %d bytes, %v; want %d", n, err, 100<<20)
		}
		return nil
	})
	run("command exits before reading", func() error {
		c, err := dial("exits")
		if err != nil {
			return err
		}
		defer c.Close()
		payload := make([]byte, 1<<20)
		werr := make(chan error, 1)
		go func() { _, err := c.Write(payload); werr <- err }()
		b, err := io.ReadAll(c)
		<-werr // EPIPE or ECONNRESET once the command has gone: fine
		if string(b) != "bye\n" && !(len(b) == 0 && errors.Is(err, syscall.ECONNRESET)) {
			return fmt.Errorf("got %q, %v", b, err)
		}
		return nil
	})
	wg.Wait()
	close(stop)
	<-probed
	close(probeErrs)
	bad := 0
	for e := range probeErrs {
		if bad++; bad <= 5 {
			t.Errorf("probe while peers misbehaved: %s", e)
		}
	}
	t.Logf("%d probes, %d failed or slow", probes.Load(), bad)
	if !waitQuiet(d, 20*time.Second) {
		t.Errorf("commands still running: %v", commands(d))
	}
	if d.Listener() != l {
		t.Errorf("listener changed: %d -> %d", l, d.Listener())
	}
	if e, ln := settleFds(d.Pid(), efd), settleFds(l, lfd); e > efd || ln > lfd {
		t.Errorf("descriptors grew: executor %d -> %d, listener %d -> %d\nexecutor: %s\nlistener: %s", efd, e, lfd, ln, fdList(d.Pid()), fdList(l))
	}
	if z := Zombies(d.Pid()); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	if len(aliveWith(m)) > 0 {
		t.Errorf("still running: %v", aliveWith(m))
	}
}

// TestFaultTimeLimitIgnoresTerm: a command that ignores SIGTERM, SIGHUP
// and SIGINT, starts a background child and a setsid grandchild (which
// ignores them too and holds the connection) and waits. At its 2s limit
// nothing of it is left, by process group and by marker, the client sees
// end of file, and the log names the command's pid.
func TestFaultTimeLimitIgnoresTerm(t *testing.T) {
	requireRoot(t)
	m := freshMarker()
	killMarked(t, m)
	dir := tempDir(t)
	script := writeScript(t, dir, "stubborn", fmt.Sprintf(`trap '' TERM HUP INT
echo $$
setsid /bin/sh -c 'trap "" TERM HUP INT; sleep 300.%[1]s; echo escaped' &
sleep 301.%[1]s &
sleep 302.%[1]s
`, m))
	tcp := loopback(t)
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=2 user=nobody argv=%s\n", tcp, script) + probe,
		Ready:  []string{ready},
	})
	conn, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	var pid int
	fmt.Fscan(conn, &pid)
	if pid == 0 {
		t.Fatal("no pid from the command")
	}
	if !waitFor(10*time.Second, func() bool { return len(aliveWith(m)) >= 4 }) {
		t.Fatalf("the command's family did not start: %v", aliveWith(m))
	}
	var sid string
	for _, p := range aliveWith(m) {
		if f := statFields(p); f[3] != strconv.Itoa(pid) {
			sid = f[3]
		}
	}
	rest, err := io.ReadAll(conn)
	took := time.Since(start)
	if err != nil || strings.TrimSpace(string(rest)) != "" || took > 10*time.Second {
		t.Errorf("client: %q, %v after %v; want end of file soon after the 2s limit", rest, err, took)
	}
	if sid == "" {
		t.Errorf("no setsid grandchild was seen in its own session")
	}
	if _, ok := d.WaitLog(fmt.Sprintf(`warning: %s: process id %d: command time limit exceeded`, regexp.QuoteMeta(script), pid), 10*time.Second); !ok {
		t.Errorf("no time limit warning for %d:\n%s", pid, d.ReadLog())
	}
	if !waitFor(5*time.Second, func() bool { return len(aliveWith(m)) == 0 && len(inGroup(pid)) == 0 }) {
		t.Errorf("left running: marked %v, in process group %d: %v", aliveWith(m), pid, inGroup(pid))
	}
	t.Logf("client saw end of file after %v; the escaped grandchild's session was %s", took, sid)
}

// inGroup returns the live processes in process group pgid.
func inGroup(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 2 && f[2] == strconv.Itoa(pgid) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
