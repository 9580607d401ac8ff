package executor

// This file starts and reaps every child of the process. Its invariants,
// with the reasons; run the root tests (go test ./executor as root) after
// any change here:
//
//  1. The executor never changes its own uid, gid or groups. The Go
//     runtime has many threads and a set*id call would race them; a child
//     gets its credentials in the child, between clone and exec, through
//     SysProcAttr.Credential (setgroups, setgid, setuid, in that order:
//     syscall/exec_linux.go).
//  2. Every descriptor the executor holds is close-on-exec: the pair and
//     received client sockets (MSG_CMSG_CLOEXEC), the log, the listening
//     sockets, and, through Setup, whatever the process inherited. So no
//     child ever sees another client's connection, a listening socket or
//     the log.
//  3. A command gets exactly fds 0, 1, 2, each its client socket, in
//     blocking mode; ForkExec dup2s them into place and that clears their
//     close-on-exec flag.
//  4. Nothing from the message decides what runs: path, argv, uid, gid,
//     groups, environment, directory and time limit come from the policy;
//     the message only picks the service. Peer variables come from the
//     descriptor (getsockname, getpeername, SO_PEERCRED). A service with
//     resource limits executes spawnd-limits in front of its command,
//     built from the policy too (limits.go).
//  5. One lock, mu, and one reaper for all children of the process. A pid
//     stays in procs until the reaper has reaped it under mu, and the time
//     limit kills, under mu, only a pid still in procs: until reaped, a
//     leader keeps its pid, so kill(-pid) cannot reach a process group
//     that has reused the number. Children are started under mu too, so
//     the reaper never meets a pid before procs has it.
//  6. Nothing else in the process may wait for children (os/exec, os.Process
//     Wait): the reaper takes whatever exits.
//  7. Every child is forked on the main thread, and a reload's exec runs
//     there too (OnMainThread, Exec): Pdeathsig fires when the thread that
//     forked a child ends, exec ends every thread but its own, and the
//     main thread stays the main thread of the next image. So commands
//     outlive any number of reloads and die with the process. They cross
//     the exec as zombies at worst: Handover holds mu until it, and Adopt
//     puts them back in procs before the new image's reaper first runs.

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

// child is a process in procs; exited is called under mu once it is reaped.
type child interface{ exited(ws syscall.WaitStatus) }

var (
	mu         sync.Mutex        // guards procs and every Executor's fields
	procs      = map[int]child{} // children not yet reaped, by pid
	reaperOnce sync.Once
)

// Setup makes the process-wide settings a command inherits and the
// executor relies on; spawnd calls it once at start-up: umask 077;
// SIGPIPE and SIGXFSZ ignored (as spawn(8) leaves them; exec resets the
// signals the Go runtime catches to their default); every inherited fd above 2
// close-on-exec (invariant 2); the soft RLIMIT_NOFILE at the hard limit,
// for one descriptor per running command.
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
		if old[0] == 1 { // SIG_IGN
			dfl := [4]uint64{}
			unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
	signal.Ignore(syscall.SIGPIPE, syscall.SIGXFSZ)
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, ent := range ents {
		if fd, err := strconv.Atoi(ent.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	// The Go runtime has already raised it to the hard limit less one and
	// gives children their original soft limit back; raise it only when
	// it has not.
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Max > 0 && lim.Cur < lim.Max-1 {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

// command is one running command.
type command struct {
	e        *Executor
	from     *session // the listener that asked for it
	seq      uint64
	service  uint32
	pid      int
	fd       int // the executor's copy of the client socket
	start    time.Time
	deadline time.Time // of the time limit; zero: none
	timer    *time.Timer
	timeout  bool // the time limit fired

	// Set for a command adopted after a reload whose service the new
	// policy does not have; service is then meaningless.
	name, path string
}

// peerNames are the variables peerEnv sets; they replace any of the same
// name in the service's environment.
var peerNames = []string{"PROTO", "TCPREMOTEIP", "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT",
	"UNIXREMOTEUID", "UNIXREMOTEGID", "UNIXREMOTEPID"}

// spawn starts the command of m's service with the client socket fd as its
// fds 0, 1 and 2, and takes fd over. A command that cannot start is
// reported to the listener as Refused; that is not a violation.
//
//tcb:request-path
func (e *Executor) spawn(s *session, m *ipc.Message, fd int) {
	svc := e.cfg.Policy.Services[m.Service]
	env := svc.Env
	var reason string
	if svc.PeerEnvironment {
		peer, err := peerEnv(fd)
		env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
			name, _, _ := strings.Cut(kv, "=")
			return slices.Contains(peerNames, name)
		})
		env = append(env, peer...)
		if err != nil {
			reason = err.Error()
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil && reason == "" {
		reason = fmt.Sprintf("fcntl F_SETFL: %v", err)
	}
	// A command inherits the executor's working directory, entered as
	// root at start-up, as spawn(8)'s commands inherit master(8)'s: a
	// queue_directory closed to the service's user still works. Only
	// another directory is entered in the child, as the user.
	dir := svc.Dir
	if dir == e.cwd {
		dir = ""
	}
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{uintptr(fd), uintptr(fd), uintptr(fd)},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: svc.Uid, Gid: svc.Gid, Groups: svc.Groups},
			Setsid:     true,
			// Sent when the thread that forked ends: the main thread,
			// which ends only with the process (invariant 7).
			Pdeathsig: syscall.SIGKILL,
		},
	}
	argv := e.argv[m.Service]
	mu.Lock()
	defer mu.Unlock()
	if reason == "" {
		start := time.Now()
		var pid int
		var err error
		onMain(func() { pid, err = syscall.ForkExec(argv[0], argv, attr) })
		if err == nil {
			c := &command{e: e, from: s, seq: m.Seq, service: m.Service, pid: pid, fd: fd, start: start}
			if svc.TimeLimit > 0 {
				c.deadline = start.Add(svc.TimeLimit)
				c.timer = time.AfterFunc(svc.TimeLimit, c.expire)
			}
			e.running++
			e.byService[m.Service]++
			started(pid, c)
			return
		}
		// ForkExec does not say which step failed: resource errors come
		// from clone (or setuid at the user's process limit), the rest
		// from chdir, the credentials or exec.
		reason = fmt.Sprintf("execvp %s: %v", argv[0], err)
		if err == syscall.EAGAIN || err == syscall.ENOMEM {
			reason = fmt.Sprintf("fork: %v", err)
		}
	}
	unix.Close(fd)
	e.deliver(s, &ipc.Message{Kind: ipc.KindRefused, Seq: m.Seq, Service: m.Service, Reason: clip(reason)})
}

// expire is the time limit: it kills the command's process group and
// every descendant that left it (setsid), as root, and shuts the
// connection down, so that the client sees end of file whatever still
// holds the socket. Descendants are found through /proc by parent pid,
// each stopped before its children are looked for: a stopped process can
// neither fork a new one nor reap one, so no pid in the tree can be reused
// before the kill.
//
//tcb:request-path
func (c *command) expire() {
	mu.Lock()
	defer mu.Unlock()
	if procs[c.pid] != child(c) {
		return // reaped: the pid may be another process's by now
	}
	unix.Kill(-c.pid, unix.SIGSTOP)
	tree := []int{c.pid}
	in := map[int]bool{c.pid: true}
	for round := 0; round < 100; round++ {
		more := children(in)
		if len(more) == 0 {
			break
		}
		for _, pid := range more {
			unix.Kill(pid, unix.SIGSTOP)
			in[pid] = true
		}
		tree = append(tree, more...)
	}
	unix.Kill(-c.pid, unix.SIGKILL)
	for _, pid := range tree {
		unix.Kill(pid, unix.SIGKILL)
	}
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
	c.timeout = true
}

// children returns the processes whose parent is in parents and which are
// not in it themselves.
//
//tcb:request-path
func children(parents map[int]bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err == nil && !parents[pid] && parents[parent(pid)] {
			out = append(out, pid)
		}
	}
	return out
}

// exited reports the command's end to the listener.
//
//tcb:request-path
func (c *command) exited(ws syscall.WaitStatus) {
	if c.timer != nil {
		c.timer.Stop()
	}
	unix.Close(c.fd)
	e := c.e
	m := &ipc.Message{Kind: ipc.KindExited, Seq: c.seq, Service: c.service, Pid: int32(c.pid),
		Timeout: c.timeout, Micros: time.Since(c.start).Microseconds()}
	if ws.Signaled() {
		m.Signal = int32(ws.Signal())
	} else {
		m.Code = int32(ws.ExitStatus())
	}
	if c.name != "" { // adopted, of a service no listener knows
		e.logResult(c.name, c.path, m)
		return
	}
	e.running--
	e.byService[c.service]--
	e.deliver(c.from, m)
	if e.running == 0 {
		e.idle.Broadcast()
	}
}

// process is a child started by StartProcess.
type process chan syscall.WaitStatus

func (p process) exited(ws syscall.WaitStatus) { p <- ws }

// StartProcess starts a child that is not a command (the listener) through
// the same fork machinery and the one reaper, so that no wait call races
// another. files become fds 0..len-1 of the child; cred nil keeps root.
// The child is killed when the executor dies. The channel receives the
// wait status once when the process ends.
func (e *Executor) StartProcess(argv, env []string, files []int, cred *syscall.Credential) (pid int, exited <-chan syscall.WaitStatus, err error) {
	fds := make([]uintptr, len(files))
	for i, fd := range files {
		fds[i] = uintptr(fd)
	}
	// Its own session: no controlling terminal, and out of the process
	// group a terminal or master(8) signals.
	attr := &syscall.ProcAttr{Env: env, Files: fds,
		Sys: &syscall.SysProcAttr{Credential: cred, Setsid: true, Pdeathsig: syscall.SIGKILL}}
	p := make(process, 1)
	mu.Lock()
	defer mu.Unlock()
	onMain(func() { pid, err = syscall.ForkExec(argv[0], argv, attr) })
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	started(pid, p)
	return pid, p, nil
}

// started records a new child, under mu, and makes sure the reaper runs.
//
//tcb:request-path
func started(pid int, c child) {
	procs[pid] = c
	reaperOnce.Do(func() {
		sigchld := make(chan os.Signal, 1)
		signal.Notify(sigchld, syscall.SIGCHLD)
		go reap(sigchld)
	})
}

// reap is the one reaper: under mu, wait4 reaps every child that has
// ended, then it waits for the next SIGCHLD. It waits on a channel, not in
// a blocking wait call, so that no thread sits in a system call holding a
// scheduler slot: the runtime would take it back every few microseconds.
// A SIGCHLD that comes while it reaps leaves one in the channel, so no
// exit goes unseen; the first pass runs after Notify, so neither does a
// child that ended before it.
//
//tcb:request-path
func reap(sigchld <-chan os.Signal) {
	for {
		mu.Lock()
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if c, ok := procs[pid]; ok {
				delete(procs, pid)
				c.exited(ws)
			}
		}
		mu.Unlock()
		<-sigchld
	}
}

// peerEnv returns the UCSPI-style variables for the client socket fd, read
// from the socket, never from the message.
//
//tcb:request-path
func peerEnv(fd int) ([]string, error) {
	local, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	if _, ok := local.(*unix.SockaddrUnix); ok {
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			return nil, fmt.Errorf("getsockopt SO_PEERCRED: %w", err)
		}
		return []string{"PROTO=UNIX", fmt.Sprint("UNIXREMOTEUID=", cred.Uid),
			fmt.Sprint("UNIXREMOTEGID=", cred.Gid), fmt.Sprint("UNIXREMOTEPID=", cred.Pid)}, nil
	}
	remote, err := unix.Getpeername(fd)
	if err != nil {
		return nil, fmt.Errorf("getpeername: %w", err)
	}
	lip, lport := inet(local)
	rip, rport := inet(remote)
	return []string{"PROTO=TCP", "TCPREMOTEIP=" + rip, "TCPREMOTEPORT=" + rport,
		"TCPLOCALIP=" + lip, "TCPLOCALPORT=" + lport}, nil
}

// inet returns an inet or inet6 address and port as text; an IPv4 client
// of an IPv6 socket shows as IPv4.
//
//tcb:request-path
func inet(sa unix.Sockaddr) (ip, port string) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr).String(), strconv.Itoa(a.Port)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap().String(), strconv.Itoa(a.Port)
	}
	return "", ""
}
