package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"spawnd/policy"
)

// backlog is the listen queue of the sockets spawnd opens: connections
// past a service's process limit wait here.
const backlog = 4096

// inherited returns the sockets systemd passed this process, by name
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), close-on-exec, and clears the
// variables so no child sees them.
func inherited() map[string][]int {
	defer func() {
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(v)
		}
	}()
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	byName := map[string][]int{}
	for i := 0; i < n; i++ {
		fd := 3 + i
		unix.CloseOnExec(fd)
		name := "unknown"
		if i < len(names) {
			name, _ = url.PathUnescape(names[i]) // a reload's "127.0.0.1%3A25"
		}
		byName[name] = append(byName[name], fd)
	}
	return byName
}

// openSockets returns each service's listening sockets: the inherited
// ones named after it, or new ones. It returns the unix socket paths to
// remove on exit: those it created, and the inherited ones that own names
// (created by this spawnd before a reload, not by systemd); and the names
// of inherited sockets no service took, which it closes.
func openSockets(p *policy.Policy, inh map[string][]int, own map[string]bool) (fds [][]int, paths, unused []string, err error) {
	for _, s := range p.Services {
		if got := inh[s.Name]; len(got) > 0 {
			for _, fd := range got {
				if err := checkInherited(fd, s.Endpoint.Type); err != nil {
					return nil, paths, nil, fmt.Errorf("service %s: %w", s.Name, err)
				}
			}
			fds = append(fds, got)
			delete(inh, s.Name)
			if own[s.Name] && s.Endpoint.Type == policy.Unix {
				paths = append(paths, s.Endpoint.Address)
			}
			continue
		}
		var fd int
		if s.Endpoint.Type == policy.Unix {
			fd, err = listenUnix(s.Endpoint, p.MailOwner)
			paths = append(paths, s.Endpoint.Address)
		} else {
			fd, err = listenInet(s.Endpoint.Address)
		}
		if err != nil {
			return nil, paths, nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		fds = append(fds, []int{fd})
	}
	for name, left := range inh { // a misnamed unit, or a service now gone
		for _, fd := range left {
			unix.Close(fd)
		}
		unused = append(unused, name)
	}
	slices.Sort(unused)
	return fds, paths, unused, nil
}

// checkInherited requires an inherited descriptor to be what the listener
// will accept on: a listening stream socket of the service's type.
func checkInherited(fd int, typ string) error {
	st, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("inherited descriptor %d: %w", fd, err)
	}
	listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	domain, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	ok := domain == unix.AF_UNIX
	if typ == policy.Inet {
		ok = domain == unix.AF_INET || domain == unix.AF_INET6
	}
	if !ok || st != unix.SOCK_STREAM || listening != 1 {
		return fmt.Errorf("inherited descriptor %d is not a listening %s stream socket", fd, typ)
	}
	return nil
}

func listenInet(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, err
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	portNum, err := strconv.Atoi(port)
	if err != nil {
		return -1, fmt.Errorf("bad port %q", port)
	}
	if host == "" {
		sa = &unix.SockaddrInet6{Port: portNum}
	} else {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			return -1, err
		}
		if ip4 := ta.IP.To4(); ip4 != nil {
			family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}
		} else {
			sa = &unix.SockaddrInet6{Port: ta.Port, Addr: [16]byte(ta.IP.To16())}
		}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil && host == "" { // no IPv6: all IPv4 addresses
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: portNum}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if family == unix.AF_INET6 {
		v6only := 1
		if host == "" {
			v6only = 0 // all addresses, IPv4 included
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only)
	}
	if err := bindListen(fd, sa); err != nil {
		return -1, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return fd, nil
}

// listenUnix creates a unix socket as Postfix does: any stale socket
// removed, owned by mail_owner, mode 0666; the directory it lives in
// controls access, and is created (mail_owner, 0700 when private) when
// missing.
func listenUnix(ep policy.Endpoint, owner policy.Account) (int, error) {
	dir := filepath.Dir(ep.Address)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return -1, err
		}
		if ep.Private {
			os.Chmod(dir, 0o700)
			os.Chown(dir, int(owner.Uid), int(owner.Gid))
		}
	}
	if st, err := os.Lstat(ep.Address); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return -1, fmt.Errorf("%s exists and is not a socket", ep.Address)
		}
		os.Remove(ep.Address)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: ep.Address}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", ep.Address, err)
	}
	if err := os.Chown(ep.Address, int(owner.Uid), int(owner.Gid)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := os.Chmod(ep.Address, 0o666); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", ep.Address, err)
	}
	return fd, nil
}

func bindListen(fd int, sa unix.Sockaddr) error {
	err := unix.Bind(fd, sa)
	if err == nil {
		err = unix.Listen(fd, backlog)
	}
	if err != nil {
		unix.Close(fd)
	}
	return err
}
