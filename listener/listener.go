// Package listener is spawnd's unprivileged side: it accepts connections
// on the listening sockets the executor handed it, keeps each service
// within its concurrency limit and the executor's hard cap, passes every
// client descriptor to the executor with the service's index, logs how
// each command ended, and in Postfix mode speaks master(8)'s status
// protocol. It runs as mail_owner and never runs a command.
package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
)

// Config is what Run needs.
type Config struct {
	Conn    *ipc.Conn
	Log     *maillog.Logger
	Verbose bool

	// Postfix mode: Status >= 0 is master(8)'s status channel.
	Status  int
	Pid     int32  // pid to report: the executor's, which master(8) forked
	Gen     uint32 // master(8)'s generation
	MaxUse  int    // stop after this many connections; 0: never
	MaxIdle time.Duration

	// Stop, when it receives, makes Run stop accepting and return once
	// every command it started has ended (SIGTERM).
	Stop <-chan struct{}
}

type service struct {
	name, command string
	limit         int
	fds           []int
	inflight      int
	polling       bool
}

type pending struct {
	svc   int
	peer  string
	start time.Time
}

type listener struct {
	cfg      Config
	svcs     []*service
	cap      int
	inflight int
	seq      uint64
	byFd     map[int]int // listening fd -> service
	ep       int
	ipcFd    int
	reqs     map[uint64]pending // with -v only
	stopping bool
	used     int
	lastUse  time.Time
	taken    bool // Postfix mode: last status sent was TAKEN
	pauseTil time.Time
	lastWarn time.Time
}

// Run serves until the executor goes away (nil), a stop completes (nil),
// or the executor breaks the protocol (an error).
func Run(cfg Config, ipcFd int) error {
	l := &listener{cfg: cfg, byFd: map[int]int{}, ipcFd: ipcFd, lastUse: time.Now()}
	if cfg.Verbose {
		l.reqs = map[uint64]pending{}
	}
	if err := l.handshake(); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create: %w", err)
	}
	defer unix.Close(ep)
	l.ep = ep
	l.watch(ipcFd, true)
	if cfg.Status >= 0 {
		l.watch(cfg.Status, true)
	}
	for i := range l.svcs {
		l.update(i)
	}
	return l.loop()
}

func (l *listener) handshake() error {
	if err := l.cfg.Conn.Send(&ipc.Message{Kind: ipc.KindHello}, -1); err != nil {
		return err
	}
	m, err := l.receive()
	if err != nil {
		return err
	}
	if m.Kind != ipc.KindWelcome {
		return fmt.Errorf("executor sent %s, want welcome", ipc.KindName(m.Kind))
	}
	l.cap = int(m.Cap)
	for i := 0; i < int(m.Services); i++ {
		s, err := l.receive()
		if err != nil {
			return err
		}
		if s.Kind != ipc.KindService || int(s.Service) != i {
			return fmt.Errorf("executor sent %s for service %d, want service %d", ipc.KindName(s.Kind), s.Service, i)
		}
		svc := &service{name: s.Name, command: s.Command, limit: int(s.Limit), inflight: int(s.Running)}
		for fd := int(s.Fd); fd < int(s.Fd)+int(s.NFd); fd++ {
			unix.CloseOnExec(fd)
			if err := unix.SetNonblock(fd, true); err != nil {
				return fmt.Errorf("service %s: listening fd %d: %w", s.Name, fd, err)
			}
			svc.fds = append(svc.fds, fd)
			l.byFd[fd] = i
		}
		l.svcs = append(l.svcs, svc)
		l.inflight += svc.inflight
	}
	return nil
}

func (l *listener) receive() (*ipc.Message, error) {
	m, _, err := l.cfg.Conn.Receive(ipc.FromExecutor)
	return m, err
}

func (l *listener) watch(fd int, on bool) {
	if on {
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
	} else {
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

// may reports whether service i may accept one more connection now.
func (l *listener) may(i int) bool {
	s := l.svcs[i]
	return !l.stopping && time.Now().After(l.pauseTil) &&
		(s.limit == 0 || s.inflight < s.limit) && l.inflight < l.cap &&
		(l.cfg.MaxUse == 0 || l.used < l.cfg.MaxUse)
}

// update polls service i's sockets exactly when it may accept: past its
// limit, connections wait in the kernel's backlog.
func (l *listener) update(i int) {
	s := l.svcs[i]
	if want := l.may(i); want != s.polling {
		for _, fd := range s.fds {
			l.watch(fd, want)
		}
		s.polling = want
	}
}

func (l *listener) updateAll() {
	for i := range l.svcs {
		l.update(i)
	}
	l.status()
}

func (l *listener) loop() error {
	events := make([]unix.EpollEvent, 64)
	for {
		if l.stopping && l.inflight == 0 {
			return nil
		}
		timeout := -1
		if !l.pauseTil.IsZero() || l.cfg.MaxIdle > 0 || l.cfg.Stop != nil {
			timeout = 100
		}
		n, err := unix.EpollWait(l.ep, events, timeout)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			switch {
			case fd == l.ipcFd:
				if err := l.result(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			case fd == l.cfg.Status:
				l.stop() // master(8) went away
			default:
				l.accept(l.byFd[fd], fd)
			}
		}
		l.timers()
	}
}

func (l *listener) timers() {
	select {
	case <-l.cfg.Stop:
		l.stop()
	default:
	}
	if !l.pauseTil.IsZero() && time.Now().After(l.pauseTil) {
		l.pauseTil = time.Time{}
		l.updateAll()
	}
	if l.cfg.MaxIdle > 0 && l.inflight == 0 && time.Since(l.lastUse) > l.cfg.MaxIdle {
		l.stop()
	}
}

func (l *listener) stop() {
	if !l.stopping {
		l.stopping = true
		if l.cfg.Status >= 0 {
			l.watch(l.cfg.Status, false)
		}
		l.updateAll()
	}
}

// accept takes the pending connections of one socket while allowed.
func (l *listener) accept(i, fd int) {
	for l.may(i) {
		cfd, sa, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			switch err {
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				// Out of descriptors: stop accepting a while rather than spin.
				l.pauseTil = time.Now().Add(100 * time.Millisecond)
				if time.Since(l.lastWarn) > 10*time.Second {
					l.lastWarn = time.Now()
					l.cfg.Log.Warning("accept: %v", err)
				}
			}
			break
		}
		l.seq++
		l.used++
		l.lastUse = time.Now()
		err = l.cfg.Conn.Send(&ipc.Message{Kind: ipc.KindRun, Seq: l.seq, Service: uint32(i)}, cfd)
		unix.Close(cfd)
		if err != nil {
			l.cfg.Log.Warning("service %s: %v", l.svcs[i].name, err)
			break
		}
		l.svcs[i].inflight++
		l.inflight++
		if l.reqs != nil {
			l.reqs[l.seq] = pending{svc: i, peer: peerName(sa), start: time.Now()}
		}
	}
	l.updateAll()
	if l.cfg.MaxUse > 0 && l.used >= l.cfg.MaxUse {
		l.stop()
	}
}

// result takes one Exited or Refused and logs it as spawn(8) would.
func (l *listener) result() error {
	m, err := l.receive()
	if err != nil {
		return err
	}
	if m.Kind != ipc.KindExited && m.Kind != ipc.KindRefused || int(m.Service) >= len(l.svcs) {
		return fmt.Errorf("executor sent %s for service %d", ipc.KindName(m.Kind), m.Service)
	}
	s := l.svcs[m.Service]
	if s.inflight > 0 {
		s.inflight--
		l.inflight--
	}
	l.lastUse = time.Now()
	status := "exit 0"
	switch {
	case m.Kind == ipc.KindRefused:
		status = "refused"
		l.cfg.Log.Warning("command %s: %s", s.command, m.Reason)
	case m.Timeout:
		status = "time limit"
		l.cfg.Log.Warning("%s: process id %d: command time limit exceeded", s.command, m.Pid)
	case m.Signal != 0:
		status = "signal " + strconv.Itoa(int(m.Signal))
		l.cfg.Log.Warning("command %s killed by signal %d", s.command, m.Signal)
	case m.Code != 0:
		status = "exit " + strconv.Itoa(int(m.Code))
		l.cfg.Log.Warning("command %s exit status %d", s.command, m.Code)
	}
	if l.reqs != nil {
		p, ok := l.reqs[m.Seq]
		delete(l.reqs, m.Seq)
		peer := "-"
		if ok && m.Seq != 0 {
			peer = p.peer
		}
		l.cfg.Log.Info("service=%s peer=%s pid=%d status=%s duration=%.1fms",
			s.name, peer, m.Pid, status, float64(m.Micros)/1000)
	}
	l.updateAll()
	return nil
}

// status tells master(8) whether this process can take more connections:
// TAKEN at the limit, AVAIL below it; only transitions are sent.
func (l *listener) status() {
	if l.cfg.Status < 0 || l.stopping {
		return
	}
	limit := l.cap
	if len(l.svcs) == 1 && l.svcs[0].limit > 0 {
		limit = l.svcs[0].limit
	}
	taken := l.inflight >= limit
	if taken == l.taken {
		return
	}
	l.taken = taken
	var b [12]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(l.cfg.Pid))
	binary.LittleEndian.PutUint32(b[4:], l.cfg.Gen)
	if !taken {
		binary.LittleEndian.PutUint32(b[8:], 1)
	}
	if _, err := unix.Write(l.cfg.Status, b[:]); err != nil {
		l.stop() // master(8) went away
	}
}

func peerName(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)).String()
	}
	return "unix"
}

// ErrUsage is returned for a bad command line.
var ErrUsage = errors.New("usage")

var _ = os.Getpid
