package listener

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Master(8)'s status values (postfix/src/master/master_proto.h).
const (
	statTaken = 0
	statAvail = 1
)

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
