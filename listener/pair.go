package listener

// The listener makes the system calls of its loop raw, unknown to the Go
// runtime: accept4, close and setsockopt of a client, sendmsg and recvmsg
// on the pair, and the poll of the pair and of the epoll set. None of them
// blocks: a send to a full pair, or a receive from an empty one (the
// handshake), returns EAGAIN raw and then waits through the runtime, so
// that other goroutines run meanwhile. A call through the runtime's
// entersyscall wakes the runtime's monitor thread from its sleep whenever
// the process was idle, and the monitor then polls every 20 µs for a
// millisecond or more: under one connection at a time that was more CPU
// than the rest of the listener (bench/README.md, Performance).

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

// raw makes a system call raw, again while it is interrupted.
func raw(trap, a1, a2, a3, a4, a5, a6 uintptr) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, e
	}
}

// closeFd closes fd; close is never repeated (the descriptor is gone even
// when it says EINTR).
func closeFd(fd int) { unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }

// msg calls sendmsg or recvmsg on the pair with one buffer and control
// data, raw and without waiting; only when it would have to wait does it
// call again through the runtime. It returns the bytes, the control bytes
// and the flags.
func (l *listener) msg(trap uintptr, b, oob []byte, flags int) (n, oobn, rflags int, err error) {
	iov := unix.Iovec{Base: unsafe.SliceData(b)}
	iov.SetLen(len(b))
	var h unix.Msghdr
	call := func(f int) {
		h = unix.Msghdr{Iov: &iov, Iovlen: 1}
		if len(oob) > 0 {
			h.Control = &oob[0]
			h.SetControllen(len(oob))
		}
		n, err = raw(trap, uintptr(l.cfg.Pair), uintptr(unsafe.Pointer(&h)), uintptr(f), 0, 0, 0)
	}
	if call(flags | unix.MSG_DONTWAIT); err == unix.EAGAIN {
		for err = unix.EINTR; err == unix.EINTR; {
			r, _, e := unix.Syscall(trap, uintptr(l.cfg.Pair), uintptr(unsafe.Pointer(&h)), uintptr(flags))
			n, err = int(r), error(nil)
			if e != 0 {
				n, err = -1, e
			}
		}
	}
	return n, int(h.Controllen), int(h.Flags), err
}

// send sends m to the executor, with fd as SCM_RIGHTS when fd >= 0.
func (l *listener) send(m *ipc.Message, fd int) error {
	b, err := ipc.Encode(m)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if _, _, _, err = l.msg(unix.SYS_SENDMSG, b, oob, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("send %s: %w", ipc.KindName(m.Kind), err)
	}
	return nil
}

// receive reads one message from the executor and applies ipc's checks
// (ipc.Check): errGone at end of file, an error for a broken protocol
// (the executor sends no descriptor; any that came is closed).
func (l *listener) receive() (*ipc.Message, error) {
	n, oobn, flags, err := l.msg(unix.SYS_RECVMSG, l.buf[:], l.oob[:], unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("executor: receive: %w", err)
	}
	cmsgs, err := unix.ParseSocketControlMessage(l.oob[:oobn])
	nfds := 0
	if err != nil {
		nfds = 1 // unreadable control data counts as a descriptor: refused
	}
	for _, c := range cmsgs {
		fds, _ := unix.ParseUnixRights(&c)
		for _, fd := range fds {
			closeFd(fd)
		}
		nfds += max(len(fds), 1) // another kind of control message counts too
	}
	m, err := ipc.Check(l.buf[:n], flags&unix.MSG_TRUNC != 0, flags&unix.MSG_CTRUNC != 0, nfds, ipc.FromExecutor)
	switch {
	case n == 0 && oobn == 0 && flags&unix.MSG_TRUNC == 0:
		return nil, errGone
	case err != nil:
		return nil, fmt.Errorf("executor: %w", err)
	}
	return m, nil
}

// readable reports whether the pair has a message waiting.
func (l *listener) readable() bool {
	fds := [1]unix.PollFd{{Fd: int32(l.cfg.Pair), Events: unix.POLLIN}}
	var zero unix.Timespec
	n, err := raw(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	return err == nil && n > 0
}
