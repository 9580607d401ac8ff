package executor

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/policy"
)

// sock is what the executor knows of the socket a request passed, read
// once (read) and used by the tie check, client_access and the command's
// peer variables.
type sock struct {
	local, peer syscall.Sockaddr // peer nil: not connected, err says why
	err         error
	cred        unix.Ucred // unix: the client's (SO_PEERCRED)
	netns       uint64     // SO_NETNS_COOKIE, when read
}

// read reads the socket fd that the listener passed, and refuses it (check
// "fd") unless it is a stream socket of family inet, inet6 or unix that is
// not listening. The rest is tied's. fstat and SO_DOMAIN are read only to
// word a refusal, SO_ACCEPTCONN only for a socket without a peer (a
// listening socket has none). The addresses come from package syscall:
// x/sys reads SO_PROTOCOL besides, for every inet address.
//
//tcb:request-path
func (s *sock) read(fd int, netns bool) error {
	var st unix.Stat_t
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil && unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return &ipc.Violation{Check: "fd", Detail: fmt.Sprintf("passed descriptor is not a socket (mode %#o)", st.Mode&unix.S_IFMT)}
	}
	if err != nil || typ != unix.SOCK_STREAM {
		return &ipc.Violation{Check: "fd", Detail: fmt.Sprintf("passed socket is not a stream socket (type %d)", typ)}
	}
	*s = sock{}
	switch s.local, _ = syscall.Getsockname(fd); s.local.(type) {
	case *syscall.SockaddrInet4, *syscall.SockaddrInet6, *syscall.SockaddrUnix:
	default:
		dom, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		return &ipc.Violation{Check: "fd", Detail: fmt.Sprintf("passed socket has family %d", dom)}
	}
	if s.peer, s.err = syscall.Getpeername(fd); s.err != nil {
		if acc, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); acc != 0 {
			return &ipc.Violation{Check: "fd", Detail: "passed socket is a listening socket"}
		}
		s.err = fmt.Errorf("getpeername: %v", s.err)
	} else if _, ok := s.local.(*syscall.SockaddrUnix); ok {
		// A connected unix socket always has its peer's credentials.
		if cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			s.cred = *cred
		} else {
			s.peer, s.err = nil, fmt.Errorf("getsockopt SO_PEERCRED: %v", err)
		}
	}
	if netns {
		s.netns, _ = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	}
	return nil
}

// lsock is what tied compares a passed socket with: one of a service's
// listening sockets, read once when the service's entry is made (they do
// not change), not on every request.
type lsock struct {
	addr syscall.Sockaddr // nil: unreadable or not a stream socket, matches nothing
	file [2]uint32        // unix: the file it is bound to (boundFile)
}

// listening reads the address and bound file of each of fds.
func listening(fds []int) []lsock {
	ls := make([]lsock, len(fds))
	for i, l := range fds {
		if typ, _ := unix.GetsockoptInt(l, unix.SOL_SOCKET, unix.SO_TYPE); typ == unix.SOCK_STREAM {
			ls[i].addr, _ = syscall.Getsockname(l)
		}
		ls[i].file, _ = boundFile(l) // none for inet: zero
	}
	return ls
}

// tied returns nil when s, read from the socket fd that the listener
// passed for a service, is a connection accepted on that service: it is
// connected, it lives in netns, the executor's network namespace (0: the
// kernel cannot tell, before 5.14), its family is that of one of ls (the
// service's listening sockets, the executor's own copies) and its local
// address is that socket's (unix: the path, and the file bound to it;
// inet: the port, and the address unless it listens on all addresses).
// Else it names the check that failed. So a listener cannot pass the
// client end of a connection it made, to a service or elsewhere, nor a
// socket of a network namespace it made.
//
//tcb:request-path
func (s *sock) tied(fd int, ls []lsock, netns uint64) error {
	if s.peer == nil {
		return fmt.Errorf("connected: %v", s.err)
	}
	if netns != 0 && s.netns != netns {
		return fmt.Errorf("netns: the socket is not in the executor's network namespace")
	}
	family := false
	for _, l := range ls {
		fam, same := sameAddr(s.local, l.addr)
		family = family || fam
		if !same {
			continue
		}
		if _, ok := s.local.(*syscall.SockaddrUnix); !ok {
			return nil
		}
		// The path is a name: the listener may have bound a socket of its
		// own to it. An accepted socket shares its listener's file.
		if f, ok := boundFile(fd); ok && f == l.file {
			return nil
		}
		return fmt.Errorf("inode: bound to %s, but not by the service's socket", addrText(s.local))
	}
	if !family {
		return fmt.Errorf("family: %s is not of the family of the service's sockets", addrText(s.local))
	}
	return fmt.Errorf("address: local address %s is not the service's", addrText(s.local))
}

// client is the peer as client_access sees it.
//
//tcb:request-path
func (s *sock) client() policy.Client {
	if _, ok := s.local.(*syscall.SockaddrUnix); ok {
		return policy.Client{Uid: s.cred.Uid, Gid: s.cred.Gid}
	}
	ip, _ := inet(s.peer)
	return policy.Client{Addr: ip}
}

// env returns the UCSPI-style variables of the peer.
//
//tcb:request-path
func (s *sock) env() []string {
	if _, ok := s.local.(*syscall.SockaddrUnix); ok {
		return []string{"PROTO=UNIX", fmt.Sprint("UNIXREMOTEUID=", s.cred.Uid),
			fmt.Sprint("UNIXREMOTEGID=", s.cred.Gid), fmt.Sprint("UNIXREMOTEPID=", s.cred.Pid)}
	}
	lip, lport := inet(s.local)
	rip, rport := inet(s.peer)
	return []string{"PROTO=TCP", "TCPREMOTEIP=" + rip.String(), "TCPREMOTEPORT=" + strconv.Itoa(rport),
		"TCPLOCALIP=" + lip.String(), "TCPLOCALPORT=" + strconv.Itoa(lport)}
}

// inet returns an inet or inet6 address and port; an IPv4 client of an
// IPv6 socket shows as IPv4.
//
//tcb:request-path
func inet(sa syscall.Sockaddr) (netip.Addr, int) {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrFrom4(a.Addr), a.Port
	case *syscall.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap(), a.Port
	}
	return netip.Addr{}, 0
}

// boundFile returns the inode and device of the file a unix socket is
// bound to (an accepted one: its listening socket's), as sock_diag
// reports it (UDIAG_SHOW_VFS); ok is false when it has none.
//
//tcb:request-path
func boundFile(fd int) (file [2]uint32, ok bool) {
	var st unix.Stat_t
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err == nil {
		defer unix.Close(nl) // also when fstat fails
	}
	if err != nil || unix.Fstat(fd, &st) != nil {
		return file, false
	}
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

// sameAddr reports whether a connection's local address a is of the
// family of the listening address l, and whether it is l: the same path,
// or the same port and, unless l is the wildcard, the same address.
//
//tcb:request-path
func sameAddr(a, l syscall.Sockaddr) (family, same bool) {
	switch l := l.(type) {
	case *syscall.SockaddrUnix:
		a, ok := a.(*syscall.SockaddrUnix)
		return ok, ok && l.Name != "" && a.Name == l.Name
	case *syscall.SockaddrInet4:
		a, ok := a.(*syscall.SockaddrInet4)
		return ok, ok && a.Port == l.Port && (l.Addr == [4]byte{} || a.Addr == l.Addr)
	case *syscall.SockaddrInet6:
		a, ok := a.(*syscall.SockaddrInet6)
		return ok, ok && a.Port == l.Port && (l.Addr == [16]byte{} || a.Addr == l.Addr)
	}
	return false, false
}

// addrText names a local address in a refusal.
//
//tcb:request-path
func addrText(sa syscall.Sockaddr) string {
	if u, ok := sa.(*syscall.SockaddrUnix); ok {
		return fmt.Sprintf("%q", u.Name)
	}
	ip, port := inet(sa)
	return fmt.Sprintf("%s port %d", ip, port)
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
