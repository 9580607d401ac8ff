package listener

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
)

// NewLog returns a logger on the log descriptor fd, the executor's, which
// dials the address fd is connected to again when a write fails: the
// listener knows no path (postlogd's is relative to queue_directory, the
// working directory of both processes).
func NewLog(fd int, kind maillog.Kind, ident string, facility int) *maillog.Logger {
	l := maillog.New(fd, kind, ident, facility)
	if sa, err := unix.Getpeername(fd); err == nil {
		if u, ok := sa.(*unix.SockaddrUnix); ok && (strings.HasPrefix(u.Name, "/") || kind == maillog.Postlog) {
			l.Path = u.Name
		}
	}
	return l
}

// handshake sends Hello and takes Welcome and the Service messages,
// checking that every listening descriptor is one.
func (l *listener) handshake() error {
	if err := l.send(&ipc.Message{Kind: ipc.KindHello}, -1); err != nil {
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
	l.settings(m)
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
		cs, err := newClients(s)
		if err != nil {
			return err
		}
		svc := &service{name: s.Name, command: s.Command, limit: int(s.Limit),
			inflight: int(s.Running), earlier: int(s.Running), clients: cs}
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

// settings takes the listener's settings from Welcome: its log's ident
// and facility, verbose, and Postfix mode's, with master(8)'s status
// channel at ipc.StatusFd. Those Config sets stay.
func (l *listener) settings(m *ipc.Message) {
	if m.Host != "" { // the host field of file and postlog records
		os.Setenv("POSTLOG_HOSTNAME", m.Host)
	}
	if m.Ident != "" {
		kind := l.log.Kind()
		if k := maillog.Kind(m.LogKind); k == maillog.Syslog || k == maillog.SyslogStream || k == maillog.Postlog {
			kind = k
		}
		l.log = NewLog(l.log.Fd(), kind, m.Ident, int(m.Facility))
		l.cfg.Log = l.log
	}
	l.cfg.Verbose = l.cfg.Verbose || m.Verbose
	if m.Postfix && l.pf == nil {
		l.pf = &Postfix{Status: ipc.StatusFd, Pid: m.Pid, Generation: m.Generation,
			MaxUse: int(m.MaxUse), MaxIdle: time.Duration(m.MaxIdle) * time.Second}
		l.cfg.Postfix = l.pf
		l.log.Pid = int(m.Pid) // master(8) knows the executor, not the listener
	}
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

// gone maps a failed send to errGone when the executor has closed its end.
func gone(err error) error {
	if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		return errGone
	}
	return fmt.Errorf("executor: %w", err)
}
