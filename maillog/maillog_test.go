package maillog

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFileRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maillog")
	l, err := Open(path, "postfix/spawnd", "mail")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("connect from %s", "x")
	l.Warning("command %s exit status %d", "/bin/false", 1)
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	re := regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ postfix/spawnd\[\d+\]: `)
	if len(lines) != 2 || !re.MatchString(lines[0]) || !strings.HasSuffix(lines[0], ": connect from x") ||
		!strings.HasSuffix(lines[1], ": warning: command /bin/false exit status 1") {
		t.Fatalf("records:\n%s", b)
	}
}

func TestSyslogReconnects(t *testing.T) {
	SyslogPath = filepath.Join(t.TempDir(), "log")
	defer func() { SyslogPath = "/dev/log" }()
	listen := func() *net.UnixConn {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: SyslogPath, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	read := func(c *net.UnixConn) string {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	srv := listen()
	l, err := Open("", "postfix/spawnd", "mail")
	if err != nil || l.Kind() != Syslog {
		t.Fatalf("open: %v kind %v", err, l.Kind())
	}
	l.Warning("first")
	if got := read(srv); !strings.HasPrefix(got, "<20>") || !strings.HasSuffix(got, "postfix/spawnd["+strconv.Itoa(os.Getpid())+"]: warning: first\n") {
		t.Fatalf("got %q", got)
	}
	// The syslog daemon restarts: its socket goes and comes back.
	srv.Close()
	os.Remove(SyslogPath)
	srv = listen()
	defer srv.Close()
	l.Info("second")
	if got := read(srv); !strings.HasPrefix(got, "<22>") || !strings.HasSuffix(got, ": second\n") {
		t.Fatalf("after restart got %q", got)
	}
}
