package listener

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

// The tests below build spawnd-listener and run it as the executor does:
// fd 3 the pair, fd 4 the log, fd 5 the status channel with -p, the
// listening sockets after them.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// buildBinary returns the path of a freshly built spawnd-listener.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "spawnd-listener-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "spawnd-listener")
		out, err := exec.Command(goTool, "build", "-o", binPath, "spawnd/cmd/spawnd-listener").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running spawnd-listener.
type proc struct {
	*fake
	cmd    *exec.Cmd
	exited chan error
}

// startBinary runs spawnd-listener with args against a fake executor
// announcing services (one socket each) and the settings in Welcome, with
// master(8)'s status channel when they say Postfix mode.
func startBinary(t *testing.T, args []string, settings ipc.Message, cap uint32, services []svcSpec) *proc {
	t.Helper()
	bin := buildBinary(t)
	f, li, logFd := newFake(t, cap)
	f.settings = settings
	postfix := settings.Postfix
	// The child's descriptors, as copies: an *os.File owns its descriptor.
	fds := []int{li, logFd}
	if postfix {
		fds = append(fds, f.statusPair())
	}
	var first []int
	for _, svc := range services {
		first = append(first, len(fds)+3)
		fds = append(fds, svc.fds...)
	}
	var files []*os.File
	for _, fd := range fds {
		files = append(files, os.NewFile(uintptr(dupFd(fd)), "inherited"))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{}
	cmd.ExtraFiles = files
	err := cmd.Start()
	for _, file := range files {
		file.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{fake: f, cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	if services != nil {
		f.welcome(services, first)
	}
	return p
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		p.t.Fatal(err)
	case <-time.After(hang):
		p.t.Fatal("spawnd-listener did not exit")
	}
	return -1
}

// waitLog waits until the log has a line containing s.
func (p *proc) waitLog(s string) {
	p.t.Helper()
	for end := time.Now().Add(hang); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(p.logPath)
		if strings.Contains(string(b), s) {
			return
		}
	}
	b, _ := os.ReadFile(p.logPath)
	p.t.Fatalf("log has no %q:\n%s", s, b)
}

// fdFlags returns the flags of each descriptor of pid, from
// /proc/PID/fdinfo.
func fdFlags(t *testing.T, pid int) map[int]int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[int]int{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		if err != nil {
			continue // closed meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				flags[fd] = int(n)
			}
		}
	}
	return flags
}

// The binary serves, marks its inherited descriptors close-on-exec, logs
// -v lines, and on SIGTERM stops accepting, logs the result of the
// command in flight and exits 0.
func TestBinarySIGTERM(t *testing.T) {
	lfd, addr := tcpListener(t)
	p := startBinary(t, nil, ipc.Message{Verbose: true, Ident: "postfix/spawnd", Facility: 2}, 0,
		[]svcSpec{{name: "s", command: "/bin/s", limit: 4, fds: []int{lfd}}})
	c := dial(t, "tcp", addr, "1")
	m := p.run()
	p.serve(m.Seq)
	p.finish(m.Seq, ipc.Message{Pid: 7})
	c.served()
	c = dial(t, "tcp", addr, "2")
	m = p.run()
	flags := fdFlags(t, p.cmd.Process.Pid)
	for _, fd := range []int{3, 4, 5} {
		if f, ok := flags[fd]; !ok || f&unix.O_CLOEXEC == 0 {
			t.Errorf("fd %d: flags %#o, want O_CLOEXEC", fd, f)
		}
	}
	if flags[5]&unix.O_NONBLOCK == 0 {
		t.Errorf("listening fd 5: flags %#o, want O_NONBLOCK", flags[5])
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.serve(m.Seq)
	p.finish(m.Seq, ipc.Message{Pid: 8, Code: 3})
	c.served()
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	got := strings.Join(p.logLines(), "\n")
	for _, want := range []string{"service=s peer=127.0.0.1:", "pid=7 status=exit 0", "warning: command /bin/s exit status 3", "pid=8 status=exit 3"} {
		if !strings.Contains(got, want) {
			t.Errorf("log has no %q:\n%s", want, got)
		}
	}
}

// When the executor goes away the binary exits 0 and logs nothing.
func TestBinaryExecutorGone(t *testing.T) {
	lfd, addr := tcpListener(t)
	p := startBinary(t, nil, ipc.Message{}, 0, []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}})
	dial(t, "tcp", addr, "1")
	p.run()
	p.conn.Shutdown()
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	if got := p.logLines(); len(got) != 0 {
		t.Errorf("log %q, want nothing", got)
	}
}

// Postfix mode through Welcome: the pid and generation reach the status
// records; after max_use connections the binary reports TAKEN, waits for
// the result and exits 0.
func TestBinaryPostfix(t *testing.T) {
	lfd, addr := tcpListener(t)
	p := startBinary(t, nil, ipc.Message{Postfix: true, Pid: 4242, Generation: 15, MaxUse: 1, MaxIdle: 100}, 0,
		[]svcSpec{{name: "policy", command: "/bin/p", fds: []int{lfd}}})
	c := dial(t, "tcp", addr, "1")
	m := p.run()
	if pid, gen, avail := p.statusRecord(); pid != 4242 || gen != 15 || avail != 0 {
		t.Fatalf("status pid %d gen %d status %d, want 4242 15 0", pid, gen, avail)
	}
	if flags := fdFlags(t, p.cmd.Process.Pid); flags[5]&unix.O_CLOEXEC == 0 || flags[6]&unix.O_CLOEXEC == 0 {
		t.Errorf("status fd 5 flags %#o, listening fd 6 flags %#o: want O_CLOEXEC", flags[5], flags[6])
	}
	p.serve(m.Seq)
	p.finish(m.Seq, ipc.Message{Pid: 9})
	c.served()
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
}

// An argument is fatal, logged on fd 4, with status 1: the settings come
// in Welcome.
func TestBinaryUsage(t *testing.T) {
	p := startBinary(t, []string{"-v"}, ipc.Message{}, 0, nil)
	if code := p.wait(); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	if got := p.logLines(); len(got) != 1 || !strings.HasPrefix(got[0], "fatal: usage: spawnd-listener ") {
		t.Errorf("log %q, want a fatal usage line", got)
	}
}

// Out of descriptors, accept fails with EMFILE: the listener does not
// spin on it, warns once (not again within 10 seconds), leaves the
// connections in the backlog, and serves them once descriptors are back.
func TestBinaryEMFILE(t *testing.T) {
	lfd, addr := tcpListener(t)
	p := startBinary(t, nil, ipc.Message{}, 0, []svcSpec{{name: "s", command: "/bin/s", fds: []int{lfd}}})
	// Wait for the listener to be serving: one connection goes through.
	c := dial(t, "tcp", addr, "0")
	m := p.run()
	p.serve(m.Seq)
	p.finish(m.Seq, ipc.Message{Pid: 1})
	c.served()
	// Lower its descriptor limit to its lowest free descriptor.
	pid := p.cmd.Process.Pid
	flags := fdFlags(t, pid)
	free := 0
	for ; ; free++ {
		if _, ok := flags[free]; !ok {
			break
		}
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(free), Max: old.Max}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	var clients []*client
	for i := 1; i <= 3; i++ {
		clients = append(clients, dial(t, "tcp", addr, strconv.Itoa(i)))
	}
	p.waitLog("warning: accept: too many open files")
	time.Sleep(500 * time.Millisecond) // several pauses of 100ms
	if got := p.logLines(); len(got) != 1 {
		t.Fatalf("log %q, want one warning", got)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	for range clients {
		m := p.run()
		p.serve(m.Seq)
		p.finish(m.Seq, ipc.Message{Pid: 1})
	}
	for _, c := range clients {
		c.served()
	}
}
