// Package executor is spawnd's root side: it serves the protocol of package
// ipc with one listener at a time, checks every request against the
// policy, starts each command as its service's user with the client
// connection as fds 0, 1 and 2, enforces the time limit, reaps every child
// of the process and reports each result. The listener is hostile: the
// first request that breaks the protocol ends it. spawn.go holds the
// invariants.
package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// Config is what the executor needs.
type Config struct {
	Policy   *policy.Policy
	Log      *maillog.Logger
	Cap      int      // hard cap on running commands (a flood past it is a violation)
	ListenFd []int32  // per service index: first listening fd number in the listener process
	ListenN  []uint32 // per service index: number of listening fds
	Verbose  bool     // log the results only the executor sees as the listener's -v does
	Self     string   // spawnd's executable, for services with limits (limits.go)
	// Listening holds, per service index, the executor's own copies of
	// its listening sockets: a passed socket must have been accepted on
	// one of them (tie.go). Nil only in tests of the executor alone.
	Listening [][]int
}

// Executor runs the commands of one policy for a succession of listeners.
// Commands outlive the listener that asked for them.
type Executor struct {
	cfg   Config
	idle  *sync.Cond // on mu: running reached 0
	cwd   string     // the working directory at New
	argv  [][]string // per service: what its children exec (commandLine)
	netns uint64     // the network namespace's cookie (tie.go)

	// Guarded by mu (spawn.go).
	running   int
	byService []int          // running commands per service
	cur       *session       // the listener after its Hello, or nil
	pending   []*ipc.Message // results no listener has taken, Seq 0
}

// session is one Serve: a listener and the goroutine that sends to it.
type session struct {
	conn  *ipc.Conn
	out   chan *ipc.Message // to the sender; never blocks a writer (see deliver)
	done  chan struct{}     // closed when the sender has stopped
	stuck bool              // out overflowed; guarded by mu
}

// New returns an executor for cfg. It panics when cfg is inconsistent: a
// cap below 1, or listening fds not given for every service.
func New(cfg Config) *Executor {
	n := len(cfg.Policy.Services)
	if cfg.Cap < 1 || len(cfg.ListenFd) != n || len(cfg.ListenN) != n || cfg.Listening != nil && len(cfg.Listening) != n {
		panic("executor: Config needs Cap > 0 and ListenFd and ListenN for every service")
	}
	cwd, _ := os.Getwd()
	argv := make([][]string, n)
	for i, svc := range cfg.Policy.Services {
		argv[i] = commandLine(cfg.Self, svc)
	}
	return &Executor{cfg: cfg, idle: sync.NewCond(&mu), byService: make([]int, n), cwd: cwd, argv: argv, netns: netnsCookie()}
}

// The states of one Serve; they only move forward.
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

// Serve speaks the protocol with one listener over conn until the listener
// goes (end of file: it returns nil) or breaks the protocol (it logs one
// warning, closes every fd the message carried and returns the
// *ipc.Violation), or stops reading what it is sent. It does not close
// conn but shuts it down, so that nothing uses it after Serve returns.
// Commands keep running after Serve returns; results that could not be
// delivered are kept and sent with Seq 0 to the next listener after its
// Hello, Welcome and Service messages. One Serve at a time.
func (e *Executor) Serve(conn *ipc.Conn) error {
	s := &session{conn: conn, done: make(chan struct{}),
		out: make(chan *ipc.Message, e.cfg.Cap+len(e.cfg.Policy.Services)+1)}
	go e.send(s)
	err := e.serve(s)
	if err != nil {
		e.cfg.Log.Warning("listener %v; stopping listener", err)
	}
	conn.Shutdown()
	mu.Lock()
	if e.cur == s {
		e.cur = nil
	}
	close(s.out)
	mu.Unlock()
	<-s.done
	return err
}

// serve is the one dispatcher: every request passes ipc's checks in
// Receive, then check's, before a handler sees it.
//
//tcb:request-path
func (e *Executor) serve(s *session) error {
	st := starting
	for {
		// This goroutine lives in system calls (recvmsg, clone) and would
		// otherwise never yield; the runtime's monitor then takes it for
		// one that runs for ever, takes its P every 10 ms and polls every
		// 20 µs after each time, which cost more CPU than the rest of the
		// executor (bench/README.md, Performance). Yielding once per
		// request costs one scheduler pass.
		runtime.Gosched()
		m, fd, err := s.conn.Receive(ipc.FromListener)
		if err == io.EOF {
			mu.Lock()
			stuck := s.stuck
			mu.Unlock()
			if stuck {
				return errStuck
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := e.check(st, m, fd); err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			return err
		}
		switch m.Kind {
		case ipc.KindHello:
			e.welcome(s)
			st = serving
		case ipc.KindRun:
			e.spawn(s, m, fd)
		}
	}
}

// check applies the executor's checks, in ipc/doc.go's order: the state
// allows the kind, the service exists, the running commands are below the
// hard cap, the socket fd is a connection to the service (tie.go), the
// service's client_access admits its client.
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
	if n := len(e.cfg.Policy.Services); int64(m.Service) >= int64(n) {
		return &ipc.Violation{Check: "service", Detail: fmt.Sprintf("%s for service %d, have %d", name, m.Service, n)}
	}
	// Only this goroutine starts commands, so the count cannot rise
	// between here and the start.
	if e.Running() >= e.cfg.Cap {
		return &ipc.Violation{Check: "cap", Detail: fmt.Sprintf("%s past the hard cap of %d running commands", name, e.cfg.Cap)}
	}
	if e.cfg.Listening != nil {
		if err := tied(fd, e.cfg.Listening[m.Service], e.netns); err != nil {
			return &ipc.Violation{Check: "tie", Detail: fmt.Sprintf("%s for service %s: passed socket fails check %v", name, e.cfg.Policy.Services[m.Service].Name, err)}
		}
	}
	if err := e.cfg.Policy.Services[m.Service].Access.Check(fd); err != nil {
		return &ipc.Violation{Check: "access", Detail: fmt.Sprintf("%s for service %s: %v", name, e.cfg.Policy.Services[m.Service].Name, err)}
	}
	return nil
}

// welcome answers Hello: Welcome, one Service per service, then the
// results kept for this listener. Running counts, per service, the
// commands the listener will hear of with Seq 0: still running, or ended
// with the result kept.
func (e *Executor) welcome(s *session) {
	mu.Lock()
	defer mu.Unlock()
	if e.cur != nil {
		panic("executor: two Serve calls at once")
	}
	e.cur = s
	svcs := e.cfg.Policy.Services
	// out has room for all of it: pending holds at most Cap (keep).
	s.out <- &ipc.Message{Kind: ipc.KindWelcome, Services: uint32(len(svcs)), Cap: uint32(e.cfg.Cap)}
	for i, svc := range svcs {
		n := e.byService[i]
		for _, m := range e.pending {
			if m.Service == uint32(i) {
				n++
			}
		}
		s.out <- &ipc.Message{Kind: ipc.KindService, Service: uint32(i), Name: clip(svc.Name),
			Command: clip(svc.Argv[0]), Limit: uint32(svc.ProcessLimit),
			Fd: e.cfg.ListenFd[i], NFd: e.cfg.ListenN[i], Running: uint32(n), Access: svc.Access.String(),
			PerHost: uint32(svc.ClientLimit), Rate: uint32(svc.RateLimit), RateSec: uint32(svc.RateUnit.Seconds())}
	}
	for _, m := range e.pending {
		s.out <- m
	}
	e.pending = nil
}

// deliver queues a result for the current listener, under mu. A result for
// a command an earlier listener asked for goes with Seq 0. An honest
// listener keeps fewer than Cap commands unanswered, so out cannot fill;
// when it does, the listener is not reading: the result is kept, and the
// connection shut down so that Serve ends.
//
//tcb:request-path
func (e *Executor) deliver(from *session, m *ipc.Message) {
	s := e.cur
	if s != from {
		m.Seq = 0
	}
	if s == nil {
		e.keep(m)
		return
	}
	select {
	case s.out <- m:
	default:
		e.keep(m)
		if !s.stuck {
			s.stuck = true
			s.conn.Shutdown()
		}
	}
}

// keep holds a result for the next listener, under mu. At most Cap are
// kept, which an honest listener never exceeds; beyond, the oldest goes.
//
//tcb:request-path
func (e *Executor) keep(m *ipc.Message) {
	m.Seq = 0
	if len(e.pending) >= e.cfg.Cap {
		e.pending = e.pending[1:]
	}
	e.pending = append(e.pending, m)
}

// send is the session's sender: the only writer to the listener, so that a
// listener slow to read stalls nothing else. A result it cannot send is
// kept; a send error ends nothing by itself (Serve ends on end of file).
//
//tcb:request-path
func (e *Executor) send(s *session) {
	defer close(s.done)
	for m := range s.out {
		if s.conn.Send(m, -1) != nil && (m.Kind == ipc.KindExited || m.Kind == ipc.KindRefused) {
			mu.Lock()
			e.keep(m)
			mu.Unlock()
		}
	}
}

// clip bounds a text field so that every message fits ipc.MaxMessage.
//
//tcb:request-path
func clip(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max]
	}
	return s
}

// Running returns how many commands are running.
func (e *Executor) Running() int {
	mu.Lock()
	defer mu.Unlock()
	return e.running
}

// Drain blocks until no command is running.
func (e *Executor) Drain() {
	mu.Lock()
	defer mu.Unlock()
	for e.running > 0 {
		e.idle.Wait()
	}
}

// Terminate sends SIGTERM to the process group of every running command
// (postfix stop: master(8) signals only its own process group).
func (e *Executor) Terminate() {
	mu.Lock()
	defer mu.Unlock()
	for pid, c := range procs {
		if c, ok := c.(*command); ok && c.e == e {
			unix.Kill(-pid, unix.SIGTERM)
		}
	}
}
