package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTied: an accepted connection is tied to its listening socket; the
// client end, a socket pair, another service's connection and a socket of
// another family are not, each with the check named.
func TestTied(t *testing.T) {
	sock := func(dom int) int {
		fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	listen := func(dom int, sa unix.Sockaddr) int {
		fd := sock(dom)
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
		client = sock(dom)
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
	unconnected := sock(unix.AF_INET)
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
		err := tied(c.fd, listening(c.listening), cookie)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want+":")) {
			t.Errorf("%s: got %v, want check %q", c.name, err, c.want)
		}
	}
	if ns == 0 {
		t.Log("no SO_NETNS_COOKIE (kernel before 5.14): the netns check was not exercised")
	}
}
