// Package executor is spawnd's root side: one loop on the main thread
// that serves the protocol of package ipc with one listener at a time,
// checks every request against the policy, starts each command as its
// service's user with the client connection as fds 0, 1 and 2, in a cgroup
// of its own, holds it to its time limit, reaps it and reports the result;
// and keeps the listener running (supervise.go). The listener is hostile:
// the first request that breaks the protocol ends it. spawn.go holds the
// invariants.
//
// The request path is this file and spawn.go: loop, receive, check, spawn,
// reap, expire, deliver and flush. It waits in one epoll_wait on the
// listener's pair, a pidfd per running command and a timerfd for the
// nearest time limit, and hands nothing to another goroutine.
package executor

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// Config is what the executor needs.
type Config struct {
	Policy  *policy.Policy
	Log     *maillog.Logger
	Cap     int     // hard cap on running commands (a flood past it is a violation), set by New from RLIMIT_NOFILE
	Sockets [][]int // per service: its listening sockets in this process; nil: New opens them
	Status  int     // master(8)'s status channel (Postfix mode), or -1
	Verbose bool    // log the results only the executor sees as the listener's -v does
	Self    string  // spawnd's executable, for services with limits (commandLine) and the listener beside it

	// Supervision (Run) only.
	Welcome ipc.Message                    // the listener's settings, sent in Welcome
	Reload  func() (*policy.Policy, error) // standalone: load the configuration again (SIGHUP)
	Paths   []string                       // unix socket paths spawnd created, removed when closed
}

// Executor runs the commands of one policy at a time for a succession of
// listeners. Commands outlive the listener that asked for them, and a
// reload.
type Executor struct {
	cfg     Config
	svcs    []*entry         // the current policy's, by wire index
	cmds    map[int]*command // running, by pidfd
	pids    map[int]bool     // the pids of cmds and the listener
	limits  deadlines        // commands with a time limit, nearest first
	running atomic.Int32     // commands of the current services
	sess    *session         // the listener's pair, or nil
	pending []*ipc.Message
	ep      int // the loop's epoll set
	timer   int // timerfd, armed at the nearest deadline
	armed   time.Time
	yielded time.Time // see loop
	cg      *cgroups  // nil: no cgroup v2, process groups only (spawn.go)
	netns   uint64    // the network namespace's cookie (tie.go)
	req     sock      // the passed socket of the request in hand: check reads it, spawn uses it
	sup     supervisor
}

// entry is one service of a policy, as the executor runs it.
type entry struct {
	*policy.Service
	argv    []string // what its children exec (commandLine)
	env     []string // and their environment and directory (environ)
	dir     string
	fds     []int   // its listening sockets
	lsn     []lsock // what they are, for tied
	running int     // its running commands
}

// session is one listener's pair.
type session struct {
	conn    *ipc.Conn
	fd      int
	st      state
	out     []*ipc.Message // to send, oldest first
	writing bool           // EPOLLOUT is on: out waits for room
	stuck   bool           // out overflowed
	ended   bool
	err     error // why it ended: nil at end of file
}

// New returns an executor for cfg: each service's entry, with
// cfg.Sockets or, when that is nil, the sockets systemd passed or new ones
// (entries); its epoll set and timer, the cgroup its commands go to
// (killing what a previous executor left there).
func New(cfg Config) (*Executor, error) {
	e := &Executor{cfg: cfg, cmds: map[int]*command{}, pids: map[int]bool{}}
	var err error
	if cfg.Sockets != nil {
		e.svcs = e.services(cfg.Policy.Services, cfg.Sockets)
	} else if e.svcs, err = e.entries(cfg.Policy, inherited()); err != nil {
		return nil, err
	}
	e.cfg.Cap = commandCap(cfg.Log)
	e.netns = netnsCookie()
	if e.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if e.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	e.watch(e.timer, unix.EPOLLIN)
	e.cg = newCgroups(cfg.Log)
	return e, nil
}

// services returns the entries of svcs with their listening sockets.
func (e *Executor) services(svcs []*policy.Service, sockets [][]int) []*entry {
	out := make([]*entry, len(svcs))
	for i, s := range svcs {
		out[i] = &entry{Service: s, argv: commandLine(e.cfg.Self, s), fds: sockets[i], lsn: listening(sockets[i])}
		out[i].env, out[i].dir = environ(s)
	}
	return out
}

func (e *Executor) watch(fd int, events uint32) {
	unix.EpollCtl(e.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
}

// The states of one session; they only move forward.
type state int

const (
	starting state = iota // expects Hello
	serving               // expects Run
)

// permits is the state column of the request table (ipc has the rest):
// the one kind each state accepts.
var permits = [...]ipc.Kind{starting: ipc.KindHello, serving: ipc.KindRun}

var stateNames = [...]string{starting: "starting", serving: "serving"}

var errStuck = errors.New("not reading its results")

// loop is the executor: it waits for the pair, the pidfds, the timer and
// what supervision watches, and handles each in turn until done.
//
//tcb:request-path
func (e *Executor) loop(done func() bool) {
	events := make([]unix.EpollEvent, 128)
	for !done() {
		e.arm()
		// The Go runtime preempts a goroutine it has not rescheduled for
		// 10 ms even while it waits in a system call, with a signal, and
		// then polls every 20 us for a while: yielding first costs less.
		if now := time.Now(); now.Sub(e.yielded) >= 5*time.Millisecond {
			runtime.Gosched()
			e.yielded = now
		}
		n, err := unix.EpollWait(e.ep, events, -1)
		if err != nil && err != unix.EINTR {
			e.cfg.Log.Fatal("epoll_wait: %v", err)
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if c := e.cmds[fd]; c != nil {
				e.reap(c)
			} else if e.sess != nil && fd == e.sess.fd {
				e.receive(e.sess, ev.Events)
			} else if fd != e.timer {
				e.event(fd)
			}
		}
		e.expire(time.Now())
		e.flush(false)
	}
}

// receive takes the requests waiting on the pair, a bounded number at a
// time so that results and time limits are not starved, and applies each:
// every request passes ipc's checks in Receive, then check's, before a
// handler sees it.
//
//tcb:request-path
func (e *Executor) receive(s *session, events uint32) {
	if events&unix.EPOLLOUT != 0 {
		e.flush(true)
	}
	for range 64 {
		m, fd, err := s.conn.Receive(ipc.FromListener)
		if errors.Is(err, unix.EAGAIN) {
			return
		} else if err == io.EOF && s.stuck {
			err = errStuck
		} else if err == nil {
			err = e.check(s.st, m, fd)
		}
		if err != nil {
			if fd >= 0 { // Receive's errors close it; check's leave it
				unix.Close(fd)
			}
			e.end(s, err)
			return
		}
		if m.Kind == ipc.KindHello {
			e.welcome(s)
		} else {
			e.spawn(s, m, fd)
		}
	}
}

// check applies the executor's checks, in ipc/doc.go's order: the state
// allows the kind, a Run's descriptor is a stream socket that is not
// listening (read into e.req, tie.go), the service exists, the running
// commands are below the hard cap and the service's below its process
// limit, the descriptor is a connection accepted on the service's
// listening socket (tied), the service's client_access admits its client.
//
//tcb:request-path
func (e *Executor) check(st state, m *ipc.Message, fd int) error {
	name := ipc.KindName(m.Kind)
	if permits[st] != m.Kind {
		return &ipc.Violation{Check: "state", Detail: fmt.Sprintf("%s while %s", name, stateNames[st])}
	}
	if m.Kind != ipc.KindRun {
		return nil
	}
	if err := e.req.read(fd, e.netns != 0); err != nil { // a Run has one (ipc.Check)
		return err
	}
	if n := len(e.svcs); int64(m.Service) >= int64(n) {
		return &ipc.Violation{Check: "service", Detail: fmt.Sprintf("%s for service %d, have %d", name, m.Service, n)}
	}
	if int(e.running.Load()) >= e.cfg.Cap {
		return &ipc.Violation{Check: "cap", Detail: fmt.Sprintf("%s past the hard cap of %d running commands", name, e.cfg.Cap)}
	}
	svc := e.svcs[m.Service]
	if svc.ProcessLimit > 0 && svc.running >= svc.ProcessLimit {
		return &ipc.Violation{Check: "limit", Detail: fmt.Sprintf("%s past service %s's process limit of %d", name, svc.Name, svc.ProcessLimit)}
	}
	if err := e.req.tied(fd, svc.lsn, e.netns); err != nil {
		return &ipc.Violation{Check: "tie", Detail: fmt.Sprintf("%s for service %s: passed socket fails check %v", name, svc.Name, err)}
	}
	if err := svc.Access.Check(e.req.client()); err != nil {
		return &ipc.Violation{Check: "access", Detail: fmt.Sprintf("%s for service %s: %v", name, svc.Name, err)}
	}
	return nil
}

// welcome answers Hello: Welcome, one Service per service, then the
// results kept for this listener. Running counts, per service, the
// commands the listener will hear of with Seq 0: still running, or ended
// with the result kept.
//
//tcb:request-path
func (e *Executor) welcome(s *session) {
	s.st = serving
	first := int32(ipc.ListenFd)
	if e.cfg.Status >= 0 {
		first++
	}
	w := e.cfg.Welcome
	w.Kind, w.Services, w.Cap = ipc.KindWelcome, uint32(len(e.svcs)), uint32(e.cfg.Cap)
	s.out = append(s.out, &w)
	for i, svc := range e.svcs {
		n := svc.running
		for _, m := range e.pending {
			if m.Service == uint32(i) {
				n++
			}
		}
		s.out = append(s.out, &ipc.Message{Kind: ipc.KindService, Service: uint32(i), Name: clip(svc.Name),
			Command: clip(svc.Argv[0]), Limit: uint32(svc.ProcessLimit),
			Fd: first, NFd: uint32(len(svc.fds)), Running: uint32(n), Access: svc.Access.String(),
			PerHost: uint32(svc.ClientLimit), Rate: uint32(svc.RateLimit), RateSec: uint32(svc.RateUnit.Seconds())})
		first += int32(len(svc.fds))
	}
	s.out = append(s.out, e.pending...)
	e.pending = nil
}

// deliver queues a result of a command of service i (-1: a service the
// current policy does not have) for the listener. A result for a command
// an earlier listener asked for goes with Seq 0. An honest listener keeps
// fewer than Cap commands unanswered, so the queue cannot fill; when it
// does, the listener is not reading: the result is kept, and the pair shut
// down so that the session ends.
//
//tcb:request-path
func (e *Executor) deliver(from *session, c *command, m *ipc.Message) {
	s := e.sess
	switch {
	case c.index < 0:
		e.logResult(c.svc.Name, c.svc.Argv[0], m)
	case s == nil || s.st != serving:
		e.keep(m)
	case len(s.out) > e.cfg.Cap+len(e.svcs):
		e.keep(m)
		s.stuck = true
		s.conn.Shutdown() // again, if stuck already: harmless
	default:
		if s != from {
			m.Seq = 0
		}
		s.out = append(s.out, m)
	}
}

// keep holds a result for the next listener. At most Cap are kept, which
// an honest listener never exceeds; beyond, the oldest goes.
//
//tcb:request-path
func (e *Executor) keep(m *ipc.Message) {
	m.Seq = 0
	e.pending = append(e.pending[max(len(e.pending)+1-e.cfg.Cap, 0):], m) // the oldest go past Cap
}

// flush sends what the session has queued, without blocking: what does
// not fit waits for the pair to be writable. A result whose send fails is
// kept; a send error ends nothing by itself (the session ends on end of
// file).
//
//tcb:request-path
func (e *Executor) flush(writable bool) {
	s := e.sess
	if s == nil || s.writing && !writable {
		return
	}
	for len(s.out) > 0 {
		err := s.conn.Send(s.out[0], -1)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if m := s.out[0]; err != nil && (m.Kind == ipc.KindExited || m.Kind == ipc.KindRefused) {
			e.keep(m)
		}
		s.out = s.out[1:]
	}
	if want := len(s.out) > 0; want != s.writing {
		s.writing = want
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.fd)}
		if want {
			ev.Events |= unix.EPOLLOUT
		}
		unix.EpollCtl(e.ep, unix.EPOLL_CTL_MOD, s.fd, &ev)
	}
}

// attach starts a session on conn, whose descriptor it makes
// non-blocking.
func (e *Executor) attach(conn *ipc.Conn) *session {
	s := &session{conn: conn, fd: conn.Fd()}
	unix.SetNonblock(s.fd, true)
	e.watch(s.fd, unix.EPOLLIN)
	e.sess = s
	return s
}

// end ends a session for err (io.EOF or nil: the listener left; else a
// violation, logged once): the pair is shut down,
// so that the listener sees end of file, and the results not yet sent are
// kept for the next listener.
//
//tcb:request-path
func (e *Executor) end(s *session, err error) {
	if err == io.EOF {
		err = nil
	} else if err != nil {
		e.cfg.Log.Warning("listener %v; stopping listener", err)
	}
	s.ended, s.err = true, err
	s.conn.Shutdown()
	unix.EpollCtl(e.ep, unix.EPOLL_CTL_DEL, s.fd, nil)
	for _, m := range s.out {
		if m.Kind == ipc.KindExited || m.Kind == ipc.KindRefused {
			e.keep(m)
		}
	}
	s.out = nil
	e.sess = nil
	e.ended(s)
}

// arm sets the timer to the nearest deadline, when that is earlier than
// the one it is set to: a timer that fires early is set again.
//
//tcb:request-path
func (e *Executor) arm() {
	next := e.sup.due // supervision's next step
	if len(e.limits) > 0 && (next.IsZero() || e.limits[0].deadline.Before(next)) {
		next = e.limits[0].deadline
	}
	if next.IsZero() || !e.armed.IsZero() && !next.Before(e.armed) {
		return
	}
	e.armed = next
	d := max(time.Until(next), time.Microsecond)
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	unix.TimerfdSettime(e.timer, 0, &spec, nil)
}

// expire kills the commands whose time limit has passed and does what
// supervision has due.
//
//tcb:request-path
func (e *Executor) expire(now time.Time) {
	if !e.armed.IsZero() && !now.Before(e.armed) {
		var b [8]byte
		unix.Read(e.timer, b[:])
		e.armed = time.Time{}
	}
	for len(e.limits) > 0 && !now.Before(e.limits[0].deadline) {
		e.kill(heap.Pop(&e.limits).(*command))
	}
	e.sup.tick(e, now)
}

// deadlines is a heap of commands by deadline.
type deadlines []*command

//tcb:request-path
func (d deadlines) Len() int { return len(d) }

//tcb:request-path
func (d deadlines) Less(i, j int) bool { return d[i].deadline.Before(d[j].deadline) }

//tcb:request-path
func (d deadlines) Swap(i, j int) { d[i], d[j] = d[j], d[i]; d[i].at, d[j].at = i, j }

//tcb:request-path
func (d *deadlines) Push(x any) { c := x.(*command); c.at = len(*d); *d = append(*d, c) }

//tcb:request-path
func (d *deadlines) Pop() any {
	c := (*d)[len(*d)-1]
	*d, c.at = (*d)[:len(*d)-1], -1
	return c
}

// clip bounds a text field so that every message fits ipc.MaxMessage.
//
//tcb:request-path
func clip(s string) string { return s[:min(len(s), 300)] }

// Terminate sends SIGTERM to the process group of every running command
// (postfix stop: master(8) signals only its own process group).
func (e *Executor) Terminate() {
	for _, c := range e.cmds {
		unix.Kill(-c.pid, unix.SIGTERM)
	}
}
