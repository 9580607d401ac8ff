package executor

// This file keeps one listener running, as part of the loop: it starts it
// as mail_owner in a cgroup of its own, restarts it with back-off when it
// dies (standalone), kills it (everything it started) on a violation or
// when it does not leave in time, stops it on SIGTERM or SIGINT and, on
// SIGHUP, reloads the configuration in process.

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// hardCap bounds the commands one executor runs at once, whatever the
// listener asks: the executor holds two descriptors per running command.
// fdReserve is what it keeps free of its descriptor limit besides: the
// fork's pipe, a cgroup, the sweep's /proc reads, the log's redial and a new
// listener's pair.
const (
	hardCap   = 4096
	fdReserve = 16
	// grace is how long a listener has to leave once asked (SIGUSR1, or
	// SIGTERM once no command runs) or once its pair is closed, before it
	// is killed.
	grace = 5 * time.Second
)

// sigs receives the signals spawnd acts on. Setup installs it before any
// socket is opened: a client can connect as soon as a socket listens, and
// a signal must not find the default action (termination) then.
var sigs = make(chan os.Signal, 8)

// supervisor is the loop's state about the listener.
type supervisor struct {
	lst     *command // the listener's process until reaped
	started time.Time
	// due is when to kill the listener, or what it started that holds the
	// pair, while either is left; when neither is, when to start the next
	// one. Zero: nothing due.
	due      time.Time
	backoff  time.Duration
	stopping bool
	clean    bool // the last listener exited with status 0
	err      error
	next     *policy.Policy // a valid configuration, waiting for the listener to leave
	nextSvcs []*entry       // its services, with their sockets
	wake     int            // eventfd: a signal came
	got      chan os.Signal // the signals, for the loop; nil: not supervising (a test's Serve)
	status   int            // the listener's status channel: master(8)'s, or keepStatus's
	standIn  int            // keepStatus's end of the listener's, or -1
}

// errDied is Run's result when in Postfix mode the listener failed.
var errDied = errors.New("listener died")

// Configure makes the process-wide settings both modes share (Setup),
// opens the log (postlogd(8) at postlog, when not empty) and returns the
// executor's configuration for p without the sockets: in Postfix mode,
// when gen (master(8)'s generation) is not negative, with master(8)'s
// status channel at ipc.StatusFd.
func Configure(p *policy.Policy, verbose bool, postlog string, gen int64) (Config, error) {
	Setup()
	ident := p.SyslogName + "/spawnd"
	log, err := maillog.Open(p.MaillogFile, postlog, ident, p.SyslogFacility)
	if err != nil {
		return Config{}, err
	}
	self, _ := os.Executable() // empty: services with limits are refused
	cfg := Config{Policy: p, Log: log, Verbose: verbose, Self: self, Status: -1,
		Welcome: ipc.Message{Ident: ident, Facility: uint8(p.SyslogFacility), Verbose: verbose,
			LogKind: string(log.Kind()), Host: os.Getenv("POSTLOG_HOSTNAME")}}
	if w := &cfg.Welcome; gen >= 0 {
		cfg.Status, w.Postfix, w.Pid, w.Generation = ipc.StatusFd, true, int32(os.Getpid()), uint32(gen)
		w.MaxUse, w.MaxIdle = uint32(p.MaxUse), uint32(p.MaxIdle/time.Second)
	}
	return cfg, nil
}

// Run starts an executor for cfg, keeps one listener running and serves
// it until SIGTERM or SIGINT, then waits for the running commands; in
// Postfix mode also until the listener ends. It returns why it stopped
// early: the executor could not start (logged), the listener could not
// (logged) or, in Postfix mode, failed (errDied, for master(8) to see).
func Run(cfg Config) error {
	e, err := New(cfg)
	if err == nil {
		e.sup.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	}
	if err == nil {
		err = e.keepStatus()
	}
	if err != nil {
		cfg.Log.Error("%v", err)
		return err
	}
	p := &e.sup
	p.backoff, p.got = 100*time.Millisecond, make(chan os.Signal, 8)
	e.enter()
	e.watch(p.wake, unix.EPOLLIN)
	go func() {
		for sig := range sigs {
			p.got <- sig
			unix.Write(p.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		}
	}()
	e.startListener()
	e.loop(func() bool { return p.stopping && p.lst == nil && e.sess == nil && len(e.cmds) == 0 })
	for _, m := range e.pending {
		e.logResult(e.svcs[m.Service].Name, e.svcs[m.Service].Argv[0], m)
	}
	e.cg.close() // what commands left in their cgroups
	for _, path := range e.cfg.Paths {
		removeSocket(path)
	}
	return p.err
}

// keepStatus keeps master(8)'s status channel from the listener of a
// service with a maxproc: an honest one says nothing there but a use as
// it ends (listener.notify, served), and a compromised one that said
// TAKEN would have master(8) start a second spawnd of the service, each
// held to maxproc. The listener gets one end of a socket pair instead;
// the executor closes the other when master(8)'s channel ends, so that
// the listener stops as it would. The use is not told: master(8) counts
// uses only to throttle a process that exits non-zero without one, and
// spawnd exits non-zero only when it could not start or its listener
// failed, which then told none either.
func (e *Executor) keepStatus() error {
	e.sup.status, e.sup.standIn = e.cfg.Status, -1
	if e.cfg.Status < 0 || e.cfg.Policy.Services[0].ProcessLimit == 0 {
		return nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	e.sup.standIn, e.sup.status = fds[0], fds[1]
	e.watch(e.cfg.Status, unix.EPOLLIN)
	return nil
}

// event handles what supervision watches: the listener's pidfd, the
// signals (the eventfd) and master(8)'s status channel (keepStatus).
func (e *Executor) event(fd int) {
	p := &e.sup
	if fd == e.cfg.Status { // master(8)'s end of it closed (keepStatus)
		unix.EpollCtl(e.ep, unix.EPOLL_CTL_DEL, fd, nil)
		unix.Close(p.standIn)
		p.standIn = -1
		return
	}
	if p.lst != nil && fd == p.lst.pidfd {
		e.listenerExited()
		return
	}
	unix.Read(p.wake, make([]byte, 8))
	for len(p.got) > 0 {
		switch sig := <-p.got; {
		case sig == unix.SIGHUP && e.cfg.Reload != nil && !p.stopping:
			e.reload()
		case sig != unix.SIGHUP && !p.stopping:
			p.stopping = true
			if p.lst != nil {
				unix.Kill(p.lst.pid, unix.SIGTERM)
			}
			if e.cfg.Status >= 0 {
				// postfix stop: master(8) signals its process group,
				// not the commands (own sessions); end them too.
				e.Terminate()
			}
		}
	}
}

// tick does what supervision has due at now.
func (p *supervisor) tick(e *Executor, now time.Time) {
	if p.stopping && p.lst != nil && p.due.IsZero() && len(e.cmds) == 0 {
		p.due = now.Add(grace)
	}
	if p.due.IsZero() || now.Before(p.due) {
		return
	}
	p.due = time.Time{}
	switch {
	case p.lst != nil:
		e.cfg.Log.Warning("listener pid %d did not leave in time: killing it", p.lst.pid)
		e.killListener()
	case e.sess != nil: // something it started holds the pair
		e.end(e.sess, nil)
	case !p.stopping:
		e.startListener()
	}
}

// startListener starts a listener as mail_owner, in a session and a
// cgroup of its own, with the pair, the log, master(8)'s status channel
// and the listening sockets at ipc's descriptor numbers; fds 0, 1 and 2
// are /dev/null, not root's stderr: a terminal there would be the
// listener's to inject input into (TIOCSTI).
func (e *Executor) startListener() {
	p, c := &e.sup, &command{pidfd: -1, at: -1}
	argv := []string{filepath.Join(filepath.Dir(e.cfg.Self), "spawnd-listener")}
	mine, theirs, err := ipc.Pair()
	if err == nil {
		null, _ := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
		files := []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(theirs), uintptr(e.cfg.Log.Fd())}
		if e.cfg.Status >= 0 {
			files = append(files, uintptr(p.status))
		}
		for _, svc := range e.svcs {
			for _, fd := range svc.fds {
				files = append(files, uintptr(fd))
			}
		}
		owner := e.cfg.Policy.MailOwner
		err = e.fork(c, argv, &syscall.ProcAttr{Files: files,
			Sys: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: owner.Uid, Gid: owner.Gid, Groups: []uint32{}}, Setsid: true}})
		unix.Close(theirs)
		unix.Close(null)
	}
	if err != nil {
		unix.Close(mine)
		e.cfg.Log.Error("start %s: %v", argv[0], err)
		p.stopping, p.err = true, err
		return
	}
	delete(e.cmds, c.pidfd)
	p.lst, p.started = c, time.Now()
	e.attach(ipc.NewConn(mine))
}

// killListener kills the listener and everything it started: its cgroup,
// or its session's process group.
//
//tcb:request-path
func (e *Executor) killListener() {
	if !e.cg.kill(e.sup.lst.cgroup) {
		unix.Kill(-e.sup.lst.pid, unix.SIGKILL)
		unix.Kill(e.sup.lst.pid, unix.SIGKILL)
	}
}

// listenerExited reaps the listener; what it started goes with it, and
// its cgroup as a command's does (kill).
func (e *Executor) listenerExited() {
	p, c := &e.sup, e.sup.lst
	var ws syscall.WaitStatus
	if pid, _ := syscall.Wait4(c.pid, &ws, syscall.WNOHANG, nil); pid != c.pid {
		return
	}
	unix.Close(c.pidfd)
	delete(e.pids, c.pid)
	e.killListener()
	c.reaped = true
	e.kill(c)
	p.clean = ws.Exited() && ws.ExitStatus() == 0
	if !p.clean && !p.stopping && p.next == nil { // nor asked to leave for a reload
		status := "exit status " + strconv.Itoa(ws.ExitStatus())
		if ws.Signaled() {
			status = "killed by signal " + strconv.Itoa(int(ws.Signal()))
		}
		e.cfg.Log.Warning("listener pid %d %s", c.pid, status)
	}
	p.lst, p.due = nil, time.Time{}
	e.over()
}

// ended is told that a session ended: a listener that broke the protocol
// is killed; an honest one has its grace to exit.
//
//tcb:request-path
func (e *Executor) ended(s *session) {
	if e.sup.got == nil {
		return
	}
	s.conn.Close()
	if e.sup.lst != nil && s.err != nil {
		e.killListener()
	}
	e.over()
}

// over decides what follows a listener once both its process and its
// session are gone; while one is left, that has its grace to go.
func (e *Executor) over() {
	p := &e.sup
	if p.lst != nil || e.sess != nil {
		p.due = cmp.Or(p.due, time.Now().Add(grace))
		return
	}
	p.due = time.Time{}
	switch {
	case p.stopping:
	case e.cfg.Status >= 0: // max_use, max_idle or master(8) gone, or a failure
		p.stopping = true
		if !p.clean {
			p.err = errDied
		}
	case p.next != nil:
		e.apply()
		e.startListener()
	default:
		if time.Since(p.started) > 10*time.Second {
			p.backoff = 100 * time.Millisecond
		}
		e.cfg.Log.Warning("restarting the listener in %v", p.backoff)
		p.due = time.Now().Add(p.backoff)
		p.backoff = min(2*p.backoff, 10*time.Second)
	}
}

// reload loads the configuration again and opens the sockets of its new
// services. When both work the listener is asked to leave (SIGUSR1); once
// it has, the new configuration applies and a new listener starts (at
// once when none runs). When either fails, every error is logged and the
// old configuration keeps serving.
func (e *Executor) reload() {
	p := &e.sup
	e.release(p.nextSvcs) // an earlier reload still waiting: this one wins
	p.next, p.nextSvcs = nil, nil
	pol, err := e.cfg.Reload()
	if err == nil {
		p.nextSvcs, err = e.entries(pol, nil)
	}
	if err != nil {
		e.cfg.Log.Warning("reload: keeping the old configuration: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	p.next = pol
	e.cfg.Log.Info("reload: configuration is valid, restarting the listener with it")
	if p.lst != nil { // over gives it its grace, once
		unix.Kill(p.lst.pid, unix.SIGUSR1)
	}
	e.over()
}

// apply makes the waiting configuration current: new requests are
// checked against it, the sockets no service of it has are closed,
// running commands keep their entry and deadline and count for the
// service of their name, and the kept results go to that service or, when
// it is gone, to the log.
func (e *Executor) apply() {
	p, old := &e.sup, e.svcs
	e.cfg.Policy, e.svcs, p.next, p.nextSvcs = p.next, p.nextSvcs, nil, nil
	e.release(old)
	e.enter()
	e.running.Store(0)
	for _, c := range e.cmds {
		if c.index = e.index(c.svc.Name); c.index >= 0 {
			e.svcs[c.index].running++
			e.running.Add(1)
		}
	}
	e.pending = slices.DeleteFunc(e.pending, func(m *ipc.Message) bool {
		s, i := old[m.Service], e.index(old[m.Service].Name)
		if m.Service = uint32(max(i, 0)); i < 0 {
			e.logResult(s.Name, s.Argv[0], m)
		}
		return i < 0
	})
}

// index returns the index of the current service called name, or -1.
func (e *Executor) index(name string) int {
	return slices.IndexFunc(e.svcs, func(s *entry) bool { return s.Name == name })
}

// enter enters the commands' working directory as root, so that they
// inherit it (see spawn), and says so in each service's entry (environ).
func (e *Executor) enter() {
	if err := os.Chdir(e.svcs[0].Dir); err != nil { // a policy has a service (policy.Load)
		e.cfg.Log.Warning("chdir %s: %v", e.svcs[0].Dir, err)
	}
	for _, s := range e.svcs {
		s.env, s.dir = environ(s.Service)
	}
}

// commandCap returns the hard cap for a process whose listening sockets
// are open: hardCap, or less when RLIMIT_NOFILE leaves no room for two
// descriptors per command. The listener never asks past the cap (Welcome
// announces it), so a low limit makes connections wait in the backlog
// instead of making the kernel drop the descriptors it passes.
func commandCap(log *maillog.Logger) int {
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) // fails only for a bad resource or address
	open, _ := os.ReadDir("/proc/self/fd")
	n := (int(min(lim.Cur, 2*hardCap+1<<10)) - len(open) - fdReserve) / 2
	if n >= hardCap {
		return hardCap
	}
	n = max(n, 1)
	log.Warning("descriptor limit %d (RLIMIT_NOFILE) leaves room for %d commands at once; more connections wait", lim.Cur, n)
	return n
}
