package executor

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// lsock is what tied compares a passed socket with: one of a service's
// listening sockets, read once when the service's entry is made (they do
// not change), not on every request.
type lsock struct {
	dom, typ int
	addr     unix.Sockaddr // nil: unreadable, matches nothing
	file     [2]uint32     // unix: the file it is bound to (boundFile)
}

// listening reads the family, type, address and bound file of each of fds.
func listening(fds []int) []lsock {
	ls := make([]lsock, len(fds))
	for i, l := range fds {
		ls[i].dom, _ = unix.GetsockoptInt(l, unix.SOL_SOCKET, unix.SO_DOMAIN)
		ls[i].typ, _ = unix.GetsockoptInt(l, unix.SOL_SOCKET, unix.SO_TYPE)
		ls[i].addr, _ = unix.Getsockname(l)
		ls[i].file, _ = boundFile(l) // none for inet: zero
	}
	return ls
}

// tied returns nil when fd, a stream socket the listener passed for a
// service (ipc.CheckSocket has passed it), is a connection accepted on that
// service: its family and type are those of one of ls (the service's
// listening sockets, the executor's own copies), it is connected, its
// local address is that socket's (unix: the path; inet: the port, and the
// address unless it listens on all addresses), and it lives in netns, the
// executor's network namespace (0: the kernel cannot tell, before 5.14).
// Else it names the check that failed. So a listener cannot pass the
// client end of a connection it made, to a service or elsewhere, nor a
// socket of a network namespace it made.
//
//tcb:request-path
func tied(fd int, ls []lsock, netns uint64) error {
	dom, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	local, err3 := unix.Getsockname(fd)
	if err1 != nil || err2 != nil || err3 != nil {
		return fmt.Errorf("family: cannot read the socket's family, type or address")
	}
	if _, err := unix.Getpeername(fd); err != nil {
		return fmt.Errorf("connected: getpeername: %v", err)
	}
	if netns != 0 {
		if c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE); err != nil || c != netns {
			return fmt.Errorf("netns: the socket is not in the executor's network namespace")
		}
	}
	family := false
	for _, l := range ls {
		if l.dom != dom || l.typ != typ || l.addr == nil {
			continue
		}
		family = true
		if !sameAddr(local, l.addr) {
			continue
		}
		if dom != unix.AF_UNIX {
			return nil
		}
		// The path is a name: the listener may have bound a socket of its
		// own to it. An accepted socket shares its listener's file.
		if f, ok := boundFile(fd); ok && f == l.file {
			return nil
		}
		return fmt.Errorf("inode: bound to %s, but not by the service's socket", addrText(local))
	}
	if !family {
		return fmt.Errorf("family: family %d type %d is not the service's", dom, typ)
	}
	return fmt.Errorf("address: local address %s is not the service's", addrText(local))
}

// boundFile returns the inode and device of the file a unix socket is
// bound to (an accepted one: its listening socket's), as sock_diag
// reports it (UDIAG_SHOW_VFS); ok is false when it has none.
//
//tcb:request-path
func boundFile(fd int) (file [2]uint32, ok bool) {
	var st unix.Stat_t
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil || unix.Fstat(fd, &st) != nil {
		return file, false
	}
	defer unix.Close(nl)
	// struct nlmsghdr, then struct unix_diag_req: family, protocol, pad,
	// states (all), inode, show, cookie (none).
	ne := binary.NativeEndian
	req := make([]byte, 40)
	ne.PutUint32(req[0:], 40)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	req[16] = unix.AF_UNIX
	ne.PutUint32(req[20:], ^uint32(0))
	ne.PutUint32(req[24:], uint32(st.Ino))
	ne.PutUint32(req[28:], 2) // UDIAG_SHOW_VFS
	ne.PutUint64(req[32:], ^uint64(0))
	buf := make([]byte, 512)
	if unix.Sendto(nl, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) != nil {
		return file, false
	}
	n, _, err := unix.Recvfrom(nl, buf, 0)
	if err != nil || n < 32 || ne.Uint16(buf[4:]) != unix.SOCK_DIAG_BY_FAMILY {
		return file, false
	}
	// Attributes follow struct unix_diag_msg; UNIX_DIAG_VFS (1) is the
	// inode and the device.
	for off := 32; off+4 <= n; {
		l := int(ne.Uint16(buf[off:]))
		if l < 4 || off+l > n {
			break
		}
		if ne.Uint16(buf[off+2:]) == 1 && l >= 12 {
			return [2]uint32{ne.Uint32(buf[off+4:]), ne.Uint32(buf[off+8:])}, true
		}
		off += (l + 3) &^ 3
	}
	return file, false
}

// sameAddr reports whether a connection's local address a is the
// listening address l: the same path, or the same port and, unless l is
// the wildcard, the same address.
//
//tcb:request-path
func sameAddr(a, l unix.Sockaddr) bool {
	switch l := l.(type) {
	case *unix.SockaddrUnix:
		a, ok := a.(*unix.SockaddrUnix)
		return ok && l.Name != "" && a.Name == l.Name
	case *unix.SockaddrInet4:
		a, ok := a.(*unix.SockaddrInet4)
		return ok && a.Port == l.Port && (l.Addr == [4]byte{} || a.Addr == l.Addr)
	case *unix.SockaddrInet6:
		a, ok := a.(*unix.SockaddrInet6)
		return ok && a.Port == l.Port && (l.Addr == [16]byte{} || a.Addr == l.Addr)
	}
	return false
}

// addrText names a local address in a refusal.
//
//tcb:request-path
func addrText(sa unix.Sockaddr) string {
	if u, ok := sa.(*unix.SockaddrUnix); ok {
		return fmt.Sprintf("%q", u.Name)
	}
	ip, port := inet(sa)
	return ip + " port " + port
}

// netnsCookie returns the executor's network namespace cookie, or 0 when
// the kernel has none (before 5.14).
func netnsCookie() uint64 {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	c, _ := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	return c
}
