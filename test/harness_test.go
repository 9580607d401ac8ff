// Package test holds spawnd's integration tests: they build both binaries
// and drive them the way an administrator would, over real sockets, as
// root.
package test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// moduleRoot is the directory holding go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// bin returns the directory holding freshly built spawnd, spawnd-listener
// and spawnd-limits (make build, with its flags), world-readable so that
// mail_owner can run the listener and every user spawnd-limits.
func bin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "spawnd-bin-")
		if buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		cmd := exec.Command("make", "-s", "build", "BIN="+binDir)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// requireRoot skips a test that needs root (setuid, chown, binding as
// another user) when not run as root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root: spawnd starts commands as other users")
	}
}

// tempDir returns a test directory every user can enter, for configuration
// and scripts that nobody and mail_owner must read.
func tempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	return d
}

// freePort returns a loopback TCP port that was free a moment ago and
// that it has not returned before: the kernel may hand a port just closed
// out again, and two services of one test on one port are a duplicate.
func freePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portsMu.Lock()
		seen := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if !seen {
			return port
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// mailOwner is the mail_owner the tests configure: postfix when Postfix is
// installed, else daemon.
func mailOwner() string {
	if _, err := exec.Command("id", "-u", "postfix").Output(); err == nil {
		return "postfix"
	}
	return "daemon"
}

// writeScript writes an executable shell script that nobody can run.
func writeScript(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// Daemon is a running `spawnd serve`.
type Daemon struct {
	t    testing.TB
	Dir  string // configuration directory
	Log  string // maillog_file
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Config is a test configuration: main.cf additions and master.cf lines.
// main.cf always gets mail_owner, queue_directory and maillog_file.
type Config struct {
	Main   string
	Master string
	Args   []string // extra serve arguments, such as -v
	Env    []string // extra environment
	Ready  []string // endpoints to wait for: "tcp 127.0.0.1:N" or "unix /path"
	Bin    string   // directory holding spawnd and spawnd-listener; empty: bin(t)
	Wrap   []string // a command that execs spawnd with its arguments, such as prlimit --nofile=64:64 --
}

// StartServe writes the configuration and starts spawnd serve on it, and
// waits until every Ready endpoint accepts connections. Cleanup stops it.
func StartServe(t testing.TB, c Config) *Daemon {
	t.Helper()
	requireRoot(t)
	dir := tempDir(t)
	d := &Daemon{t: t, Dir: dir, Log: filepath.Join(dir, "maillog"), done: make(chan struct{})}
	main := fmt.Sprintf("mail_owner = %s\nqueue_directory = %s\nmaillog_file = %s\n%s\n",
		mailOwner(), filepath.Join(dir, "queue"), d.Log, c.Main)
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte(main), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte(c.Master), 0o644)
	bindir := c.Bin
	if bindir == "" {
		bindir = bin(t)
	}
	argv := append([]string{filepath.Join(bindir, "spawnd"), "serve", "-c", dir}, c.Args...)
	if len(c.Wrap) > 0 {
		// The wrapper must exec spawnd, so that Pid is the executor's.
		argv = append(append([]string{}, c.Wrap...), argv...)
	}
	d.Cmd = exec.Command(argv[0], argv[1:]...)
	d.Cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}, c.Env...)
	var stderr bytes.Buffer
	d.Cmd.Stderr = &syncWriter{w: &stderr}
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.Cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("spawnd stderr:\n%s\nmaillog:\n%s", stderr.String(), d.ReadLog())
		}
	})
	for _, r := range c.Ready {
		network, addr, _ := strings.Cut(r, " ")
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn, err := net.DialTimeout(network, addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-d.done:
				t.Fatalf("spawnd exited early: %v\nstderr: %s\nlog: %s", d.err, stderr.String(), d.ReadLog())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready after 10s: %v\nstderr: %s\nlog: %s", r, err, stderr.String(), d.ReadLog())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// An endpoint accepts connections into its backlog as soon as the
	// executor has opened it, before the listener runs: tests that look
	// at the listener next need it started (a test's own listener, Bin,
	// may not stay).
	if c.Bin == "" && len(c.Ready) > 0 {
		waitFor(10*time.Second, func() bool { return d.Listener() != 0 })
	}
	return d
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// Pid is the executor's pid.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Signal sends sig to the executor.
func (d *Daemon) Signal(sig syscall.Signal) { d.Cmd.Process.Signal(sig) }

// Wait waits up to timeout for spawnd to exit and returns its error.
func (d *Daemon) Wait(timeout time.Duration) (error, bool) {
	select {
	case <-d.done:
		return d.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Stop ends spawnd: SIGTERM, then SIGKILL after ten seconds.
func (d *Daemon) Stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.Signal(syscall.SIGTERM)
	if _, ok := d.Wait(10 * time.Second); !ok {
		d.Signal(syscall.SIGKILL)
		d.Wait(5 * time.Second)
	}
}

// ReadLog returns the maillog so far.
func (d *Daemon) ReadLog() string {
	b, _ := os.ReadFile(d.Log)
	return string(b)
}

// WaitLog waits up to timeout for a log line matching re and returns it.
func (d *Daemon) WaitLog(re string, timeout time.Duration) (string, bool) {
	rx := regexp.MustCompile(re)
	var m string
	ok := waitFor(timeout, func() bool { m = rx.FindString(d.ReadLog()); return m != "" })
	return m, ok
}

// waitFor polls cond every 20 ms until it holds or timeout passes, and
// reports whether it held. It is the one wait of the tests: every wait
// has a deadline, and a test that waits for something absent waits for a
// marker that comes after it instead of sleeping.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// waitTraced waits until tracer traces every thread of pid, so that
// nothing pid does from then on escapes the trace.
func waitTraced(t testing.TB, pid, tracer int) {
	t.Helper()
	traced := func() bool {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
			if !regexp.MustCompile(`(?m)^TracerPid:\s+` + strconv.Itoa(tracer) + `$`).Match(b) {
				return false
			}
		}
		return len(tasks) > 0
	}
	if !waitFor(10*time.Second, traced) {
		t.Fatalf("pid %d: not every thread traced by %d after 10s", pid, tracer)
	}
}

// Listener returns the pid of the executor's spawnd-listener child, or 0.
func (d *Daemon) Listener() int {
	for _, pid := range Children(d.Pid()) {
		if comm(pid) == "spawnd-listener" {
			return pid
		}
	}
	return 0
}

// Children returns the pids whose parent is ppid.
func Children(ppid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields returns /proc/pid/stat's fields after the command name:
// state, ppid, pgrp, session, ...
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// Zombies returns the children of ppid that are zombies.
func Zombies(ppid int) []int {
	var z []int
	for _, pid := range Children(ppid) {
		if f := statFields(pid); len(f) > 0 && f[0] == "Z" {
			z = append(z, pid)
		}
	}
	return z
}

// OpenFds returns how many descriptors pid has open.
func OpenFds(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// ProcsWithArg returns the pids whose command line contains arg, to find
// (and clean up) commands that escaped a test.
func ProcsWithArg(arg string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(b, []byte(arg)) {
			out = append(out, pid)
		}
	}
	return out
}

// Talk connects, writes input (then half-closes), and reads until EOF or
// the timeout.
func Talk(network, addr, input string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if input != "" {
		if _, err := io.WriteString(conn, input); err != nil {
			return "", err
		}
	}
	switch c := conn.(type) {
	case *net.TCPConn:
		c.CloseWrite()
	case *net.UnixConn:
		c.CloseWrite()
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

// waitNoneRunning fails the test unless, within timeout, no process named
// comm whose command line holds marker is running (zombies aside).
func waitNoneRunning(t testing.TB, name, marker string, timeout time.Duration) {
	t.Helper()
	var alive []int
	if !waitFor(timeout, func() bool {
		alive = nil
		for _, pid := range ProcsWithArg(marker) {
			if f := statFields(pid); len(f) > 0 && f[0] != "Z" && comm(pid) == name {
				alive = append(alive, pid)
			}
		}
		return len(alive) == 0
	}) {
		t.Fatalf("%s processes marked %s still running: %v", name, marker, alive)
	}
}
