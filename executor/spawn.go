package executor

// This file starts, kills and reaps the commands. Its invariants, with the
// reasons; run the root tests (go test ./executor as root) after any
// change here:
//
//  1. The executor never changes its own uid, gid or groups. The Go
//     runtime has many threads and a set*id call would race them; a child
//     gets its credentials in the child, between clone and exec, through
//     SysProcAttr.Credential (setgroups, setgid, setuid, in that order:
//     syscall/exec_linux.go).
//  2. Every descriptor the executor holds is close-on-exec: the pair and
//     received client sockets (MSG_CMSG_CLOEXEC), pidfds, the epoll set,
//     the timer, the log, the listening sockets, and, through Setup,
//     whatever the process inherited. So no child ever sees another
//     client's connection, a listening socket or the log.
//  3. A command gets exactly fds 0, 1, 2, each its client socket, in
//     blocking mode; ForkExec dup2s them into place and that clears their
//     close-on-exec flag.
//  4. Nothing from the message decides what runs: path, argv, uid, gid,
//     groups, environment, directory and time limit come from the policy;
//     the message only picks the service. Peer variables come from the
//     descriptor, read once for the checks and them (tie.go, sock.read).
//     A service with resource limits executes spawnd-limits in front of
//     its command, built from the policy too (commandLine).
//  5. One goroutine, the loop's, starts, kills and reaps every child, each
//     through its pidfd: a pid is signalled only before the loop has
//     reaped it, so it cannot be another process's by then. Nothing else
//     in the process may wait for children (os/exec, os.Process Wait).
//  6. Each command runs in a cgroup of its own (cgroup.go), created with
//     CLONE_INTO_CGROUP, so that killing the cgroup reaches every process
//     it started, however it left the command's process tree. Without
//     cgroup v2 the time limit kills the command's process group only: a
//     process that leaves it (setsid, a double fork) escapes the limit.
//  7. Every child is forked on the main thread, where the loop runs
//     (OnMainThread): Pdeathsig fires when the thread that forked a child
//     ends, and the main thread ends only with the process. So commands
//     die with the executor.

import (
	"container/heap"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/policy"
)

// Setup makes the process-wide settings a command inherits and the
// executor relies on; spawnd calls it once at start-up: umask 077;
// SIGPIPE and SIGXFSZ ignored (as spawn(8) leaves them; exec resets the
// signals the Go runtime catches to their default); every inherited fd above 2
// close-on-exec (invariant 2). The soft RLIMIT_NOFILE, for one
// descriptor per running command, the Go runtime has already raised to
// the hard limit less one (and gives children their own back).
func Setup() {
	unix.Umask(0o077)
	// A disposition of "ignore" survives exec: reset any that spawnd
	// inherited (nohup, a shell, a supervisor), so that a command gets
	// every signal but SIGPIPE and SIGXFSZ at its default however spawnd
	// was started. Raw, because Go hands signals 32 and 33 to the C
	// library and will not touch them.
	for sig := 1; sig <= 64; sig++ {
		var old [4]uint64 // struct sigaction: handler, flags, restorer, mask
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		// SIGCHLD too: at its default the kernel discards it (and still
		// keeps zombies to wait for); the loop learns of exits from pidfds.
		if old[0] == 1 || sig == int(unix.SIGCHLD) { // SIG_IGN
			unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&[4]uint64{})), 0, 8, 0, 0)
		}
	}
	signal.Ignore(syscall.SIGPIPE, syscall.SIGXFSZ)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, ent := range ents {
		if fd, err := strconv.Atoi(ent.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

// commandLine returns the argv a child of svc execs, argv[0] its path:
// its command, or spawnd-limits, found beside spawnd's executable self,
// in front of it.
//
// A service that sets resource limits or no_new_privileges does not exec
// its command directly: the child execs spawnd-limits, the small C
// program beside spawnd's own executable (cmd/spawnd-limits), as
// `spawnd-limits [-cpu N] [-as N] [-nofile N] [-nproc N] [-fsize N] [-nnp]
// -- COMMAND ARG...`, already as the service's user with its groups. It
// sets the limits on itself and execs the command, which keeps the pid,
// the session, the descriptors and the parent-death signal. The standard
// library's fork path has no hook between the credentials and exec, and
// limits set in the executor would bind the executor too. spawnd-limits
// runs with no privilege to lose: its only input is the argv built here
// from the policy.
func commandLine(self string, svc *policy.Service) []string {
	l := svc.Limits
	if l == (policy.Limits{}) {
		return svc.Argv
	}
	argv := []string{""} // no executable known: the exec fails
	if self != "" {
		argv[0] = filepath.Join(filepath.Dir(self), "spawnd-limits")
	}
	opts := []string{"-cpu", "-as", "-nofile", "-nproc", "-fsize"} // in the order it applies them
	for i, v := range []uint64{l.CPU, l.AddressSpace, l.OpenFiles, l.Processes, l.FileSize} {
		if v > 0 {
			argv = append(argv, opts[i], strconv.FormatUint(v, 10))
		}
	}
	if l.NoNewPrivileges {
		argv = append(argv, "-nnp")
	}
	return append(append(argv, "--"), svc.Argv...)
}

// command is one running command.
type command struct {
	svc      *entry   // its entry in the policy it started under
	index    int      // its service's index in the current policy; -1: gone
	from     *session // the listener that asked for it
	seq      uint64
	pid      int
	pidfd    int
	fd       int    // the executor's copy of the client socket
	cgroup   string // its cgroup, or "" (its process group only)
	start    time.Time
	deadline time.Time // of the time limit; zero: none
	at       int       // index in the deadlines heap, -1 when not in it
	timeout  bool      // the time limit fired
	reaped   bool      // only its cgroup is left
}

// peerNames are the variables sock.env sets; they replace any of the same
// name in the service's environment.
var peerNames = []string{"PROTO", "TCPREMOTEIP", "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT",
	"UNIXREMOTEUID", "UNIXREMOTEGID", "UNIXREMOTEPID"}

// spawn starts the command of m's service with the client socket fd as its
// fds 0, 1 and 2, and takes fd over; its peer variables are from check's
// read of fd (e.req). A command that cannot start is reported to the
// listener as Refused; that is not a violation.
//
//tcb:request-path
func (e *Executor) spawn(s *session, m *ipc.Message, fd int) {
	svc := e.svcs[m.Service]
	env := svc.env
	if svc.PeerEnvironment {
		env = append(env, e.req.env()...) // a copy: environ clipped env
	}
	c := &command{svc: svc, index: int(m.Service), from: s, seq: m.Seq, fd: fd, pidfd: -1, at: -1}
	reason := "fcntl F_SETFL: "
	err := unix.SetNonblock(fd, false)
	if err == nil {
		c.start = time.Now()
		err = e.fork(c, svc.argv, &syscall.ProcAttr{Dir: svc.dir, Env: env,
			Files: []uintptr{uintptr(fd), uintptr(fd), uintptr(fd)},
			Sys:   &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: svc.Uid, Gid: svc.Gid, Groups: svc.Groups}, Setsid: true}})
		if err == nil {
			if svc.TimeLimit > 0 {
				c.deadline = c.start.Add(svc.TimeLimit)
				heap.Push(&e.limits, c)
			}
			e.running.Add(1)
			svc.running++
			return
		}
		// ForkExec does not say which step failed: resource errors come
		// from clone (or setuid at the user's process limit), the rest
		// from chdir, the credentials or exec.
		reason = "execvp " + svc.argv[0] + ": "
		if err == syscall.EAGAIN || err == syscall.ENOMEM {
			reason = "fork: "
		}
	}
	unix.Close(fd)
	e.deliver(s, c, &ipc.Message{Kind: ipc.KindRefused, Seq: m.Seq, Service: m.Service, Reason: clip(reason + err.Error())})
}

// environ returns what spawn takes of service s besides its entry's: its
// environment, less the peer variables when it sets them (slices.Clip: an
// append copies it), and the directory to enter. A command inherits the
// executor's working directory, entered as root at start-up, as spawn(8)'s
// commands inherit master(8)'s: a queue_directory closed to the service's
// user still works. Only another directory is entered in the child, as
// the user ("" when it is the executor's).
func environ(s *policy.Service) (env []string, dir string) {
	env = s.Env
	if s.PeerEnvironment {
		env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
			name, _, _ := strings.Cut(kv, "=")
			return slices.Contains(peerNames, name)
		})
	}
	if wd, _ := os.Getwd(); s.Dir != wd {
		dir = s.Dir
	}
	return slices.Clip(env), dir
}

// fork starts argv as c's process, in a cgroup of its own when there are
// cgroups, with its pidfd in the loop's epoll set. The child gets SIGKILL
// when the thread that forked it ends (invariant 7).
//
//tcb:request-path
func (e *Executor) fork(c *command, argv []string, attr *syscall.ProcAttr) error {
	attr.Sys.PidFD, attr.Sys.Pdeathsig = &c.pidfd, syscall.SIGKILL
	var dir int
	c.cgroup, dir = e.cg.make()
	if dir >= 0 {
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, dir
		defer unix.Close(dir)
	}
	pid, err := syscall.ForkExec(argv[0], argv, attr)
	if err == nil && c.pidfd < 0 {
		unix.Kill(pid, unix.SIGKILL)
		err = fmt.Errorf("no pidfd (Linux 5.4 or later needed)")
	}
	if err != nil {
		e.cg.remove(c.cgroup)
		return err
	}
	c.pid = pid
	e.pids[pid] = true
	e.cmds[c.pidfd] = c
	e.watch(c.pidfd, unix.EPOLLIN)
	return nil
}

// reap collects a command whose pidfd is readable and reports its end.
// Its cgroup goes with it, unless something it started is still in there:
// that is killed at the command's time limit, or when spawnd stops; when
// the limit has fired already, what it killed is still leaving, and kill
// removes the cgroup once it has.
//
//tcb:request-path
func (e *Executor) reap(c *command) {
	var ws syscall.WaitStatus
	if pid, _ := syscall.Wait4(c.pid, &ws, syscall.WNOHANG, nil); pid != c.pid {
		return
	}
	delete(e.cmds, c.pidfd)
	delete(e.pids, c.pid)
	unix.Close(c.pidfd)
	unix.Close(c.fd)
	e.strays()
	c.reaped = true
	if !e.cg.reuse(c.cgroup, c.timeout) {
		if c.timeout { // not all that the kill reached has left its cgroup yet
			e.kill(c) // which removes it once it has
		}
	} else if c.at >= 0 {
		heap.Remove(&e.limits, c.at)
	}
	// ExitStatus is -1 for a command a signal ended, Signal -1 for one
	// that exited: max makes that 0.
	m := &ipc.Message{Kind: ipc.KindExited, Seq: c.seq, Service: uint32(max(c.index, 0)), Pid: int32(c.pid),
		Code: int32(max(ws.ExitStatus(), 0)), Signal: int32(max(ws.Signal(), 0)),
		Timeout: c.timeout, Micros: time.Since(c.start).Microseconds()}
	if c.index >= 0 {
		e.running.Add(-1)
		e.svcs[c.index].running--
	}
	e.deliver(c.from, c, m)
}

// strays reaps the children the executor did not start: processes that a
// command or the listener made its siblings (CLONE_PARENT), which would
// otherwise stay zombies. It looks at a zombie without reaping it first
// (WNOWAIT), so that it never takes a command's status.
//
//tcb:request-path
func (e *Executor) strays() {
	for {
		var si struct {
			signo, errno, code, _ int32
			pid                   int32
			_                     [108]byte
		}
		err := unix.Waitid(unix.P_ALL, 0, (*unix.Siginfo)(unsafe.Pointer(&si)), unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err != nil || si.pid == 0 || e.pids[int(si.pid)] {
			return
		}
		syscall.Wait4(int(si.pid), nil, syscall.WNOHANG, nil)
	}
}

// kill is the time limit: it kills the command's cgroup, or without
// cgroups its process group, as root, and shuts the connection down, so
// that the client sees end of file whatever still holds the socket. A
// command already reaped has left a cgroup behind: that is killed, and
// removed once empty.
//
//tcb:request-path
func (e *Executor) kill(c *command) {
	e.strays()
	if c.reaped {
		switch {
		case c.cgroup == "": // the last pass: strays has reaped what the kill left
			return
		case !e.cg.kill(c.cgroup) || e.cg.remove(c.cgroup):
			c.cgroup = ""
		} // else the killed processes are still leaving
		c.deadline = time.Now().Add(100 * time.Millisecond)
		heap.Push(&e.limits, c)
		return
	}
	if !e.cg.kill(c.cgroup) {
		unix.Kill(-c.pid, unix.SIGKILL)
	}
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
	c.timeout = true
}

// logResult logs a result no listener will take, in the listener's words
// (listener.logResult): an abnormal end as spawn(8) logs it and, with
// Verbose, one line for the connection.
//
//tcb:request-path
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
