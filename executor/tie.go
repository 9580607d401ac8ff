package executor

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// tied returns nil when fd, a stream socket the listener passed for a
// service (ipc.CheckSocket has passed it), is a connection accepted on that
// service: its family and type are those of one of listening (the
// service's listening sockets, the executor's own copies), it is connected,
// its local address is that socket's (unix: the path; inet: the port, and
// the address unless it listens on all addresses), and it lives in netns,
// the executor's network namespace (0: the kernel cannot tell, before
// 5.14). Else it names the check that failed. So a listener cannot pass the
// client end of a connection it made, to a service or elsewhere, nor a
// socket of a network namespace it made.
//
//tcb:request-path
func tied(fd int, listening []int, netns uint64) error {
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
	for _, l := range listening {
		ld, _ := unix.GetsockoptInt(l, unix.SOL_SOCKET, unix.SO_DOMAIN)
		lt, _ := unix.GetsockoptInt(l, unix.SOL_SOCKET, unix.SO_TYPE)
		la, err := unix.Getsockname(l)
		if ld != dom || lt != typ || err != nil {
			continue
		}
		family = true
		if sameAddr(local, la) {
			return nil
		}
	}
	if !family {
		return fmt.Errorf("family: family %d type %d is not the service's", dom, typ)
	}
	return fmt.Errorf("address: local address %s is not the service's", addrText(local))
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
