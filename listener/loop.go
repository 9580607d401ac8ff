package listener

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
		n, werr = raw(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
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
	if dl := l.refusedSince.Add(warnInterval); l.refusedMuted > 0 && (next.IsZero() || dl.Before(next)) {
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
	if l.refusedMuted > 0 && time.Since(l.refusedSince) >= warnInterval {
		l.flushRefusals(time.Now())
	}
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
