package listener

import (
	"encoding/binary"
	"slices"

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
// connection, and so whether master(8) should start another process of
// the service. Only changes are sent: a new process counts as available,
// and master(8) ignores repeats anyway.
//
// A service with a maxproc (bounded) stays AVAIL all its life, at its
// limit too: master(8) starts another process of a service only while
// none is available (master_avail.c), so it starts no second spawnd, and
// the service's commands at once stay within maxproc however master(8)
// would schedule processes; connections beyond wait in the backlog. With
// maxproc 0 the process says TAKEN when it cannot take more (the cap
// reached, or stopping), so that master(8) starts another rather than
// wait for it.
func (l *listener) notify() {
	if l.pf == nil || l.masterGone {
		return
	}
	taken := !l.bounded() && !slices.ContainsFunc(l.svcs, l.may)
	if taken != l.taken {
		l.status(taken)
	}
}

// bounded reports whether a service has a maxproc: under master(8) there
// is one service.
func (l *listener) bounded() bool {
	for _, svc := range l.svcs {
		if svc.limit > 0 {
			return true
		}
	}
	return false
}

// usedUp reports whether the process has taken max_use connections.
func (l *listener) usedUp() bool {
	return l.pf != nil && l.pf.MaxUse > 0 && l.used >= l.pf.MaxUse
}

// served tells master(8), when the process has served and its commands
// have all ended, TAKEN then AVAIL: master(8) counts a use at each such
// pair and takes a process that exits non-zero without one for a "bad
// command startup", throttling the service. A bounded process sends it
// only now, with nothing running, as a second process of the service may
// start the moment master(8) reads TAKEN.
func (l *listener) served() {
	if l.pf == nil || l.masterGone || l.used == 0 {
		return
	}
	if !l.taken {
		l.status(true)
	}
	if l.taken {
		l.status(false)
	}
}

// status writes one status record to master(8).
func (l *listener) status(taken bool) {
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
