package listener

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/maillog"
)

// TestInheritedSyslogRedials: the listener inherits a connected syslog
// socket and knows no path, yet reaches the syslog daemon again after it
// restarts, at the address the socket was connected to (not /dev/log).
func TestInheritedSyslogRedials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	l := NewLog(fd, maillog.Syslog, "postfix/spawnd", 2)
	srv.Close()
	os.Remove(path)
	srv, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l.Warning("after restart")
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	n, err := srv.Read(buf)
	if err != nil || !strings.HasSuffix(string(buf[:n]), ": warning: after restart\n") {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}
