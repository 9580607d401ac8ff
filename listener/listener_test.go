package listener

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
)

// fake is the executor's side of the pair, driven by the test.
type fake struct {
	t    *testing.T
	conn *ipc.Conn
	fd   int // the executor's end, to poll
	log  string
	done chan error
}

// startListener runs Run in-process against a fake executor announcing one
// service with the given process limit on a fresh TCP socket, and master's
// status channel when status is true. It returns the fake, the service's
// address and the test's end of the status channel.
func startListener(t *testing.T, limit uint32, status bool) (*fake, string, int) {
	t.Helper()
	ex, li, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	lf, _ := l.(*net.TCPListener).File()
	t.Cleanup(func() { lf.Close() })
	logPath := filepath.Join(t.TempDir(), "log")
	fd, _ := unix.Open(logPath, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC, 0o600)
	f := &fake{t: t, conn: ipc.NewConn(ex), fd: ex, log: logPath, done: make(chan error, 1)}
	cfg := Config{Conn: ipc.NewConn(li), Log: maillog.New(fd, maillog.File, "postfix/spawnd", 2), Verbose: true, Status: -1}
	peer := -1
	if status {
		sp, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		cfg.Status, cfg.Pid, cfg.Gen, peer = sp[0], 4242, 7, sp[1]
	}
	go func() { f.done <- Run(cfg, li) }()
	if m := f.recv(); m.Kind != ipc.KindHello {
		t.Fatalf("first message %+v, want hello", m)
	}
	f.send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 10})
	f.send(&ipc.Message{Kind: ipc.KindService, Name: "svc", Command: "/bin/cmd", Limit: limit, Fd: int32(lf.Fd()), NFd: 1})
	return f, l.Addr().String(), peer
}

func (f *fake) send(m *ipc.Message) {
	if err := f.conn.Send(m, -1); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) recv() *ipc.Message {
	f.t.Helper()
	m, fd, err := f.conn.Receive(ipc.FromListener)
	if err != nil {
		f.t.Fatal(err)
	}
	if fd >= 0 {
		unix.Write(fd, []byte("hi"))
		unix.Close(fd)
	}
	return m
}

// pending reports whether a message is waiting within d.
func (f *fake) pending(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
	n, _ := unix.Poll(fds, int(d/time.Millisecond))
	return n > 0
}

func dial(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProcessLimitAndLog(t *testing.T) {
	f, addr, _ := startListener(t, 2, false)
	for i := 0; i < 4; i++ {
		dial(t, addr)
	}
	a, b := f.recv(), f.recv()
	if a.Kind != ipc.KindRun || b.Kind != ipc.KindRun || a.Seq == b.Seq {
		t.Fatalf("runs %+v %+v", a, b)
	}
	if f.pending(300 * time.Millisecond) {
		t.Fatal("a third run past the process limit of 2")
	}
	f.send(&ipc.Message{Kind: ipc.KindExited, Seq: a.Seq, Pid: 99, Code: 3})
	c := f.recv()
	f.send(&ipc.Message{Kind: ipc.KindExited, Seq: b.Seq, Pid: 98, Signal: 9, Timeout: true})
	d := f.recv()
	f.send(&ipc.Message{Kind: ipc.KindExited, Seq: c.Seq, Pid: 97, Signal: 15})
	f.send(&ipc.Message{Kind: ipc.KindRefused, Seq: d.Seq, Reason: "fork: resource temporarily unavailable"})
	f.conn.Close() // the executor goes away
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end when the executor went away")
	}
	log, _ := os.ReadFile(f.log)
	for _, want := range []string{
		"warning: command /bin/cmd exit status 3",
		"warning: /bin/cmd: process id 98: command time limit exceeded",
		"warning: command /bin/cmd killed by signal 15",
		"warning: command /bin/cmd: fork: resource temporarily unavailable",
		"service=svc peer=127.0.0.1:",
	} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestMasterStatus(t *testing.T) {
	f, addr, status := startListener(t, 1, true)
	read := func() (pid, gen, avail uint32) {
		var b [12]byte
		unix.SetsockoptTimeval(status, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
		if n, err := unix.Read(status, b[:]); n != 12 || err != nil {
			t.Fatalf("status read %d, %v", n, err)
		}
		return binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
	}
	dial(t, addr)
	m := f.recv()
	if pid, gen, avail := read(); pid != 4242 || gen != 7 || avail != 0 {
		t.Fatalf("after accept: pid %d gen %d avail %d, want 4242 7 TAKEN", pid, gen, avail)
	}
	f.send(&ipc.Message{Kind: ipc.KindExited, Seq: m.Seq, Pid: 5})
	if _, _, avail := read(); avail != 1 {
		t.Fatalf("after the result: avail %d, want AVAIL", avail)
	}
	unix.Close(status) // master(8) goes away: the listener stops and ends
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end when master went away")
	}
}
