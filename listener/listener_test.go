package listener

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
)

// hang is how long a test waits for something that must happen before it
// calls the code hung. Generous: no test asserts how fast anything is.
const hang = 10 * time.Second

// svcSpec is one service the fake executor announces.
type svcSpec struct {
	name, command string
	limit         uint32
	running       uint32 // commands of an earlier listener
	fds           []int  // listening sockets
}

// setup is one in-process run of the listener against a fake executor.
type setup struct {
	services []svcSpec
	cap      uint32
	verbose  bool
	postfix  *Postfix // Status is filled in by start
	stop     chan struct{}
	leave    chan struct{}
}

// fake is the executor's side of the pair, driven by the test. It checks,
// on every Run it receives, that the listener kept within the limits: the
// listener decrements its counts only after the fake's result has
// arrived, so a Run that finds the fake's count at a limit is a Run past
// the limit, whatever the timing.
type fake struct {
	t         *testing.T
	conn      *ipc.Conn
	fd        int
	settings  ipc.Message // the listener's settings Welcome carries
	logPath   string
	status    int // the test's end of master(8)'s status channel, or -1
	done      chan error
	limits    []uint32
	cap       uint32
	inflight  []uint32          // per service: Runs and earlier commands without a result sent
	fds       map[uint64]int    // client descriptors of Runs not yet answered
	svcOf     map[uint64]uint32 // service of each Run not yet answered
	maxTotal  uint32
	ourStatus int // the listener's end of the status channel, or -1
}

// start runs Run in a goroutine, answers Hello with Welcome and the
// Service messages, and returns the fake executor.
func start(t *testing.T, s setup) *fake {
	t.Helper()
	f, li, logFd := newFake(t, s.cap)
	cfg := Config{Pair: li, Log: maillog.New(logFd, maillog.File, "postfix/spawnd", 2), Verbose: s.verbose, Stop: s.stop, Leave: s.leave}
	if s.postfix != nil {
		pf := *s.postfix
		pf.Status = f.statusPair()
		cfg.Postfix = &pf
	}
	var first []int
	for _, svc := range s.services {
		first = append(first, contiguous(t, svc.fds))
	}
	go func() { f.done <- Run(cfg) }()
	t.Cleanup(func() {
		f.conn.Shutdown()
		select {
		case <-f.done:
		case <-time.After(hang):
			t.Error("Run did not end when the executor went away")
		}
	})
	f.welcome(s.services, first)
	return f
}

// newFake returns a fake executor with a fresh pair and log file, and the
// listener's end of the pair and the log's descriptor. Everything is
// closed at cleanup, after the listener's own cleanups.
func newFake(t *testing.T, cap uint32) (f *fake, li, logFd int) {
	t.Helper()
	ex, li, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	// A fake that waits for a Run that never comes fails instead of hanging.
	tv := unix.NsecToTimeval(int64(hang))
	if err := unix.SetsockoptTimeval(ex, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "maillog")
	logFd, err = unix.Open(logPath, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if cap == 0 {
		cap = 100
	}
	f = &fake{t: t, conn: ipc.NewConn(ex), fd: ex, logPath: logPath, status: -1, done: make(chan error, 1),
		cap: cap, fds: map[uint64]int{}, svcOf: map[uint64]uint32{}, ourStatus: -1}
	t.Cleanup(func() {
		for _, fd := range f.fds {
			unix.Close(fd)
		}
		unix.Close(ex)
		unix.Close(li)
		unix.Close(logFd)
		if f.ourStatus >= 0 {
			unix.Close(f.ourStatus)
		}
		if f.status >= 0 {
			unix.Close(f.status)
		}
	})
	return f, li, logFd
}

// statusPair makes master(8)'s status channel and returns the listener's
// end; the test reads the other, f.status.
func (f *fake) statusPair() int {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ourStatus, f.status = sp[0], sp[1]
	return sp[0]
}

// welcome takes Hello and answers Welcome and one Service message per
// service, whose sockets are at first[i] in the listener.
func (f *fake) welcome(services []svcSpec, first []int) {
	f.t.Helper()
	if m := f.recv(); m.Kind != ipc.KindHello {
		f.t.Fatalf("first message %+v, want hello", m)
	}
	w := f.settings
	w.Kind, w.Services, w.Cap = ipc.KindWelcome, uint32(len(services)), f.cap
	f.send(&w)
	for i, svc := range services {
		f.send(&ipc.Message{Kind: ipc.KindService, Service: uint32(i), Name: svc.name, Command: svc.command,
			Limit: svc.limit, Fd: int32(first[i]), NFd: uint32(len(svc.fds)), Running: svc.running})
		f.limits = append(f.limits, svc.limit)
		f.inflight = append(f.inflight, svc.running)
	}
}

func (f *fake) send(m *ipc.Message) {
	f.t.Helper()
	if err := f.conn.Send(m, -1); err != nil {
		f.t.Fatal(err)
	}
}

// recv receives one message (failing after hang).
func (f *fake) recv() *ipc.Message {
	f.t.Helper()
	m, fd, err := f.conn.Receive(ipc.FromListener)
	if err != nil {
		f.t.Fatalf("fake executor: %v", err)
	}
	if m.Kind == ipc.KindRun {
		f.fds[m.Seq] = fd
		f.svcOf[m.Seq] = m.Service
		f.inflight[m.Service]++
		total := uint32(0)
		for _, n := range f.inflight {
			total += n
		}
		f.maxTotal = max(f.maxTotal, total)
		if l := f.limits[m.Service]; l > 0 && f.inflight[m.Service] > l {
			f.t.Errorf("run seq %d for service %d: %d in flight, limit %d", m.Seq, m.Service, f.inflight[m.Service], l)
		}
		if total > f.cap {
			f.t.Errorf("run seq %d: %d in flight, cap %d", m.Seq, total, f.cap)
		}
	}
	return m
}

// run receives one message and requires a Run.
func (f *fake) run() *ipc.Message {
	f.t.Helper()
	m := f.recv()
	if m.Kind != ipc.KindRun {
		f.t.Fatalf("got %+v, want a run request", m)
	}
	return m
}

// serve plays the command for a Run: it reads the client's line from the
// passed descriptor and answers "served " and that line.
func (f *fake) serve(seq uint64) {
	f.t.Helper()
	if err := echo(f.fds[seq]); err != nil {
		f.t.Fatal(err)
	}
}

// echo reads a line from fd and writes it back after "served ".
func echo(fd int) error {
	var line []byte
	var b [1]byte
	for len(line) == 0 || line[len(line)-1] != '\n' {
		n, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return fmt.Errorf("read from the passed descriptor: %d bytes, %v", n, err)
		}
		line = append(line, b[0])
	}
	if _, err := unix.Write(fd, append([]byte("served "), line...)); err != nil {
		return fmt.Errorf("write to the passed descriptor: %v", err)
	}
	return nil
}

// finish closes a Run's client descriptor and sends its result; m's Seq
// and Service are filled in.
func (f *fake) finish(seq uint64, m ipc.Message) {
	f.t.Helper()
	if fd, ok := f.fds[seq]; ok {
		unix.Close(fd)
		delete(f.fds, seq)
	}
	if seq != 0 {
		m.Service = f.svcOf[seq]
		delete(f.svcOf, seq)
	}
	m.Seq = seq
	if m.Kind == 0 {
		m.Kind = ipc.KindExited
	}
	f.inflight[m.Service]--
	f.send(&m)
}

// ready reports whether a message waits for the fake, within d.
func (f *fake) ready(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d/time.Millisecond))
		if err != unix.EINTR {
			return n > 0
		}
	}
}

// wait waits for Run to return and returns its error.
func (f *fake) wait() error {
	f.t.Helper()
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
		return err
	case <-time.After(hang):
		f.t.Fatal("Run did not return")
		return nil
	}
}

// returned reports whether Run has returned, waiting at most d.
func (f *fake) returned(d time.Duration) bool {
	select {
	case err := <-f.done:
		f.done <- err
		return true
	case <-time.After(d):
		return false
	}
}

var logLine = regexp.MustCompile(`^[A-Z][a-z]{2} [0-3]\d \d\d:\d\d:\d\d \S+ postfix/spawnd\[\d+\]: (.*)$`)

// logLines returns the log's lines without the "date host ident[pid]: "
// prefix, which maillog's own tests check.
func (f *fake) logLines() []string {
	f.t.Helper()
	b, err := os.ReadFile(f.logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			f.t.Fatalf("log line %q: not in maillog_file format", line)
		}
		out = append(out, m[1])
	}
	return out
}

// status reads one record from master(8)'s status channel.
func (f *fake) statusRecord() (pid int32, gen uint32, avail int32) {
	f.t.Helper()
	var b [12]byte
	tv := unix.NsecToTimeval(int64(hang))
	unix.SetsockoptTimeval(f.status, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if n, err := unix.Read(f.status, b[:]); n != 12 || err != nil {
		f.t.Fatalf("status record: read %d bytes, %v", n, err)
	}
	return int32(binary.NativeEndian.Uint32(b[0:])), binary.NativeEndian.Uint32(b[4:]), int32(binary.NativeEndian.Uint32(b[8:]))
}

// noStatusRecord checks that no record is waiting on the status channel.
func (f *fake) noStatusRecord() {
	f.t.Helper()
	var b [12]byte
	if n, _, err := unix.Recvfrom(f.status, b[:], unix.MSG_DONTWAIT); err != unix.EAGAIN {
		f.t.Fatalf("unexpected status record: %d bytes %x, %v", n, b[:max(n, 0)], err)
	}
}

// contiguous gives the listening sockets fds consecutive numbers, as the
// executor does, and returns the first. The copies are closed at cleanup.
func contiguous(t *testing.T, fds []int) int {
	t.Helper()
	for base := 200; base < 1000; base += 10 {
		free := true
		for i := range fds {
			if _, err := unix.FcntlInt(uintptr(base+i), unix.F_GETFD, 0); err == nil {
				free = false
			}
		}
		if !free {
			continue
		}
		for i, fd := range fds {
			if err := unix.Dup3(fd, base+i, unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(base + i) })
		}
		return base
	}
	t.Fatal("no free descriptor range")
	return -1
}

// tcpListener returns a listening TCP socket on 127.0.0.1 and its address.
func tcpListener(t *testing.T) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// unixListener returns a listening UNIX socket in a temporary directory
// and its path.
func unixListener(t *testing.T) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	path := filepath.Join(t.TempDir(), "sock")
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		t.Fatal(err)
	}
	return fd, path
}

// client is one connection to a service.
type client struct {
	t    *testing.T
	c    net.Conn
	name string
}

// dial connects and sends the client's name, which the fake's serve
// echoes back through the descriptor it was passed.
func dial(t *testing.T, network, addr, name string) *client {
	t.Helper()
	c, err := net.DialTimeout(network, addr, hang)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * hang))
	if _, err := io.WriteString(c, name+"\n"); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, c: c, name: name}
}

// served checks that the client got its own name back and then EOF: the
// descriptor the executor got was this client's, and nobody else (the
// listener) holds it open any more.
func (c *client) served() {
	c.t.Helper()
	b, err := io.ReadAll(c.c)
	if err != nil {
		c.t.Fatalf("client %s: %v", c.name, err)
	}
	if want := "served " + c.name + "\n"; string(b) != want {
		c.t.Fatalf("client %s got %q, want %q", c.name, b, want)
	}
}

// inBacklog checks that a connection still waits in the listening
// socket's backlog (the listener left it there), by accepting it.
func inBacklog(t *testing.T, lfd int) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, int(hang/time.Millisecond)); n != 1 || err != nil {
		t.Fatalf("no connection left in the backlog: %d, %v", n, err)
	}
	nfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	if err != nil {
		t.Fatalf("accept the connection left in the backlog: %v", err)
	}
	unix.Close(nfd)
}

// The process limit holds connections in the backlog and never lets more
// than two Runs be outstanding; all six clients are served, each through
// the descriptor passed with its own Run, as results come back.
func TestProcessLimit(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{services: []svcSpec{{name: "svc", command: "/bin/cmd", limit: 2, fds: []int{lfd}}}, cap: 10})
	var clients []*client
	for i := range 6 {
		clients = append(clients, dial(t, "tcp", addr, "client"+strconv.Itoa(i)))
	}
	var queue []uint64
	for served := 0; served < 6; served++ {
		for len(queue) < 2 && len(queue)+served < 6 {
			m := f.run()
			f.serve(m.Seq)
			queue = append(queue, m.Seq)
		}
		f.finish(queue[0], ipc.Message{Pid: 100})
		queue = queue[1:]
	}
	for _, c := range clients {
		c.served()
	}
	if f.maxTotal != 2 {
		t.Errorf("at most %d in flight, want 2", f.maxTotal)
	}
	if lines := f.logLines(); len(lines) != 0 {
		t.Errorf("log %q, want nothing for exits with status 0", lines)
	}
}

// The executor's cap holds across services: three services (one with two
// sockets, TCP and UNIX), limits 0, 5 and 1, cap 3.
func TestCapAcrossServices(t *testing.T) {
	tfd, taddr := tcpListener(t)
	ufd, upath := unixListener(t)
	t2fd, t2addr := tcpListener(t)
	t3fd, t3addr := tcpListener(t)
	f := start(t, setup{cap: 3, services: []svcSpec{
		{name: "a", command: "/bin/a", limit: 0, fds: []int{tfd}},
		{name: "b", command: "/bin/b", limit: 5, fds: []int{ufd, t2fd}},
		{name: "c", command: "/bin/c", limit: 1, fds: []int{t3fd}},
	}})
	var clients []*client
	for i := range 3 {
		clients = append(clients,
			dial(t, "tcp", taddr, "a"+strconv.Itoa(i)),
			dial(t, "unix", upath, "bu"+strconv.Itoa(i)),
			dial(t, "tcp", t2addr, "bt"+strconv.Itoa(i)),
			dial(t, "tcp", t3addr, "c"+strconv.Itoa(i)))
	}
	// Take Runs while they come; when none does (c, limit 1, may be all
	// that is left), answer the oldest.
	var queue []uint64
	for served := 0; served < len(clients); {
		if len(queue) < 3 && len(queue)+served < len(clients) && (len(queue) == 0 || f.ready(50*time.Millisecond)) {
			m := f.run()
			f.serve(m.Seq)
			queue = append(queue, m.Seq)
			continue
		}
		f.finish(queue[0], ipc.Message{Pid: 100})
		queue = queue[1:]
		served++
	}
	for _, c := range clients {
		c.served()
	}
	if f.maxTotal != 3 {
		t.Errorf("at most %d in flight, want the cap, 3", f.maxTotal)
	}
}

// Commands of an earlier listener (Running) count as in flight until their
// results arrive with seq 0, which are logged like any other.
func TestEarlierCommands(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{services: []svcSpec{{name: "svc", command: "/bin/cmd", limit: 2, running: 2, fds: []int{lfd}}}})
	c := dial(t, "tcp", addr, "x")
	f.finish(0, ipc.Message{Pid: 77, Code: 3})
	m := f.run() // only now: the fake checks that the limit held
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Pid: 78})
	c.served()
	f.finish(0, ipc.Message{Pid: 79, Signal: 9})
	f.conn.Shutdown()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	want := []string{"warning: command /bin/cmd exit status 3", "warning: command /bin/cmd killed by signal 9"}
	if got := f.logLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Every outcome is logged in spawn(8)'s exact words; an exit with status
// 0 is not logged without -v.
func TestLogLines(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{services: []svcSpec{{name: "svc", command: "/usr/local/bin/policy", fds: []int{lfd}}}})
	results := []ipc.Message{
		{Pid: 11},
		{Pid: 12, Code: 3},
		{Pid: 13, Signal: 15},
		{Pid: 14, Signal: 9, Timeout: true},
		{Kind: ipc.KindRefused, Reason: "could not start: fork: resource temporarily unavailable"},
		{Pid: 16, Code: 1, Timeout: true},
	}
	for i, r := range results {
		c := dial(t, "tcp", addr, strconv.Itoa(i))
		m := f.run()
		f.serve(m.Seq)
		f.finish(m.Seq, r)
		c.served()
	}
	f.conn.Shutdown()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"warning: command /usr/local/bin/policy exit status 3",
		"warning: command /usr/local/bin/policy killed by signal 15",
		"warning: /usr/local/bin/policy: process id 14: command time limit exceeded",
		"warning: command /usr/local/bin/policy: could not start: fork: resource temporarily unavailable",
		"warning: /usr/local/bin/policy: process id 16: command time limit exceeded",
	}
	if got := f.logLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// -v logs one info line per connection, with the peer recorded at accept.
func TestVerbose(t *testing.T) {
	tfd, taddr := tcpListener(t)
	ufd, upath := unixListener(t)
	f := start(t, setup{verbose: true, services: []svcSpec{
		{name: "tcp", command: "/bin/t", running: 1, fds: []int{tfd}},
		{name: "private/u", command: "/bin/u", fds: []int{ufd}},
	}})
	c := dial(t, "tcp", taddr, "1")
	m := f.run()
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Pid: 21, Micros: 12345})
	c.served()
	c = dial(t, "unix", upath, "2")
	m = f.run()
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Pid: 22, Signal: 9, Timeout: true, Micros: 1000000})
	c.served()
	c = dial(t, "unix", upath, "3")
	m = f.run()
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Kind: ipc.KindRefused, Reason: "no"})
	c.served()
	f.finish(0, ipc.Message{Pid: 24, Code: 2, Micros: 1500})
	f.conn.Shutdown()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`^service=tcp peer=127\.0\.0\.1:\d+ pid=21 status=exit 0 duration=12\.3ms$`,
		`^warning: /bin/u: process id 22: command time limit exceeded$`,
		`^service=private/u peer=unix pid=22 status=time limit duration=1000\.0ms$`,
		`^warning: command /bin/u: no$`,
		`^service=private/u peer=unix pid=- status=refused duration=\d+\.\dms$`,
		`^warning: command /bin/t exit status 2$`,
		`^service=tcp peer=unknown pid=24 status=exit 2 duration=1\.5ms$`,
	}
	got := f.logLines()
	if len(got) != len(want) {
		t.Fatalf("log:\n%s\nwant %d lines", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !regexp.MustCompile(want[i]).MatchString(got[i]) {
			t.Errorf("log line %d: %q, want %s", i, got[i], want[i])
		}
	}
}

// The peer of a TCP client is its own address, as the client sees it.
func TestVerbosePeer(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{verbose: true, services: []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}}})
	c := dial(t, "tcp", addr, "1")
	m := f.run()
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Pid: 5})
	c.served()
	f.conn.Shutdown()
	f.wait()
	want := "service=s peer=" + c.c.LocalAddr().String() + " pid=5 status=exit 0 duration=0.0ms"
	if got := f.logLines(); len(got) != 1 || got[0] != want {
		t.Errorf("log %q, want %q", got, want)
	}
}

// When the executor goes away Run returns nil at once, in flight or not,
// and logs nothing.
// bare starts Run on a new pair with no fake executor behind it and
// returns the executor's end, once Hello has come on it, and Run's result.
func bare(t *testing.T) (*ipc.Conn, <-chan error) {
	t.Helper()
	ex, li, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	c := ipc.NewConn(ex)
	t.Cleanup(func() { c.Close(); unix.Close(li) })
	done := make(chan error, 1)
	go func() { done <- Run(Config{Pair: li, Log: maillog.New(-1, maillog.File, "x", 2)}) }()
	if m, _, err := c.Receive(ipc.FromListener); err != nil || m.Kind != ipc.KindHello {
		t.Fatalf("got %+v, %v, want hello", m, err)
	}
	return c, done
}

// result returns what Run returned, failing the test when it does not
// return.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(hang):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestExecutorGone(t *testing.T) {
	t.Run("in flight", func(t *testing.T) {
		lfd, addr := tcpListener(t)
		f := start(t, setup{services: []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}}})
		dial(t, "tcp", addr, "1")
		f.run()
		f.conn.Shutdown()
		if err := f.wait(); err != nil {
			t.Fatal(err)
		}
		if lines := f.logLines(); len(lines) != 0 {
			t.Errorf("log %q, want nothing", lines)
		}
	})
	t.Run("before welcome", func(t *testing.T) {
		c, done := bare(t)
		c.Shutdown()
		if err := result(t, done); err != nil {
			t.Fatal(err)
		}
	})
}

// An executor that breaks the protocol ends Run with an error that says
// how; the binary logs it as fatal.
func TestProtocolErrors(t *testing.T) {
	notListening := func(t *testing.T) int {
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(sp[0]); unix.Close(sp[1]) })
		return sp[0]
	}
	tests := []struct {
		name    string
		script  func(t *testing.T, c *ipc.Conn, lfd int)
		wantErr string
	}{
		{"cap 0", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1}, -1)
		}, "hard cap of 0"},
		{"service first", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
		}, "executor sent service, want welcome"},
		{"wrong index", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Service: 1, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
		}, "executor sent service for service 1, want service 0"},
		{"not listening", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(notListening(t)), NFd: 1}, -1)
		}, "service s: listening fd"},
		{"no fds", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd)}, -1)
		}, "executor sent service s with listening fds"},
		{"fd twice", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 2, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Service: 1, Name: "t", Fd: int32(lfd), NFd: 1}, -1)
		}, "service t: listening fd " + "%d: already in use"},
		{"unknown seq", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindExited, Seq: 5, Pid: 1}, -1)
		}, "executor sent exited for seq 5 service s, which is not in flight"},
		{"seq 0 beyond running", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindRefused, Reason: "x"}, -1)
		}, "executor sent refused with seq 0 for service s, which has no earlier command"},
		{"unknown service", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindExited, Service: 3, Pid: 1}, -1)
		}, "executor sent exited for service 3 of 1"},
		{"welcome again", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindService, Name: "s", Fd: int32(lfd), NFd: 1}, -1)
			c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, -1)
		}, "executor sent welcome while serving"},
		{"wrong direction", func(t *testing.T, c *ipc.Conn, lfd int) {
			c.Send(&ipc.Message{Kind: ipc.KindHello}, -1)
		}, "executor: protocol violation: hello sent in the wrong direction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lfd, _ := tcpListener(t)
			c, done := bare(t)
			tt.script(t, c, lfd)
			want := tt.wantErr
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, lfd)
			}
			if err := result(t, done); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Run: %v, want an error with %q", err, want)
			}
		})
	}
}

// Postfix mode, process limit (maxproc) 1: the process stays available
// to master(8) all its life, at its limit too, so that master(8) starts
// no second process of the service: nothing is sent at start (a new
// process counts as available) nor while it serves. When it has served
// and its commands have ended (here at a stop), TAKEN then AVAIL with
// the executor's pid and the generation, one use for master(8)'s count.
func TestPostfixStatus(t *testing.T) {
	lfd, addr := tcpListener(t)
	stop := make(chan struct{})
	f := start(t, setup{stop: stop, postfix: &Postfix{Pid: 4242, Generation: 0o17},
		services: []svcSpec{{name: "policy", command: "/bin/p", limit: 1, fds: []int{lfd}}}})
	f.noStatusRecord()
	for i := range 2 {
		c := dial(t, "tcp", addr, strconv.Itoa(i))
		m := f.run()
		f.noStatusRecord()
		f.serve(m.Seq)
		f.finish(m.Seq, ipc.Message{Pid: 9})
		c.served()
	}
	close(stop)
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int32{0, 1} {
		if pid, gen, avail := f.statusRecord(); pid != 4242 || gen != 15 || avail != want {
			t.Fatalf("at exit: pid %d gen %d status %d, want 4242 15 %d", pid, gen, avail, want)
		}
	}
	f.noStatusRecord()
}

// A bounded process that reaches max_use serves on until nothing is in
// flight, rather than stop accepting and keep master(8) from starting
// another process while its slowest command runs; still within its limit.
func TestMaxUseBounded(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{postfix: &Postfix{Pid: 1, Generation: 1, MaxUse: 2},
		services: []svcSpec{{name: "policy", command: "/bin/p", limit: 2, fds: []int{lfd}}}})
	for i := range 3 {
		dial(t, "tcp", addr, strconv.Itoa(i))
	}
	a, b := f.run(), f.run()
	f.finish(a.Seq, ipc.Message{Pid: 2})
	c := f.run() // the third, after max_use, while b runs
	f.finish(b.Seq, ipc.Message{Pid: 3})
	f.finish(c.Seq, ipc.Message{Pid: 4})
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int32{0, 1} {
		if _, _, avail := f.statusRecord(); avail != want {
			t.Fatalf("at exit: status %d, want %d", avail, want)
		}
	}
}

// Postfix mode with a limit of 0: the cap is the process's limit.
func TestPostfixStatusCap(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{cap: 2, postfix: &Postfix{Pid: 1, Generation: 2},
		services: []svcSpec{{name: "policy", command: "/bin/p", fds: []int{lfd}}}})
	dial(t, "tcp", addr, "1")
	a := f.run()
	dial(t, "tcp", addr, "2")
	b := f.run()
	if _, _, avail := f.statusRecord(); avail != 0 {
		t.Fatalf("at the cap: status %d, want 0 (TAKEN)", avail)
	}
	f.finish(a.Seq, ipc.Message{Pid: 3})
	if _, _, avail := f.statusRecord(); avail != 1 {
		t.Fatalf("below the cap: status %d, want 1 (AVAIL)", avail)
	}
	f.finish(b.Seq, ipc.Message{Pid: 4})
}

// Master(8) goes away (its end of the status channel closes) while a
// command runs: the listener accepts nothing more, waits for the result,
// logs it and returns nil; the waiting connection stays in the backlog.
func TestMasterGone(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{postfix: &Postfix{Pid: 1, Generation: 1},
		services: []svcSpec{{name: "policy", command: "/bin/p", limit: 1, fds: []int{lfd}}}})
	dial(t, "tcp", addr, "1")
	m := f.run()
	dial(t, "tcp", addr, "2")
	unix.Close(f.status)
	f.status = -1
	f.finish(m.Seq, ipc.Message{Pid: 5, Code: 4})
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	inBacklog(t, lfd)
	if got := f.logLines(); len(got) != 1 || got[0] != "warning: command /bin/p exit status 4" {
		t.Errorf("log %q", got)
	}
}

// Master(8) goes away while nothing runs: Run returns at once.
func TestMasterGoneIdle(t *testing.T) {
	lfd, _ := tcpListener(t)
	f := start(t, setup{postfix: &Postfix{Pid: 1, Generation: 1},
		services: []svcSpec{{name: "policy", command: "/bin/p", limit: 1, fds: []int{lfd}}}})
	unix.Shutdown(f.status, unix.SHUT_WR) // EOF for the listener, as when master closes
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
}

// After max_use connections a process with maxproc 0 reports TAKEN (so
// that master(8) starts another process), accepts no more, and returns
// once the results are in, reporting AVAIL (a use, for master(8)'s
// count); the third connection stays in the backlog for the next process.
func TestMaxUse(t *testing.T) {
	lfd, addr := tcpListener(t)
	f := start(t, setup{postfix: &Postfix{Pid: 1, Generation: 1, MaxUse: 2},
		services: []svcSpec{{name: "policy", command: "/bin/p", fds: []int{lfd}}}})
	c1 := dial(t, "tcp", addr, "1")
	c2 := dial(t, "tcp", addr, "2")
	dial(t, "tcp", addr, "3")
	a, b := f.run(), f.run()
	if _, _, avail := f.statusRecord(); avail != 0 {
		t.Fatalf("after max_use: status %d, want 0 (TAKEN)", avail)
	}
	f.serve(a.Seq)
	f.serve(b.Seq)
	f.finish(a.Seq, ipc.Message{Pid: 2})
	f.finish(b.Seq, ipc.Message{Pid: 3})
	c1.served()
	c2.served()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	inBacklog(t, lfd)
	if _, _, avail := f.statusRecord(); avail != 1 {
		t.Fatalf("at exit: status %d, want 1 (AVAIL)", avail)
	}
	f.noStatusRecord()
}

// max_idle counts only while nothing is in flight: a command of an earlier
// listener keeps the listener up however long it runs; once its result is
// in, max_idle later, Run returns.
func TestMaxIdle(t *testing.T) {
	lfd, _ := tcpListener(t)
	f := start(t, setup{verbose: true, postfix: &Postfix{Pid: 1, Generation: 1, MaxIdle: 50 * time.Millisecond},
		services: []svcSpec{{name: "policy", command: "/bin/p", running: 1, fds: []int{lfd}}}})
	if f.returned(300 * time.Millisecond) {
		t.Fatal("Run returned with a command in flight")
	}
	f.finish(0, ipc.Message{Pid: 5})
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	got := f.logLines()
	if len(got) != 2 || got[1] != "idle timeout -- exiting" {
		t.Errorf("log %q, want the result and the idle timeout", got)
	}
}

// max_idle with nothing ever in flight.
func TestMaxIdleFromStart(t *testing.T) {
	lfd, _ := tcpListener(t)
	f := start(t, setup{postfix: &Postfix{Pid: 1, Generation: 1, MaxIdle: time.Millisecond},
		services: []svcSpec{{name: "policy", command: "/bin/p", fds: []int{lfd}}}})
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
}

// A stop (SIGTERM in the binary) in Postfix mode: nothing more accepted,
// the result of the command in flight logged, then TAKEN and AVAIL (a
// bounded process says TAKEN only once nothing runs) and nil.
func TestStopPostfix(t *testing.T) {
	lfd, addr := tcpListener(t)
	stop := make(chan struct{})
	f := start(t, setup{stop: stop, verbose: true, postfix: &Postfix{Pid: 1, Generation: 1},
		services: []svcSpec{{name: "policy", command: "/bin/p", limit: 2, fds: []int{lfd}}}})
	c := dial(t, "tcp", addr, "1")
	m := f.run()
	close(stop)
	// A bounded process sends nothing at a stop: -v's line says when the
	// listener has taken it.
	for deadline := time.Now().Add(hang); !slices.Contains(f.logLines(), "stop signal -- exiting"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no stop within %v: log %q", hang, f.logLines())
		}
	}
	dial(t, "tcp", addr, "2")
	f.serve(m.Seq)
	f.noStatusRecord()
	f.finish(m.Seq, ipc.Message{Pid: 5, Signal: 15})
	c.served()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int32{0, 1} {
		if _, _, avail := f.statusRecord(); avail != want {
			t.Fatalf("at exit: status %d, want %d", avail, want)
		}
	}
	inBacklog(t, lfd)
	if got := f.logLines(); !slices.Contains(got, "warning: command /bin/p killed by signal 15") {
		t.Errorf("log %q", got)
	}
}

// A stop in standalone mode waits for the commands in flight.
func TestStopStandalone(t *testing.T) {
	lfd, addr := tcpListener(t)
	stop := make(chan struct{})
	f := start(t, setup{stop: stop, services: []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}}})
	c := dial(t, "tcp", addr, "1")
	m := f.run()
	close(stop)
	if f.returned(100 * time.Millisecond) {
		t.Fatal("Run returned with a command in flight")
	}
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Pid: 5, Code: 1})
	c.served()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	if got := f.logLines(); len(got) != 1 || got[0] != "warning: command /bin/s exit status 1" {
		t.Errorf("log %q", got)
	}
}

// A leave (SIGUSR1 in the binary, spawnd's reload): nothing more
// accepted, the pair half-closed at once with commands in flight, the
// result the executor sends before its end of file logged, the other
// left to the executor.
func TestLeave(t *testing.T) {
	lfd, addr := tcpListener(t)
	leave := make(chan struct{})
	f := start(t, setup{leave: leave, services: []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}}})
	c := dial(t, "tcp", addr, "1")
	m := f.run()
	dial(t, "tcp", addr, "2")
	f.run()
	close(leave)
	if _, _, err := f.conn.Receive(ipc.FromListener); err != io.EOF {
		t.Fatalf("after leave: %v, want end of file", err)
	}
	dial(t, "tcp", addr, "3")
	f.serve(m.Seq)
	f.finish(m.Seq, ipc.Message{Pid: 5, Code: 1})
	c.served()
	if f.returned(100 * time.Millisecond) {
		t.Fatal("Run returned before the executor's end of file")
	}
	f.conn.Shutdown()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
	inBacklog(t, lfd)
	if got := f.logLines(); len(got) != 1 || got[0] != "warning: command /bin/s exit status 1" {
		t.Errorf("log %q", got)
	}
}

// Many connections through two services at once, sixteen clients at a
// time, with results answered by a concurrent fake: every client is
// served, the limits hold throughout.
func TestLoad(t *testing.T) {
	tfd, taddr := tcpListener(t)
	ufd, upath := unixListener(t)
	f := start(t, setup{cap: 8, services: []svcSpec{
		{name: "t", command: "/bin/t", limit: 3, fds: []int{tfd}},
		{name: "u", command: "/bin/u", limit: 0, fds: []int{ufd}},
	}})
	const n, workers = 400, 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				network, addr := "tcp", taddr
				if i%2 == 1 {
					network, addr = "unix", upath
				}
				c, err := net.DialTimeout(network, addr, hang)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(4 * hang))
				fmt.Fprintf(c, "c%d\n", i)
				b, err := io.ReadAll(c)
				c.Close()
				if err != nil || string(b) != fmt.Sprintf("served c%d\n", i) {
					errs <- fmt.Errorf("client %d: %q, %v", i, b, err)
					return
				}
			}
		}()
	}
	// The fake: each Run is served in a goroutine, on a copy of the
	// descriptor; its result is sent from here, like every Run received.
	results := make(chan uint64, n)
	deadline := time.Now().Add(6 * hang)
	for done := 0; done < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d served", done, n)
		}
		for drained := false; !drained; {
			select {
			case seq := <-results:
				f.finish(seq, ipc.Message{Pid: 1})
				done++
			default:
				drained = true
			}
		}
		if !f.ready(10 * time.Millisecond) {
			continue
		}
		m := f.run()
		go func(seq uint64, fd int) {
			defer unix.Close(fd)
			if err := echo(fd); err != nil {
				errs <- err
			}
			results <- seq
		}(m.Seq, dupFd(f.fds[m.Seq]))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.maxTotal > 8 {
		t.Errorf("%d in flight, cap 8", f.maxTotal)
	}
}

// dupFd returns a copy of fd that the caller owns.
func dupFd(fd int) int {
	nfd, _ := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	return nfd
}

// A descriptor that comes with a message from the executor is a protocol
// error, and the listener closes it: here the write end of a pipe, whose
// read end sees end of file only once every copy is closed.
func TestExecutorDescriptorClosed(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	c, done := bare(t)
	err := c.Send(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1}, p[1])
	unix.Close(p[1])
	if err != nil {
		t.Fatal(err)
	}
	if err, want := result(t, done), "welcome with 1 descriptors, want 0"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v, want an error with %q", err, want)
	}
	if n, err := unix.Read(p[0], make([]byte, 1)); n != 0 || err != nil {
		t.Errorf("read of the pipe: %d, %v; want end of file (the listener kept the descriptor)", n, err)
	}
}

// With one P, the listener's waits on the pair (the handshake's receive,
// a send to a full pair) must let other goroutines run, here the fake
// executor of the same process: a raw blocking call would hold the P and
// hang the process.
func TestOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	lfd, addr := tcpListener(t)
	f := start(t, setup{services: []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}}})
	for i := range 3 {
		dial(t, "tcp", addr, strconv.Itoa(i))
		f.run()
	}
	f.conn.Shutdown()
	if err := f.wait(); err != nil {
		t.Fatal(err)
	}
}
