package executor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

// TestTied: an accepted connection is tied to its listening socket; the
// client end, a socket pair, another service's connection, a socket of
// another family, an unconnected one and one of another namespace are
// not, each with the check named.
func TestTied(t *testing.T) {
	socket := func(dom int) int {
		fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	listen := func(dom int, sa unix.Sockaddr) int {
		fd := socket(dom)
		if err := unix.Bind(fd, sa); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 8); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	conn := func(l int) (server, client int) {
		sa, _ := unix.Getsockname(l)
		dom, _ := unix.GetsockoptInt(l, unix.SOL_SOCKET, unix.SO_DOMAIN)
		client = socket(dom)
		if err := unix.Connect(client, sa); err != nil {
			t.Fatal(err)
		}
		server, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(server) })
		return server, client
	}
	upath := filepath.Join(t.TempDir(), "s")
	ulsn := listen(unix.AF_UNIX, &unix.SockaddrUnix{Name: upath})
	userver, uclient := conn(ulsn)
	// Another socket bound to the same path once the first's file is gone.
	if err := os.Remove(upath); err != nil {
		t.Fatal(err)
	}
	impostor := listen(unix.AF_UNIX, &unix.SockaddrUnix{Name: upath})
	iserver, _ := conn(impostor)
	tlsn := listen(unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	other := listen(unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	tserver, tclient := conn(tlsn)
	oserver, _ := conn(other)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unconnected := socket(unix.AF_INET)
	ns := netnsCookie()
	for _, c := range []struct {
		name      string
		fd        int
		listening []int
		want      string
	}{
		{"unix accepted", userver, []int{ulsn}, ""},
		{"tcp accepted", tserver, []int{tlsn}, ""},
		{"either socket", tserver, []int{ulsn, tlsn}, ""},
		{"unix client end", uclient, []int{ulsn}, "address"},
		{"same path, other socket", iserver, []int{ulsn}, "inode"},
		{"tcp client end", tclient, []int{tlsn}, "address"},
		{"socket pair", pair[0], []int{ulsn}, "address"},
		{"other service", oserver, []int{tlsn}, "address"},
		{"other family", userver, []int{tlsn}, "family"},
		{"not connected", unconnected, []int{tlsn}, "connected"},
		{"other netns", tserver, []int{tlsn}, "netns"},
	} {
		cookie := ns
		if c.name == "other netns" {
			cookie = ns + 1
		}
		var s sock
		err := s.read(c.fd, ns != 0)
		if err == nil {
			err = s.tied(c.fd, listening(c.listening), cookie)
		}
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want+":")) {
			t.Errorf("%s: got %v, want check %q", c.name, err, c.want)
		}
	}
	if ns == 0 {
		t.Log("no SO_NETNS_COOKIE (kernel before 5.14): the netns check was not exercised")
	}
}

// TestSockRead: read refuses what is not a stream socket of family inet,
// inet6 or unix that is not listening, with the refusal's words (check
// "fd"); of a connection it reads the client as client_access sees it and
// the peer variables, over IPv4, IPv6 and unix.
func TestSockRead(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	mk := func(dom, typ int) int {
		fd, err := unix.Socket(dom, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	lsn := mk(unix.AF_INET, unix.SOCK_STREAM)
	if unix.Bind(lsn, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}) != nil || unix.Listen(lsn, 1) != nil {
		t.Fatal("cannot listen on 127.0.0.1")
	}
	for _, c := range []struct {
		name string
		fd   int
		want string
	}{
		{"pipe", int(pr.Fd()), "passed descriptor is not a socket (mode 010000)"},
		{"datagram", mk(unix.AF_UNIX, unix.SOCK_DGRAM), "passed socket is not a stream socket (type 2)"},
		{"netlink", mk(unix.AF_NETLINK, unix.SOCK_RAW), "passed socket is not a stream socket (type 3)"},
		{"listening", lsn, "passed socket is a listening socket"},
	} {
		var s sock
		err := s.read(c.fd, true)
		var v *ipc.Violation
		if !errors.As(err, &v) || v.Check != "fd" || v.Detail != c.want {
			t.Errorf("%s: got %v, want check fd: %s", c.name, err, c.want)
		}
	}
	uid, gid, pid := os.Getuid(), os.Getgid(), os.Getpid()
	for _, c := range []struct{ network, addr, client, env string }{
		{"tcp4", "127.0.0.1:0", "127.0.0.1", "PROTO=TCP TCPREMOTEIP=127.0.0.1 TCPREMOTEPORT=$R TCPLOCALIP=127.0.0.1 TCPLOCALPORT=$L"},
		{"tcp6", "[::1]:0", "::1", "PROTO=TCP TCPREMOTEIP=::1 TCPREMOTEPORT=$R TCPLOCALIP=::1 TCPLOCALPORT=$L"},
		{"unix", filepath.Join(t.TempDir(), "s"), fmt.Sprintf("uid %d gid %d", uid, gid),
			fmt.Sprintf("PROTO=UNIX UNIXREMOTEUID=%d UNIXREMOTEGID=%d UNIXREMOTEPID=%d", uid, gid, pid)},
	} {
		ln, err := net.Listen(c.network, c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cl, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := srv.(interface{ File() (*os.File, error) }).File()
		srv.Close()
		defer f.Close()
		var s sock
		if err := s.read(int(f.Fd()), true); err != nil {
			t.Fatalf("%s: %v", c.network, err)
		}
		env := c.env
		if a, ok := cl.LocalAddr().(*net.TCPAddr); ok {
			env = strings.NewReplacer("$R", strconv.Itoa(a.Port), "$L", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)).Replace(env)
		}
		if got := s.client().String(); got != c.client {
			t.Errorf("%s: client %q, want %q", c.network, got, c.client)
		}
		if got := strings.Join(s.env(), " "); got != env {
			t.Errorf("%s: env %q, want %q", c.network, got, env)
		}
	}
}
