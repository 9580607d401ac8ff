package test

// Issue 12, part 3: the listener is contained. It runs in a session of its own
// with no controlling terminal and /dev/null as stderr (so no TIOCSTI into
// root's terminal), cannot be traced or dumped by other processes of
// mail_owner, has no_new_privs, and after start-up runs under a seccomp
// allow-list that kills it for an exec or an open.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestListenerContained: the honest listener's session, terminal, stderr,
// no_new_privs, seccomp mode and traceability, each read from /proc or
// tried as mail_owner.
func TestListenerContained(t *testing.T) {
	addr := loopback(t)
	d := StartServe(t, Config{
		Master: addr + " inet n n n - - spawnd user=nobody argv=/bin/echo ok\n",
		Ready:  []string{"tcp " + addr},
	})
	if got, err := Talk("tcp", addr, "", 10*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("echo: %q %v", got, err)
	}
	pid := d.Listener()
	if pid == 0 {
		t.Fatal("no listener")
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, want := range []string{`(?m)^NoNewPrivs:\s+1$`, `(?m)^Seccomp:\s+2$`, `(?m)^Seccomp_filters:\s+[1-9]`} {
		if !regexp.MustCompile(want).Match(status) {
			t.Errorf("listener's /proc/%d/status has no line %s:\n%s", pid, want, status)
		}
	}
	// stat after the name: state ppid pgrp session tty_nr
	f := statFields(pid)
	if len(f) < 5 || f[3] != strconv.Itoa(pid) || f[4] != "0" {
		t.Errorf("listener %d: session and tty_nr %v, want %d and 0", pid, f[3:5], pid)
	}
	if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); got != "/dev/null" {
		root, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", d.Pid()))
		t.Errorf("listener's stderr is %q (the executor's is %q), want /dev/null", got, root)
	}
	// Another process of mail_owner cannot trace it; the control shows it
	// could trace one of its own that is dumpable.
	own := exec.Command("setpriv", "--reuid", mailOwner(), "--regid", mailOwner(), "--clear-groups", "sleep", "30")
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { own.Process.Kill(); own.Wait() }()
	if out, err := traceAs(pid); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mail_owner traced the listener: %v\n%s", err, out)
	}
	if out, err := traceAs(own.Process.Pid); err != nil && !strings.Contains(out, "attached") {
		t.Errorf("control: mail_owner could not trace its own sleep: %v\n%s", err, out)
	}
}

// traceAs attaches strace as mail_owner to pid for a moment.
func traceAs(pid int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "setpriv", "--reuid", mailOwner(), "--regid", mailOwner(), "--clear-groups",
		"timeout", "-s", "INT", "1", "strace", "-e", "trace=none", "-p", strconv.Itoa(pid)).CombinedOutput()
	return string(out), err
}

// TestListenerSeccomp: a listener that tries execve or open after start-up,
// under the real listener's filter (test/hostile-listener calls the same
// function), is killed by SIGSYS, nothing it tried happens, and the
// executor starts a new one.
func TestListenerSeccomp(t *testing.T) {
	requireRoot(t)
	for _, scenario := range []string{"execve", "open"} {
		t.Run(scenario, func(t *testing.T) {
			h := startHostile(t, scenario, 0)
			h.attack(t)
			re := `warning: listener pid \d+ killed by signal 31`
			if _, ok := h.d.WaitLog(re, 10*time.Second); !ok {
				t.Errorf("no line matching %q in:\n%s\nnotes:\n%s", re, h.d.ReadLog(), h.notes())
			}
			if !h.restarted(10 * time.Second) {
				t.Errorf("no second listener: notes\n%s\nlog:\n%s", h.notes(), h.d.ReadLog())
			}
			if m, _ := filepath.Glob(filepath.Join(h.state, "escaped.*")); len(m) > 0 {
				t.Errorf("the listener escaped its filter: %v", m)
			}
			if strings.Contains(h.notes(), "returned") {
				t.Errorf("the forbidden call returned:\n%s", h.notes())
			}
		})
	}
}

// TestListenerNeverDumpable: the listener cannot be traced or dumped by
// another process of mail_owner even before its first instruction, when
// Harden has not run yet. spawnd-listener is installed mode 0711, not
// readable by others, and the kernel makes a process that execs such a
// file non-dumpable at the exec. The listener is started here as nobody
// under ptrace, which stops it at the exec, before any of its code runs;
// /proc/PID/environ of a non-dumpable process belongs to root (the
// directory itself, world-readable, keeps the process's owner). The control: a copy
// that others may read is dumpable at the same point.
func TestListenerNeverDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("requires root: starts the listener as nobody under ptrace")
	}
	listener := filepath.Join(bin(t), "spawnd-listener")
	if st, err := os.Stat(listener); err != nil || st.Mode().Perm() != 0o711 {
		t.Fatalf("%s: %v, mode %v; want 0711", listener, err, st.Mode().Perm())
	}
	readable := filepath.Join(tempDir(t), "spawnd-listener")
	data, err := os.ReadFile(listener)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readable, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		owner uint32 // of /proc/PID/environ at the exec: 0 when not dumpable
	}{{listener, 0}, {readable, 65534}} {
		if owner := ownerAtExec(t, c.path); owner != c.owner {
			t.Errorf("%s: /proc/PID/environ owned by uid %d at the exec, want %d (0: not dumpable)", c.path, owner, c.owner)
		}
	}
}

// ownerAtExec starts path as nobody, stopped by ptrace at its exec, and
// returns the owner of its /proc/PID/environ there.
func ownerAtExec(t *testing.T, path string) uint32 {
	t.Helper()
	runtime.LockOSThread() // the tracer is this thread
	defer runtime.UnlockOSThread()
	pid, err := syscall.ForkExec(path, []string{path}, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{Ptrace: true, Setsid: true,
			Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(pid, syscall.SIGKILL)
		syscall.Wait4(pid, nil, 0, nil)
	}()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || !ws.Stopped() {
		t.Fatalf("%s: %v, status %v; want stopped at the exec", path, err, ws)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/environ", pid), &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}
