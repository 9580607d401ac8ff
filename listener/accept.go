package listener

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

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
		cl, ok := l.admit(svc, cfd)
		if !ok {
			closeFd(cfd)
			continue
		}
		if s.tcp {
			one := int32(1)
			raw(unix.SYS_SETSOCKOPT, uintptr(cfd), unix.SOL_SOCKET, unix.SO_KEEPALIVE, uintptr(unsafe.Pointer(&one)), 4, 0)
		}
		l.seq++
		p := pending{svc: s.svc, client: cl}
		if l.cfg.Verbose {
			p.peer, p.start = peerName(cfd), time.Now()
		}
		l.run = ipc.Message{Kind: ipc.KindRun, Seq: l.seq, Service: uint32(s.svc)}
		err = l.send(&l.run, cfd)
		closeFd(cfd)
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
		// A bounded process keeps master(8) from starting another while
		// its commands run (notify): it serves on until none runs
		// (result), rather than leave new clients waiting for the slowest
		// of them.
		if l.usedUp() && !l.bounded() {
			l.stop("use limit reached")
		}
	}
	return nil
}

// accept4 accepts one connection, close-on-exec and blocking (as a
// command's descriptors 0-2 must be), without asking for the peer's
// address: only -v needs it.
func accept4(fd int) (int, error) {
	return raw(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
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
