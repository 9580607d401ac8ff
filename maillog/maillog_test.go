package maillog

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFileRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maillog")
	l, err := Open(path, "", "postfix/spawnd", 2)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("connect from %s", "x")
	l.Warning("command %s exit status %d", "/bin/false", 1)
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	re := regexp.MustCompile(`^[A-Z][a-z]{2} [0-3]\d \d\d:\d\d:\d\d \S+ postfix/spawnd\[\d+\]: `)
	if len(lines) != 2 || !re.MatchString(lines[0]) || !strings.HasSuffix(lines[0], ": connect from x") ||
		!strings.HasSuffix(lines[1], ": warning: command /bin/false exit status 1") {
		t.Fatalf("records:\n%s", b)
	}
}

func TestSyslogReconnects(t *testing.T) {
	syslogPath = filepath.Join(t.TempDir(), "log")
	defer func() { syslogPath = "/dev/log" }()
	listen := func() *net.UnixConn {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: syslogPath, Net: "unixgram"})
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
	l, err := Open("", "", "postfix/spawnd", 2)
	if err != nil || l.Kind() != Syslog {
		t.Fatalf("open: %v kind %v", err, l.Kind())
	}
	l.Warning("first")
	if got := read(srv); !strings.HasPrefix(got, "<20>") || !strings.HasSuffix(got, "postfix/spawnd["+strconv.Itoa(os.Getpid())+"]: warning: first\n") {
		t.Fatalf("got %q", got)
	}
	// The syslog daemon restarts: its socket goes and comes back.
	srv.Close()
	os.Remove(syslogPath)
	srv = listen()
	defer srv.Close()
	l.Info("second")
	if got := read(srv); !strings.HasPrefix(got, "<22>") || !strings.HasSuffix(got, ": second\n") {
		t.Fatalf("after restart got %q", got)
	}
}

// TestStderrSocket: maillog_file = /dev/stderr works when standard error
// is a socket, as systemd connects it to the journal (open(2) of
// /dev/stderr fails there with ENXIO).
func TestStderrSocket(t *testing.T) {
	if os.Getenv("MAILLOG_STDERR") != "" {
		l, err := Open("/dev/stderr", "", "postfix/spawnd", 2)
		if err != nil {
			os.Stdout.WriteString(err.Error())
			os.Exit(1)
		}
		l.Warning("to the journal")
		os.Exit(0)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	journal, stderr := os.NewFile(uintptr(fds[0]), "journal"), os.NewFile(uintptr(fds[1]), "stderr")
	defer journal.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStderrSocket$")
	cmd.Env = append(os.Environ(), "MAILLOG_STDERR=1")
	cmd.Stderr = stderr
	out, err := cmd.Output()
	stderr.Close()
	if err != nil {
		t.Fatalf("Open(/dev/stderr) with stderr a socket: %s %v", out, err)
	}
	journal.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(journal)
	if !strings.HasSuffix(string(b), "postfix/spawnd["+strconv.Itoa(cmd.Process.Pid)+"]: warning: to the journal\n") {
		t.Fatalf("the socket got %q", b)
	}
}

// Postfix mode with maillog_file: records go to postlogd(8)'s datagram
// socket in msg_logger's shape (no newline, day zero-padded, host the
// first label of POSTLOG_HOSTNAME, the pid set), and again after
// postlogd restarted; a socket path with a symbolic link is not
// followed, and the file itself is never opened.
func TestPostlog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postlog")
	listen := func() *net.UnixConn {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv := listen()
	t.Setenv("POSTLOG_HOSTNAME", "mail.example.test")
	file := filepath.Join(dir, "maillog")
	l, err := Open(file, path, "postfix/spawnd", 2)
	if err != nil || l.Kind() != Postlog {
		t.Fatalf("open: %v kind %v", err, l.Kind())
	}
	l.Pid = 4242
	read := func() string {
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	re := regexp.MustCompile(`^[A-Z][a-z]{2} [0-3]\d \d\d:\d\d:\d\d mail postfix/spawnd\[4242\]: warning: first$`)
	l.Warning("first")
	if got := read(); !re.MatchString(got) {
		t.Errorf("record %q", got)
	}
	srv.Close()
	os.Remove(path)
	srv = listen()
	l.Info("second")
	if got := read(); !strings.HasSuffix(got, "mail postfix/spawnd[4242]: second") {
		t.Errorf("after a restart: %q", got)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("the maillog_file was created")
	}
	link := filepath.Join(dir, "link")
	os.Symlink(path, link)
	if _, _, err := dialPostlog(link); err != unix.ELOOP {
		t.Errorf("dial through a symbolic link: %v, want ELOOP", err)
	}
}

// TestOpenFileSafely: maillog_file is opened as Postfix's safe_open does:
// a symlink, a second hard link, a FIFO or a directory at the name is
// refused (the FIFO without blocking), an absent file is created 0600.
func TestOpenFileSafely(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(target, filepath.Join(dir, "symlink"))
	os.Link(target, filepath.Join(dir, "hardlink"))
	unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600)
	for _, name := range []string{"symlink", "hardlink", "fifo", "."} {
		done := make(chan error, 1)
		go func() {
			l, err := Open(filepath.Join(dir, name), "", "spawnd", 2)
			if err == nil {
				unix.Close(l.Fd())
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: opened", name)
			}
		case <-time.After(10 * time.Second):
			// A reader lets the blocked open go.
			if fd, err := unix.Open(filepath.Join(dir, name), unix.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
				defer unix.Close(fd)
			}
			t.Errorf("%s: the open blocked", name)
			<-done
		}
	}
	os.Remove(filepath.Join(dir, "hardlink"))
	for _, name := range []string{"target", "new"} {
		l, err := Open(filepath.Join(dir, name), "", "spawnd", 2)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		unix.Close(l.Fd())
	}
	if st, err := os.Stat(filepath.Join(dir, "new")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("new maillog_file: %v %v, want mode 0600", st.Mode(), err)
	}
}
