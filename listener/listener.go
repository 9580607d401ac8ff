// Package listener is spawnd's unprivileged half: it accepts connections on
// the listening sockets the executor handed it, keeps every service within
// its concurrency limit and all of them within the executor's hard cap,
// passes each client descriptor to the executor with the service's index,
// logs how each command ended as spawn(8) does, and in Postfix mode speaks
// master(8)'s status protocol. It runs as mail_owner, never runs a command
// and never changes its privileges.
//
// Invariants, and why they hold:
//
//   - A command is in flight from the Run that asks for it until its
//     Exited or Refused arrives; commands the executor announced as
//     Running at start-up are in flight until their results with sequence
//     number 0 arrive. A Run is sent only while its service is below its
//     limit and the total below the cap, so the listener never asks for
//     more than the executor's cap: the executor treats that as an attack.
//   - A service's sockets are in the epoll set exactly when it may accept
//     (reconcile): connections beyond its limit wait in the kernel's listen
//     backlog, and none is accepted only to be dropped.
//   - Every accepted descriptor is closed right after the Run that carries
//     it, sent or not: the listener keeps no client.
//   - One goroutine does all the work, so no state is shared; the only
//     other goroutine turns Config.Stop into an eventfd wake-up.
package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
)

// Config is what Run needs. Run closes none of the descriptors it names.
type Config struct {
	// Pair is the listener's end of the executor's SOCK_SEQPACKET socket
	// pair, blocking (descriptor 3 in spawnd-listener).
	Pair int
	// Log receives outcome warnings and, with Verbose, one info line per
	// connection.
	Log *maillog.Logger
	// Verbose logs one info line per connection.
	Verbose bool
	// Postfix, when not nil, turns on Postfix mode.
	Postfix *Postfix
	// Stop, when it is closed or receives, makes Run stop accepting and
	// return once every command in flight has reported (SIGTERM).
	Stop <-chan struct{}
	// Leave, when it is closed or receives, makes Run stop accepting and
	// half-close the pair, without waiting for the commands in flight:
	// the executor answers with end of file after the results it has
	// sent, which Run logs, and keeps the later ones for the next
	// listener (spawnd's reload).
	Leave <-chan struct{}
}

// Postfix holds what Postfix mode adds: master(8)'s status channel and the
// process's limits.
type Postfix struct {
	// Status is master(8)'s status channel (descriptor 5). Its becoming
	// readable or reaching end of file means master(8) went away.
	Status int
	// Pid is the process id status messages carry: the process master(8)
	// forked, which is the executor, not the listener.
	Pid int32
	// Generation is master(8)'s GENERATION, already converted from octal.
	Generation uint32
	// MaxUse stops accepting after this many connections; 0: never.
	MaxUse int
	// MaxIdle stops after this long with nothing in flight; 0: never.
	MaxIdle time.Duration
}

// Tuning. None of these changes what the listener does, only how often.
const (
	acceptBatch  = 64                     // accepts per socket per wake-up, so that results interleave
	resultBatch  = 64                     // results per wake-up, likewise
	acceptPause  = 100 * time.Millisecond // no accepts on a socket after a resource error
	warnInterval = 10 * time.Second       // at most one accept warning this often
)

// Epoll tokens: the event's data names what became ready.
const (
	tokPair   = 0
	tokStatus = 1
	tokWake   = 2
	tokSocket = 3 // + index into listener.socks
)

// Master(8)'s status values (postfix/src/master/master_proto.h).
const (
	statTaken = 0
	statAvail = 1
)

// errGone says the executor went away: Run returns nil for it.
var errGone = errors.New("executor went away")

type service struct {
	name, command string
	limit         int // 0: only the cap
	inflight      int // Runs without a result, plus earlier
	earlier       int // results still due with seq 0 (commands of an earlier listener)
}

type socket struct {
	fd      int
	svc     int
	tcp     bool      // inet or inet6: accepted sockets get SO_KEEPALIVE, as in Postfix
	polling bool      // in the epoll set
	paused  time.Time // not before this (after EMFILE and the like); zero: not paused
}

// pending is one Run without a result yet.
type pending struct {
	svc   int
	peer  string    // with Verbose only
	start time.Time // with Verbose only
}

type listener struct {
	cfg      Config
	pf       *Postfix
	log      *maillog.Logger
	conn     *ipc.Conn
	ep       int
	epf      *os.File        // ep in the runtime's poller
	epRaw    syscall.RawConn // of epf
	svcs     []*service
	socks    []*socket
	cap      int
	inflight int
	seq      uint64
	pending  map[uint64]pending
	used     int // connections accepted
	stopping bool
	run      ipc.Message // reused for every Run

	idleSince   time.Time // Postfix max_idle: when in flight last became 0
	lastWarn    time.Time // last accept warning
	lastCapWarn time.Time // last warning that the executor's cap is reached
	masterGone  bool      // the status channel is closed: write no more
	taken       bool      // the last status master(8) has from us is TAKEN
	anyPaused   bool
	wake        int // eventfd for Config.Stop and Leave; -1: none
	leave       atomic.Bool
}

// Run serves connections until the executor goes away (it returns nil at
// once), until a stop asked for by Config.Stop, by master(8) going away,
// by max_use or by max_idle has waited for every command in flight (nil),
// or until an error: a broken protocol or a failed system call.
func Run(cfg Config) error {
	if cfg.Log == nil || cfg.Pair < 0 {
		return errors.New("listener: Config needs Log and Pair")
	}
	l := &listener{cfg: cfg, pf: cfg.Postfix, log: cfg.Log, conn: ipc.NewConn(cfg.Pair), ep: -1, wake: -1}
	// The Go runtime opens its poller (an epoll fd and an eventfd) with
	// the first timer, which the garbage collector's scavenger may be the
	// first to set, under load. Open it now, so that the listener's
	// descriptors are the same after start-up as after any load.
	time.AfterFunc(time.Hour, func() {}).Stop()
	err := l.serve()
	if l.epf != nil {
		l.epf.Close()
	} else if l.ep >= 0 {
		unix.Close(l.ep)
	}
	if err == errGone {
		return nil
	}
	return err
}

func (l *listener) serve() error {
	unix.CloseOnExec(l.cfg.Pair)
	if l.pf != nil {
		unix.CloseOnExec(l.pf.Status)
	}
	if err := l.handshake(); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	l.ep = ep
	// The loop waits in the runtime's poller, which watches this epoll
	// set like any descriptor, not in a blocking epoll_wait: a thread in
	// a blocking system call makes the runtime's monitor take its P back
	// and poll every 20 µs, which cost more CPU than the rest of the
	// listener (bench/README.md, Performance).
	if err := unix.SetNonblock(ep, true); err != nil {
		return fmt.Errorf("epoll fd: %w", err)
	}
	l.epf = os.NewFile(uintptr(ep), "epoll")
	if l.epRaw, err = l.epf.SyscallConn(); err != nil {
		return fmt.Errorf("epoll fd: %w", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.cfg.Pair, tokPair); err != nil {
		return err
	}
	if l.pf != nil {
		if err := l.ctl(unix.EPOLL_CTL_ADD, l.pf.Status, tokStatus); err != nil {
			return err
		}
		l.idleSince = time.Now()
	}
	if l.cfg.Stop != nil || l.cfg.Leave != nil {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return fmt.Errorf("eventfd: %w", err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-l.cfg.Stop:
			case <-l.cfg.Leave:
				l.leave.Store(true)
			case <-done:
				return
			}
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			unix.Write(efd, one[:])
		}()
		// The goroutine may be writing to efd: close it only after it ended.
		defer func() { close(done); wg.Wait(); unix.Close(efd) }()
		l.wake = efd
		if err := l.ctl(unix.EPOLL_CTL_ADD, efd, tokWake); err != nil {
			return err
		}
	}
	if err := l.reconcile(); err != nil {
		return err
	}
	return l.loop()
}

// handshake sends Hello and takes Welcome and the Service messages,
// checking that every listening descriptor is one.
func (l *listener) handshake() error {
	if err := l.conn.Send(&ipc.Message{Kind: ipc.KindHello}, -1); err != nil {
		return gone(err)
	}
	m, err := l.receive()
	if err != nil {
		return err
	}
	if m.Kind != ipc.KindWelcome {
		return fmt.Errorf("executor sent %s, want welcome", ipc.KindName(m.Kind))
	}
	if m.Cap == 0 {
		return errors.New("executor sent welcome with a hard cap of 0")
	}
	l.cap = int(m.Cap)
	l.pending = make(map[uint64]pending, min(l.cap, 4096))
	taken := map[int]bool{l.cfg.Pair: true}
	if fd := l.cfg.Log.Fd(); fd >= 0 {
		taken[fd] = true
	}
	if l.pf != nil {
		taken[l.pf.Status] = true
	}
	for i := 0; i < int(m.Services); i++ {
		s, err := l.receive()
		if err != nil {
			return err
		}
		if s.Kind != ipc.KindService || int(s.Service) != i {
			return fmt.Errorf("executor sent %s for service %d, want service %d", ipc.KindName(s.Kind), s.Service, i)
		}
		if s.NFd == 0 || s.Fd < 3 || int64(s.Fd)+int64(s.NFd) > 1<<20 {
			return fmt.Errorf("executor sent service %s with listening fds %d to %d", s.Name, s.Fd, int64(s.Fd)+int64(s.NFd)-1)
		}
		svc := &service{name: s.Name, command: s.Command, limit: int(s.Limit),
			inflight: int(s.Running), earlier: int(s.Running)}
		for fd := int(s.Fd); fd < int(s.Fd)+int(s.NFd); fd++ {
			if taken[fd] {
				return fmt.Errorf("service %s: listening fd %d: already in use", s.Name, fd)
			}
			taken[fd] = true
			sock, err := listening(fd)
			if err != nil {
				return fmt.Errorf("service %s: %w", s.Name, err)
			}
			sock.svc = i
			l.socks = append(l.socks, sock)
		}
		l.svcs = append(l.svcs, svc)
		l.inflight += svc.inflight
	}
	return nil
}

// listening checks that fd is a listening stream socket and makes it
// close-on-exec and non-blocking. Non-blocking is a property of the open
// file, shared with the executor's (and master(8)'s) copy: neither
// accepts, and master(8) makes its sockets non-blocking itself.
func listening(fd int) (*socket, error) {
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("listening fd %d: %w", fd, err)
	}
	if acc == 0 {
		return nil, fmt.Errorf("listening fd %d: not a listening socket", fd)
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return nil, fmt.Errorf("listening fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("listening fd %d: %w", fd, err)
	}
	return &socket{fd: fd, tcp: dom == unix.AF_INET || dom == unix.AF_INET6}, nil
}

func (l *listener) receive() (*ipc.Message, error) {
	m, fd, err := l.conn.Receive(ipc.FromExecutor)
	if err == io.EOF {
		return nil, errGone
	}
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	if fd >= 0 { // cannot happen: ipc admits no fd from the executor
		unix.Close(fd)
		return nil, fmt.Errorf("executor sent %s with a descriptor", ipc.KindName(m.Kind))
	}
	return m, nil
}

// gone maps a failed send to errGone when the executor has closed its end.
func gone(err error) error {
	if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		return errGone
	}
	return fmt.Errorf("executor: %w", err)
}

func (l *listener) ctl(op, fd, tok int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tok)}
	if err := unix.EpollCtl(l.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl fd %d: %w", fd, err)
	}
	return nil
}

func (l *listener) loop() error {
	events := make([]unix.EpollEvent, 64)
	for !l.stopping || l.inflight > 0 {
		n, err := l.wait(events)
		if err != nil {
			return err
		}
		// Results first: they free the slots the accepts below need.
		for _, ev := range events[:n] {
			switch ev.Fd {
			case tokPair:
				if err := l.results(); err != nil {
					return err
				}
			case tokStatus:
				l.masterGone = true
				l.ctlDel(l.pf.Status)
				l.stop("master disconnect")
			case tokWake:
				l.ctlDel(l.wake)
				l.stop("stop signal")
				if l.leave.Load() {
					// Results already sent still come, then end of file.
					unix.Shutdown(l.cfg.Pair, unix.SHUT_WR)
				}
			}
		}
		for _, ev := range events[:n] {
			if ev.Fd >= tokSocket {
				if err := l.accept(l.socks[ev.Fd-tokSocket]); err != nil {
					return err
				}
			}
		}
		l.timers()
		if err := l.reconcile(); err != nil {
			return err
		}
	}
	return nil
}

// wait returns the ready events, waiting in the runtime's poller until
// there are some or l.timeout has passed.
func (l *listener) wait(events []unix.EpollEvent) (int, error) {
	var dl time.Time
	if ms := l.timeout(); ms >= 0 {
		dl = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	l.epf.SetReadDeadline(dl)
	var n int
	var werr error
	err := l.epRaw.Read(func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
			return true // the loop comes round again
		}
		return n > 0 || werr != nil
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("epoll wait: %w", err)
	case werr != nil:
		return 0, fmt.Errorf("epoll_wait: %w", werr)
	}
	return n, nil
}

func (l *listener) ctlDel(fd int) {
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil)
}

// timeout returns epoll_wait's timeout in milliseconds: until the nearest
// end of an accept pause or the max_idle deadline, else forever.
func (l *listener) timeout() int {
	var next time.Time
	if l.anyPaused {
		for _, s := range l.socks {
			if !s.paused.IsZero() && (next.IsZero() || s.paused.Before(next)) {
				next = s.paused
			}
		}
	}
	if dl, ok := l.idleDeadline(); ok && (next.IsZero() || dl.Before(next)) {
		next = dl
	}
	if next.IsZero() {
		return -1
	}
	d := time.Until(next)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

func (l *listener) idleDeadline() (time.Time, bool) {
	if l.pf == nil || l.pf.MaxIdle <= 0 || l.stopping || l.inflight > 0 {
		return time.Time{}, false
	}
	return l.idleSince.Add(l.pf.MaxIdle), true
}

func (l *listener) timers() {
	dl, idle := l.idleDeadline()
	if !l.anyPaused && !idle {
		return
	}
	now := time.Now()
	if l.anyPaused {
		l.anyPaused = false
		for _, s := range l.socks {
			if !s.paused.IsZero() && !now.Before(s.paused) {
				s.paused = time.Time{}
			}
			l.anyPaused = l.anyPaused || !s.paused.IsZero()
		}
	}
	if idle && !now.Before(dl) {
		l.stop("idle timeout")
	}
}

// stop stops accepting for good; the loop ends when nothing is in flight.
func (l *listener) stop(why string) {
	if l.stopping {
		return
	}
	l.stopping = true
	if l.cfg.Verbose {
		l.log.Info("%s -- exiting", why)
	}
}

// may reports whether service svc may take one more connection now.
func (l *listener) may(svc *service) bool {
	return !l.stopping && l.inflight < l.cap && (svc.limit == 0 || svc.inflight < svc.limit)
}

// reconcile puts each socket in the epoll set exactly when its service
// may accept and it is not paused, then tells master(8) of a change.
func (l *listener) reconcile() error {
	for i, s := range l.socks {
		want := s.paused.IsZero() && l.may(l.svcs[s.svc])
		if want == s.polling {
			continue
		}
		if want {
			if err := l.ctl(unix.EPOLL_CTL_ADD, s.fd, tokSocket+i); err != nil {
				return err
			}
		} else {
			l.ctlDel(s.fd)
		}
		s.polling = want
	}
	l.notify()
	return nil
}

// notify tells master(8) whether this process can take another
// connection: TAKEN when no service may (every one at its limit, the cap
// reached, or stopping, so that master(8) starts another process rather
// than wait for this one), AVAIL otherwise. Only changes are sent: a new
// process counts as available, and master(8) ignores repeats anyway.
func (l *listener) notify() {
	if l.pf == nil || l.masterGone {
		return
	}
	taken := true
	for _, svc := range l.svcs {
		if l.may(svc) {
			taken = false
			break
		}
	}
	if taken == l.taken {
		return
	}
	var b [12]byte
	binary.NativeEndian.PutUint32(b[0:], uint32(l.pf.Pid))
	binary.NativeEndian.PutUint32(b[4:], l.pf.Generation)
	if !taken {
		binary.NativeEndian.PutUint32(b[8:], statAvail)
	} else {
		binary.NativeEndian.PutUint32(b[8:], statTaken)
	}
	for {
		_, err := unix.Write(l.pf.Status, b[:])
		switch err {
		case unix.EINTR:
			continue
		case nil:
			l.taken = taken
		case unix.EAGAIN: // try again at the next change
		default: // master(8) went away
			l.masterGone = true
			l.ctlDel(l.pf.Status)
			l.stop("master disconnect")
		}
		return
	}
}

// accept takes the connections pending on one socket while its service
// may, and hands each to the executor.
func (l *listener) accept(s *socket) error {
	svc := l.svcs[s.svc]
	for n := 0; n < acceptBatch && s.paused.IsZero() && l.may(svc); n++ {
		cfd, err := accept4(s.fd)
		if err != nil {
			if l.acceptError(s, err) {
				continue
			}
			return nil
		}
		if s.tcp {
			unix.SetsockoptInt(cfd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		}
		l.seq++
		p := pending{svc: s.svc}
		if l.cfg.Verbose {
			p.peer, p.start = peerName(cfd), time.Now()
		}
		l.run = ipc.Message{Kind: ipc.KindRun, Seq: l.seq, Service: uint32(s.svc)}
		err = l.conn.Send(&l.run, cfd)
		unix.Close(cfd)
		if err != nil {
			return gone(err)
		}
		l.pending[l.seq] = p
		svc.inflight++
		l.inflight++
		l.used++
		if l.inflight == l.cap && time.Since(l.lastCapWarn) >= warnInterval {
			l.lastCapWarn = time.Now()
			l.log.Warning("%d commands running, the executor's limit: new clients wait in the backlog", l.cap)
		}
		if l.pf != nil && l.pf.MaxUse > 0 && l.used >= l.pf.MaxUse {
			l.stop("use limit reached")
		}
	}
	return nil
}

// accept4 accepts one connection, close-on-exec and blocking (as a
// command's descriptors 0-2 must be), without asking for the peer's
// address: only -v needs it.
func accept4(fd int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// acceptError handles a failed accept and reports whether to try the next
// connection at once. EAGAIN is normal (none left, or another process of
// the service, under master(8), took it); a client that left or a
// network error on its connection concerns that one connection (accept(2)
// asks to treat them like EAGAIN). Anything else, above all EMFILE and
// ENFILE, pauses the socket rather than spin on it, with a warning at
// most every warnInterval.
func (l *listener) acceptError(s *socket, err error) bool {
	switch err {
	case unix.EAGAIN:
		return false
	case unix.ECONNABORTED, unix.ECONNRESET, unix.EPROTO, unix.EPERM, unix.ETIMEDOUT,
		unix.ENETDOWN, unix.ENETUNREACH, unix.EHOSTDOWN, unix.EHOSTUNREACH,
		unix.ENONET, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return true
	}
	now := time.Now()
	s.paused = now.Add(acceptPause)
	l.anyPaused = true
	if l.lastWarn.IsZero() || now.Sub(l.lastWarn) >= warnInterval {
		l.lastWarn = now
		switch err {
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			l.log.Warning("accept: %v", err)
		default:
			l.log.Warning("service %s: accept: %v", l.svcs[s.svc].name, err)
		}
	}
	return false
}

// results takes the results waiting on the pair, up to resultBatch.
func (l *listener) results() error {
	for i := 0; i < resultBatch; i++ {
		if err := l.result(); err != nil {
			return err
		}
		fds := [1]unix.PollFd{{Fd: int32(l.cfg.Pair), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds[:], 0); err != nil || n == 0 {
			return nil
		}
	}
	return nil
}

// result takes one Exited or Refused, ends its command's time in flight
// and logs it.
func (l *listener) result() error {
	m, err := l.receive()
	if err != nil {
		return err
	}
	if m.Kind != ipc.KindExited && m.Kind != ipc.KindRefused {
		return fmt.Errorf("executor sent %s while serving", ipc.KindName(m.Kind))
	}
	if int(m.Service) >= len(l.svcs) {
		return fmt.Errorf("executor sent %s for service %d of %d", ipc.KindName(m.Kind), m.Service, len(l.svcs))
	}
	svc := l.svcs[m.Service]
	var p pending
	if m.Seq == 0 {
		if svc.earlier == 0 {
			return fmt.Errorf("executor sent %s with seq 0 for service %s, which has no earlier command", ipc.KindName(m.Kind), svc.name)
		}
		svc.earlier--
	} else {
		var ok bool
		if p, ok = l.pending[m.Seq]; !ok || p.svc != int(m.Service) {
			return fmt.Errorf("executor sent %s for seq %d service %s, which is not in flight", ipc.KindName(m.Kind), m.Seq, svc.name)
		}
		delete(l.pending, m.Seq)
	}
	svc.inflight--
	l.inflight--
	if l.inflight == 0 && l.pf != nil && l.pf.MaxIdle > 0 {
		l.idleSince = time.Now()
	}
	l.logResult(svc, m, &p)
	return nil
}

// logResult logs an abnormal end in spawn(8)'s words, and with -v one
// line for every connection.
func (l *listener) logResult(svc *service, m *ipc.Message, p *pending) {
	switch {
	case m.Kind == ipc.KindRefused:
		l.log.Warning("command %s: %s", svc.command, m.Reason)
	case m.Timeout:
		l.log.Warning("%s: process id %d: command time limit exceeded", svc.command, m.Pid)
	case m.Signal != 0:
		l.log.Warning("command %s killed by signal %d", svc.command, m.Signal)
	case m.Code != 0:
		l.log.Warning("command %s exit status %d", svc.command, m.Code)
	}
	if !l.cfg.Verbose {
		return
	}
	peer, pid, status := "unknown", "-", ""
	if m.Seq != 0 {
		peer = p.peer
	}
	dur := time.Duration(m.Micros) * time.Microsecond
	switch {
	case m.Kind == ipc.KindRefused:
		status = "refused"
		if m.Seq != 0 {
			dur = time.Since(p.start)
		}
	case m.Timeout:
		status = "time limit"
	case m.Signal != 0:
		status = "signal " + strconv.Itoa(int(m.Signal))
	default:
		status = "exit " + strconv.Itoa(int(m.Code))
	}
	if m.Kind == ipc.KindExited {
		pid = strconv.Itoa(int(m.Pid))
	}
	l.log.Info("service=%s peer=%s pid=%s status=%s duration=%.1fms",
		svc.name, peer, pid, status, float64(dur)/float64(time.Millisecond))
}

// peerName names a connection's peer for -v: ip:port for TCP ([ip]:port
// for IPv6), "unix" for a UNIX-domain client, "unknown" when the client
// has already gone.
func peerName(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return "unknown"
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return "unix"
	}
	return "unknown"
}
