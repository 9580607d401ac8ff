package executor

// This file hands the running commands from one image of spawnd to the
// next across a reload, which re-executes the process in place (same pid)
// without waiting for them, as postfix reload does: they go on under the
// old configuration's time limit, and new connections get the new one.
// The format, one entry per command, is
//
//	pid,fd,deadline,start,service,command
//
// with deadline (0: none) and start in CLOCK_MONOTONIC nanoseconds, which
// exec does not reset, and service and command query-escaped.

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/policy"
)

// mainThread, once OnMainThread serves it, runs every fork and the
// reload's Exec on the main thread (invariant 7).
var mainThread chan func()

// OnMainThread runs work on a new goroutine and then, for ever, every fork
// and Exec of the process. The caller must be the main goroutine locked
// to the main thread (runtime.LockOSThread in an init of package main).
func OnMainThread(work func()) {
	mainThread = make(chan func())
	go work()
	for f := range mainThread {
		f()
	}
}

// onMain runs f on the main thread, or here when nothing serves it (tests).
//
//tcb:request-path
func onMain(f func()) {
	if mainThread == nil {
		f()
		return
	}
	done := make(chan struct{})
	mainThread <- func() { f(); close(done) }
	<-done
}

// Exec replaces the process image from the main thread (invariant 7).
func Exec(path string, argv, env []string) error {
	var err error
	onMain(func() { err = syscall.Exec(path, argv, env) })
	return err
}

// Handover prepares a reload: it logs the results no listener took, and
// returns the running commands, one entry each, each client socket moved
// to low or above (the numbers below are the listening sockets') and left
// open across exec. It returns holding mu, so that nothing reaps, kills or
// starts a child any more: a command that ends now stays a zombie for the
// next image. Only Exec, or the process's exit, may follow.
func (e *Executor) Handover(low int) ([]string, error) {
	mu.Lock()
	for _, m := range e.pending {
		svc := e.cfg.Policy.Services[m.Service]
		e.logResult(svc.Name, svc.Argv[0], m)
	}
	e.pending = nil
	now := monotonic()
	var out []string
	for pid, c := range procs {
		c, ok := c.(*command)
		if !ok || c.e != e {
			continue
		}
		if c.fd < low {
			fd, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD, low)
			if err != nil {
				return nil, fmt.Errorf("reload: command %d: %w", pid, err)
			}
			unix.Close(c.fd)
			c.fd = fd
		} else if _, err := unix.FcntlInt(uintptr(c.fd), unix.F_SETFD, 0); err != nil {
			return nil, fmt.Errorf("reload: command %d: %w", pid, err)
		}
		var deadline int64
		if !c.deadline.IsZero() {
			deadline = max(now+int64(time.Until(c.deadline)), 1)
		}
		name, path := c.names()
		out = append(out, fmt.Sprintf("%d,%d,%d,%d,%s,%s", pid, c.fd, deadline,
			now-int64(time.Since(c.start)), url.QueryEscape(name), url.QueryEscape(path)))
	}
	return out, nil
}

// Adopt takes over the commands Handover handed to this image, its
// entries separated by white space. It must
// run before anything starts the reaper (StartProcess, Serve), which would
// drop the status of a pid not yet in procs (invariant 5). A command whose
// service is in this policy counts as running for it, with its result
// going to the listener with Seq 0; one whose service is gone is still
// reaped and held to its time limit, and its result logged here. An entry
// that is malformed, names a pid that is not a child of this process or a
// descriptor that is not a client socket is refused with a warning, and
// the descriptor closed when it is one.
func (e *Executor) Adopt(handed string) {
	mu.Lock()
	defer mu.Unlock()
	now := monotonic()
	fds := map[int]bool{}
	for _, ent := range strings.Fields(handed) {
		c, err := e.adopt(ent, now, fds)
		if err != nil {
			e.cfg.Log.Warning("reload: not taking over %q: %v", clip(ent), err)
			continue
		}
		fds[c.fd] = true
		unix.CloseOnExec(c.fd) // invariant 2
		if i := slices.IndexFunc(e.cfg.Policy.Services, func(s *policy.Service) bool { return s.Name == c.name }); i >= 0 {
			c.service, c.name, c.path = uint32(i), "", ""
			e.running++
			e.byService[i]++
		}
		if !c.deadline.IsZero() {
			c.timer = time.AfterFunc(max(time.Until(c.deadline), 0), c.expire)
		}
		started(c.pid, c)
	}
}

// adopt checks one entry and returns its command, under mu.
func (e *Executor) adopt(ent string, now int64, fds map[int]bool) (*command, error) {
	f := strings.Split(ent, ",")
	if len(f) != 6 {
		return nil, errors.New("not 6 fields")
	}
	var n [4]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || v < 0 || (i != 2 && v == 0) {
			return nil, fmt.Errorf("field %d: %q", i+1, f[i])
		}
		n[i] = v
	}
	name, err1 := url.QueryUnescape(f[4])
	path, err2 := url.QueryUnescape(f[5])
	pid, fd := int(n[0]), int(n[1])
	switch {
	case err1 != nil || err2 != nil || name == "" || path == "":
		return nil, errors.New("bad service or command")
	case n[0] != int64(pid) || n[1] != int64(fd) || fd <= 2 || fds[fd] || fd == e.cfg.Log.Fd() || n[3] > now:
		return nil, errors.New("bad descriptor or start")
	case ipc.CheckSocket(fd) != nil:
		return nil, fmt.Errorf("descriptor %d is not a client socket", fd)
	case procs[pid] != nil || parent(pid) != os.Getpid():
		unix.Close(fd)
		return nil, fmt.Errorf("process %d is not a command of this process", pid)
	}
	c := &command{e: e, pid: pid, fd: fd, name: name, path: path,
		start: time.Now().Add(-time.Duration(now - n[3]))}
	if n[2] > 0 {
		c.deadline = time.Now().Add(time.Duration(n[2] - now))
	}
	return c, nil
}

// parent returns pid's parent from /proc/pid/stat, or -1.
func parent(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i > 0 {
		if f := strings.Fields(string(b[i+1:])); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				return ppid
			}
		}
	}
	return -1
}

// names returns the service name and command path of c.
func (c *command) names() (name, path string) {
	if c.name != "" {
		return c.name, c.path
	}
	svc := c.e.cfg.Policy.Services[c.service]
	return svc.Name, svc.Argv[0]
}

// logResult logs a result no listener will take, in the listener's words
// (listener.logResult): an abnormal end as spawn(8) logs it and, with
// Verbose, one line for the connection.
func (e *Executor) logResult(name, path string, m *ipc.Message) {
	status, pid := "exit "+strconv.Itoa(int(m.Code)), strconv.Itoa(int(m.Pid))
	switch {
	case m.Kind == ipc.KindRefused:
		status, pid = "refused", "-"
		e.cfg.Log.Warning("command %s: %s", path, m.Reason)
	case m.Timeout:
		status = "time limit"
		e.cfg.Log.Warning("%s: process id %d: command time limit exceeded", path, m.Pid)
	case m.Signal != 0:
		status = "signal " + strconv.Itoa(int(m.Signal))
		e.cfg.Log.Warning("command %s killed by signal %d", path, m.Signal)
	case m.Code != 0:
		e.cfg.Log.Warning("command %s exit status %d", path, m.Code)
	}
	if e.cfg.Verbose {
		e.cfg.Log.Info("service=%s peer=unknown pid=%s status=%s duration=%.1fms",
			name, pid, status, float64(m.Micros)/1000)
	}
}

// monotonic returns CLOCK_MONOTONIC in nanoseconds: system-wide, and
// steady across exec and changes of the wall clock.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
