package executor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// testBin is a copy of the test binary that nobody may execute: the
// command for helper runs.
var testBin string

const nobody = 65534 // nobody and nogroup on Debian

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "helper-report" {
		report()
		os.Exit(0)
	}
	Setup()
	dir, err := os.MkdirTemp("", "executor-test")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		testBin = filepath.Join(dir, "executor.test")
		err = copyFile(os.Args[0], testBin)
	}
	if err == nil {
		err = mkListening(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		return err
	}
	return os.Chmod(to, 0o755)
}

// report is the helper command: it prints what it got, one "key value"
// line each.
func report() {
	pgid, _ := syscall.Getpgid(0)
	sid, _ := unix.Getsid(0)
	cwd, _ := os.Readlink("/proc/self/cwd")
	fmt.Printf("pid %d\npgid %d\nsid %d\ncwd %s\n", os.Getpid(), pgid, sid, cwd)
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	buf := make([]byte, 8192)
	n, _ := unix.ReadDirent(dir, buf)
	_, _, names := unix.ParseDirent(buf[:n], -1, nil)
	for _, name := range names {
		fd, _ := strconv.Atoi(name)
		// An fd that came through exec cannot be close-on-exec; the ones
		// that are were opened here, by the Go runtime (cgroup files).
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC == 0 {
			target, _ := os.Readlink("/proc/self/fd/" + name)
			fmt.Printf("fd %s %s\n", name, target)
		}
	}
	fl, _ := unix.FcntlInt(0, unix.F_GETFL, 0)
	fmt.Printf("nonblock %v\n", fl&unix.O_NONBLOCK != 0)
	for _, kv := range os.Environ() {
		fmt.Printf("env %s\n", kv)
	}
}

func needRoot(t testing.TB) {
	if os.Getuid() != 0 {
		t.Skip("requires root: commands run as nobody")
	}
}

// service returns a service that runs argv as nobody.
func service(argv ...string) *policy.Service {
	return &policy.Service{Name: "test", Argv: argv, User: "nobody", Group: "nogroup",
		Uid: nobody, Gid: nobody, Groups: []uint32{nobody}, TimeLimit: 60 * time.Second,
		Env: []string{"LANG=C", "PATH=/usr/bin:/bin"}, Dir: filepath.Dir(testBin)}
}

// fixture drives an executor the way the listener does, over a real pair.
type fixture struct {
	t      testing.TB
	e      *Executor
	l      *ipc.Conn // the listener's end
	lfd    int
	served chan error
	log    string
}

func newExecutor(t testing.TB, capacity int, svcs ...*policy.Service) (*Executor, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "maillog")
	fd, err := unix.Open(log, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	cfg := Config{Policy: &policy.Policy{Services: svcs}, Log: maillog.New(fd, maillog.File, "spawnd", 2), Status: -1}
	for range svcs {
		cfg.Sockets = append(cfg.Sockets, []int{lsnUnix, lsnTCP})
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Cap = capacity
	return e, log
}

// waitUntil waits for cond, failing the test after 30 seconds.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", what)
		}
	}
}

// serve starts Serve on a new pair; cleanup closes the listener's end and
// waits for Serve to return.
func serve(t testing.TB, e *Executor, log string) *fixture {
	t.Helper()
	mine, theirs, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, e, log, mine, theirs)
}

func serveOn(t testing.TB, e *Executor, log string, mine, theirs int) *fixture {
	t.Helper()
	// A result that never comes fails the test instead of hanging it.
	if err := unix.SetsockoptTimeval(theirs, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 30}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, e: e, l: ipc.NewConn(theirs), lfd: theirs, served: make(chan error, 1), log: log}
	conn := ipc.NewConn(mine)
	go func() { f.served <- e.Serve(conn) }()
	t.Cleanup(func() {
		f.l.Close()
		f.wait()
		conn.Close()
	})
	return f
}

func start(t testing.TB, capacity int, svcs ...*policy.Service) *fixture {
	e, log := newExecutor(t, capacity, svcs...)
	return serve(t, e, log)
}

// wait returns what Serve returned.
func (f *fixture) wait() error {
	select {
	case err := <-f.served:
		f.served <- err
		return err
	case <-time.After(30 * time.Second):
		f.t.Fatal("Serve did not return")
		return nil
	}
}

// hello sends Hello and returns the Service messages.
func (f *fixture) hello() []*ipc.Message {
	f.t.Helper()
	if err := f.l.Send(&ipc.Message{Kind: ipc.KindHello}, -1); err != nil {
		f.t.Fatal(err)
	}
	w := f.receive()
	if w.Kind != ipc.KindWelcome {
		f.t.Fatalf("got %+v, want welcome", w)
	}
	var svcs []*ipc.Message
	for range w.Services {
		m := f.receive()
		if m.Kind != ipc.KindService {
			f.t.Fatalf("got %+v, want service", m)
		}
		svcs = append(svcs, m)
	}
	return svcs
}

func (f *fixture) receive() *ipc.Message {
	f.t.Helper()
	m, fd, err := f.l.Receive(ipc.FromExecutor)
	if err != nil || fd != -1 {
		f.t.Fatalf("receive: %v (fd %d)", err, fd)
	}
	return m
}

func (f *fixture) run(seq uint64, svc uint32, fd int) {
	f.t.Helper()
	if err := f.l.Send(&ipc.Message{Kind: ipc.KindRun, Seq: seq, Service: svc}, fd); err != nil {
		f.t.Fatal(err)
	}
}

// The listening sockets every test service has, so that the executor's
// check that a passed socket was accepted on its service's (tie.go) holds
// for the clients unixClient and tcpClient make. mkListening opens them.
var (
	lsnUnix, lsnTCP = -1, -1
	lsnMu           sync.Mutex // one connect and accept at a time
)

// mkListening opens the test services' listening sockets: a unix one in
// dir and one on an ephemeral loopback port.
func mkListening(dir string) error {
	var err error
	if lsnUnix, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	if err = unix.Bind(lsnUnix, &unix.SockaddrUnix{Name: filepath.Join(dir, "service")}); err != nil {
		return err
	}
	if lsnTCP, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	if err = unix.Bind(lsnTCP, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	if err = unix.Listen(lsnUnix, 64); err == nil {
		err = unix.Listen(lsnTCP, 64)
	}
	return err
}

// accepted connects a client to the listening socket lsn and returns the
// accepted end (server, to pass) and the client end. Both close at
// cleanup; the server end may be closed earlier.
func accepted(t testing.TB, lsn int) (server, client int) {
	t.Helper()
	lsnMu.Lock()
	defer lsnMu.Unlock()
	sa, err := unix.Getsockname(lsn)
	if err == nil {
		client, err = unix.Socket(sockDomain(sa), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	}
	if err == nil {
		err = unix.Connect(client, sa)
	}
	if err == nil {
		server, _, err = unix.Accept4(lsn, unix.SOCK_CLOEXEC)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(server); unix.Close(client) })
	return server, client
}

func sockDomain(sa unix.Sockaddr) int {
	if _, ok := sa.(*unix.SockaddrUnix); ok {
		return unix.AF_UNIX
	}
	return unix.AF_INET
}

// unixClient returns an accepted unix stream connection (server) and its
// client end.
func unixClient(t testing.TB) (server, client int) { return accepted(t, lsnUnix) }

// tcpClient returns an accepted loopback connection (server) and its
// client end.
func tcpClient(t testing.TB) (server, client int) { return accepted(t, lsnTCP) }

// readAll reads the client end until end of file, for at most d.
func readAll(t testing.TB, fd int, d time.Duration) string {
	t.Helper()
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read client: %v (got %q)", err, out.String())
		}
		if n == 0 {
			return out.String()
		}
		out.Write(buf[:n])
	}
}

func openFds(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func inode(t testing.TB, fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("socket:[%d]", st.Ino)
}

// TestCloseOnExec checks invariant 2 on the test process after Setup.
func TestCloseOnExec(t *testing.T) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		fd, _ := strconv.Atoi(ent.Name())
		if fd < 3 {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d is not close-on-exec", fd)
		}
	}
}

// parseReport splits the helper's lines into single values and lists.
func parseReport(out string) (map[string]string, map[string][]string) {
	one, many := map[string]string{}, map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, " ")
		one[k] = v
		many[k] = append(many[k], v)
	}
	return one, many
}

func TestSpawn(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name   string
		client func(testing.TB) (int, int)
		peer   bool
	}{
		{"unix", unixClient, false},
		{"unix peer environment", unixClient, true},
		{"tcp", tcpClient, false},
		{"tcp peer environment", tcpClient, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service(testBin, "helper-report")
			svc.PeerEnvironment = tc.peer
			svc.Env = append(svc.Env, "PROTO=forged")
			f := start(t, 10, svc)
			f.hello()
			server, client := tc.client(t)
			if err := unix.SetNonblock(server, true); err != nil {
				t.Fatal(err)
			}
			sock := inode(t, server)
			f.run(7, 0, server)
			unix.Close(server)
			out := readAll(t, client, 30*time.Second)
			m := f.receive()
			if m.Kind != ipc.KindExited || m.Seq != 7 || m.Code != 0 || m.Signal != 0 || m.Timeout {
				t.Fatalf("result %+v, want exit 0 for seq 7 (output %q)", m, out)
			}
			one, many := parseReport(out)
			if one["pid"] != fmt.Sprint(m.Pid) || one["pgid"] != one["pid"] || one["sid"] != one["pid"] {
				t.Errorf("pid %s pgid %s sid %s, result pid %d: want pid = pgid = sid", one["pid"], one["pgid"], one["sid"], m.Pid)
			}
			if one["cwd"] != svc.Dir {
				t.Errorf("cwd %s, want %s", one["cwd"], svc.Dir)
			}
			if want := []string{"0 " + sock, "1 " + sock, "2 " + sock}; fmt.Sprint(many["fd"]) != fmt.Sprint(want) {
				t.Errorf("fds %q, want %q", many["fd"], want)
			}
			if one["nonblock"] != "false" {
				t.Error("fd 0 is non-blocking")
			}
			want := []string{"LANG=C", "PATH=/usr/bin:/bin", "PROTO=forged"}
			if tc.peer {
				want = want[:2]
				if tc.name == "tcp peer environment" {
					lport, rport := localPort(t, client), peerPort(t, client)
					want = append(want, "PROTO=TCP", "TCPREMOTEIP=127.0.0.1", "TCPREMOTEPORT="+lport,
						"TCPLOCALIP=127.0.0.1", "TCPLOCALPORT="+rport)
				} else {
					want = append(want, "PROTO=UNIX", "UNIXREMOTEUID=0", "UNIXREMOTEGID=0",
						fmt.Sprint("UNIXREMOTEPID=", os.Getpid()))
				}
			}
			if fmt.Sprint(many["env"]) != fmt.Sprint(want) {
				t.Errorf("environment %q, want %q", many["env"], want)
			}
		})
	}
}

func localPort(t testing.TB, fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}

func peerPort(t testing.TB, fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}

// TestCredentialsSignalsUmask reads the command's own /proc/self/status:
// cat is not a Go program, which would install its own signal handlers.
func TestCredentialsSignalsUmask(t *testing.T) {
	needRoot(t)
	f := start(t, 10, service("/bin/cat", "/proc/self/status"))
	f.hello()
	server, client := unixClient(t)
	f.run(1, 0, server)
	unix.Close(server)
	status := readAll(t, client, 30*time.Second)
	if m := f.receive(); m.Kind != ipc.KindExited || m.Code != 0 {
		t.Fatalf("result %+v, want exit 0", m)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.Join(strings.Fields(v), " ")
	}
	ign := uint64(1)<<(unix.SIGPIPE-1) | uint64(1)<<(unix.SIGXFSZ-1)
	for k, want := range map[string]string{
		"Uid":    "65534 65534 65534 65534",
		"Gid":    "65534 65534 65534 65534",
		"Groups": "65534",
		"Umask":  "0077",
		"SigIgn": fmt.Sprintf("%016x", ign),
		"SigBlk": "0000000000000000",
		"SigCgt": "0000000000000000",
	} {
		if fields[k] != want {
			t.Errorf("%s: %q, want %q", k, fields[k], want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	needRoot(t)
	noexec := filepath.Join(filepath.Dir(testBin), "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(noexec)
	svcs := []*policy.Service{
		service("/bin/sh", "-c", "exit 3"),
		service("/bin/sh", "-c", "kill -TERM $$"),
		service("/nonexistent/command"),
		service(noexec),
	}
	f := start(t, 10, svcs...)
	f.hello()
	for i, want := range []ipc.Message{
		{Kind: ipc.KindExited, Code: 3},
		{Kind: ipc.KindExited, Signal: 15},
		{Kind: ipc.KindRefused, Reason: "execvp /nonexistent/command: no such file or directory"},
		{Kind: ipc.KindRefused, Reason: "execvp " + noexec + ": permission denied"},
	} {
		server, client := unixClient(t)
		f.run(uint64(i+1), uint32(i), server)
		unix.Close(server)
		readAll(t, client, 30*time.Second) // the executor closed its copy
		m := f.receive()
		want.Seq, want.Service, want.Version, want.Pid, want.Micros = uint64(i+1), uint32(i), ipc.Version, m.Pid, m.Micros
		if *m != want {
			t.Errorf("%v: got %+v, want %+v", svcs[i].Argv, m, want)
		}
	}
}

// groupAlive reports whether a live process is in process group pgid.
func groupAlive(pgid int) bool {
	for _, st := range procStats() {
		if st.pgrp == pgid && st.state != "Z" {
			return true
		}
	}
	return false
}

type procStat struct {
	pid, ppid, pgrp int
	state           string
	cmdline         string
}

func procStats() []procStat {
	ents, _ := os.ReadDir("/proc")
	var out []procStat
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		cmd, _ := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		out = append(out, procStat{pid, ppid, pgrp, f[0], string(cmd)})
	}
	return out
}

// TestTimeLimit: at the time limit the client sees end of file, the
// result says so, and the command's process group is gone (also without
// cgroups: the group kill). With cgroups a grandchild that left the group
// (setsid) is gone too; without, it escapes (SECURITY.md, not protected).
func TestTimeLimit(t *testing.T) {
	needRoot(t)
	// The escaped grandchild's argv is unique, to find it again.
	escaped := fmt.Sprintf("59.%d", os.Getpid())
	for _, cgroups := range []bool{true, false} {
		for _, script := range []string{
			"sleep 60 & sleep 60",
			"setsid sleep " + escaped + " & sleep 60",
		} {
			t.Run(fmt.Sprintf("cgroups %v: %s", cgroups, script), func(t *testing.T) {
				var found []procStat
				t.Cleanup(func() {
					for _, st := range found {
						unix.Kill(st.pid, unix.SIGKILL)
					}
				})
				svc := service("/bin/sh", "-c", script)
				svc.TimeLimit = time.Second
				e, log := newExecutor(t, 10, svc)
				if !cgroups {
					e.cg = nil
				} else if e.cg == nil {
					t.Skip("no cgroup v2 here: only the subtests without cgroups apply")
				}
				f := serve(t, e, log)
				// The result is due at the limit: wait 20 seconds at most.
				unix.SetsockoptTimeval(f.lfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 20})
				f.hello()
				server, client := unixClient(t)
				began := time.Now()
				f.run(1, 0, server)
				unix.Close(server)
				// Before the limit: the grandchild really left the group.
				if strings.Contains(script, "setsid") {
					for deadline := time.Now().Add(svc.TimeLimit); len(found) == 0; time.Sleep(10 * time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatal("the setsid grandchild did not appear before the time limit")
						}
						for _, st := range procStats() {
							if st.cmdline == "sleep\x00"+escaped+"\x00" && st.state != "Z" && st.pgrp == st.pid {
								found = append(found, st)
							}
						}
					}
				}
				readAll(t, client, 30*time.Second)
				if took := time.Since(began); took > svc.TimeLimit+5*time.Second {
					t.Errorf("client saw end of file after %v, limit %v", took, svc.TimeLimit)
				}
				m := f.receive()
				if m.Kind != ipc.KindExited || !m.Timeout || m.Signal != 9 {
					t.Errorf("result %+v, want timeout and signal 9", m)
				}
				for deadline := time.Now().Add(10 * time.Second); groupAlive(int(m.Pid)); {
					if time.Now().After(deadline) {
						t.Fatalf("process group %d still alive after the time limit", m.Pid)
					}
					time.Sleep(10 * time.Millisecond)
				}
				// After the limit: with cgroups nothing is left, the escaped
				// grandchild included (a zombie at most, until init reaps
				// it); without, the grandchild is still running.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					var alive []procStat
					for _, st := range procStats() {
						if st.cmdline == "sleep\x00"+escaped+"\x00" && st.state != "Z" {
							alive = append(alive, st)
						}
					}
					if !cgroups {
						if len(alive) != len(found) {
							t.Errorf("without cgroups: %d escaped descendants running, want %d (those that left the group)", len(alive), len(found))
						}
						break
					}
					if len(alive) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("escaped descendants still running after the time limit: %+v", alive)
					}
				}
			})
		}
	}
}

// TestTimeLimitRemovesCgroup: a command killed at its time limit leaves
// no cgroup behind, even when it is reaped before everything the kill
// reached has left its cgroup (many descendants make that likely).
func TestTimeLimitRemovesCgroup(t *testing.T) {
	needRoot(t)
	svc := service("/bin/sh", "-c", "for i in $(seq 200); do sleep 60 & done; wait")
	svc.TimeLimit = time.Second
	e, log := newExecutor(t, 10, svc)
	if e.cg == nil {
		t.Skip("no cgroup v2 here")
	}
	dir := e.cg.dir
	f := serve(t, e, log)
	unix.SetsockoptTimeval(f.lfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 20})
	f.hello()
	server, client := unixClient(t)
	// Other tests' executors in this process share dir: their pooled
	// cgroups stay there.
	ents, _ := os.ReadDir(dir)
	before := map[string]bool{}
	for _, d := range ents {
		before[d.Name()] = true
	}
	f.run(1, 0, server)
	unix.Close(server)
	readAll(t, client, 30*time.Second)
	if m := f.receive(); !m.Timeout {
		t.Fatalf("result %+v, want the time limit", m)
	}
	var left []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ents, _ := os.ReadDir(dir)
		left = slices.DeleteFunc(ents, func(d os.DirEntry) bool { return !d.IsDir() || before[d.Name()] })
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("the killed command's cgroup is still there 5s after its result: %v", left)
	}
}

// TestHostileListener sends what no honest listener would. Each row must
// end Serve with a violation, log its warning, leave the fd table as it
// was and run nothing.
func TestHostileListener(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	file, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	lsn, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lsn)
	if err := unix.Bind(lsn, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lsn, 1); err != nil {
		t.Fatal(err)
	}
	dsock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dsock)
	sock, _ := unixClient(t)
	ten := []int{sock, sock, sock, sock, sock, sock, sock, sock, sock, sock}
	enc := func(m *ipc.Message) []byte {
		b, err := ipc.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello := enc(&ipc.Message{Kind: ipc.KindHello})
	run := enc(&ipc.Message{Kind: ipc.KindRun, Seq: 1})
	// q = 2^63: a request id past the int64 the protocol allows.
	huge := []byte{0x83, 0xa1, 'v', 0x01, 0xa1, 'k', 0x02, 0xa1, 'q', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}
	type dgram struct {
		b   []byte
		fds []int
	}
	rows := []struct {
		name  string
		send  []dgram
		want  string
		flood bool
	}{
		{"garbage", []dgram{{[]byte("\xc1garbage"), []int{sock}}}, "message is not a msgpack map", false},
		{"oversized", []dgram{{make([]byte, 4*ipc.MaxMessage), []int{sock}}}, "message over 8192 bytes", false},
		{"truncated", []dgram{{hello, nil}, {run[:len(run)-1], []int{sock}}}, `undecodable message: key "q": unexpected EOF`, false},
		{"no fd", []dgram{{hello, nil}, {run, nil}}, "run request with 0 descriptors, want 1", false},
		{"two fds", []dgram{{hello, nil}, {run, []int{sock, sock}}}, "run request with 2 descriptors, want 1", false},
		{"ten fds", []dgram{{hello, nil}, {run, ten}}, "descriptors truncated (MSG_CTRUNC)", false},
		{"pipe", []dgram{{hello, nil}, {run, []int{int(pr.Fd())}}}, "passed descriptor is not a socket (mode 010000)", false},
		{"regular file", []dgram{{hello, nil}, {run, []int{int(file.Fd())}}}, "passed descriptor is not a socket (mode 0100000)", false},
		{"listening socket", []dgram{{hello, nil}, {run, []int{lsn}}}, "passed socket is a listening socket", false},
		{"datagram socket", []dgram{{hello, nil}, {run, []int{dsock}}}, "passed socket is not a stream socket (type 2)", false},
		{"unknown service", []dgram{{hello, nil}, {enc(&ipc.Message{Kind: ipc.KindRun, Seq: 1, Service: 1}), []int{sock}}}, "run request for service 1, have 1", false},
		{"run before hello", []dgram{{run, []int{sock}}}, "run request while starting", false},
		{"hello twice", []dgram{{hello, nil}, {hello, nil}}, "hello while serving", false},
		{"reply kind", []dgram{{hello, nil}, {enc(&ipc.Message{Kind: ipc.KindExited, Seq: 1}), nil}}, "exited sent in the wrong direction", false},
		{"huge request id", []dgram{{hello, nil}, {huge, []int{sock}}}, `undecodable message: key "q": value 9223372036854775808 out of range`, false},
		{"flood past the cap", nil, "run request past the hard cap of 2 running commands", true},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var clients []int
			if row.flood {
				needRoot(t)
				row.send = []dgram{{hello, nil}}
				for range 3 {
					server, client := unixClient(t)
					row.send = append(row.send, dgram{run, []int{server}})
					clients = append(clients, client)
				}
			}
			e, log := newExecutor(t, 2, service("/bin/cat"))
			before := openFds(t)
			f := serve(t, e, log)
			for _, d := range row.send {
				var oob []byte
				if len(d.fds) > 0 {
					oob = unix.UnixRights(d.fds...)
				}
				if err := unix.Sendmsg(f.lfd, d.b, oob, nil, 0); err != nil {
					t.Fatal(err)
				}
			}
			err := f.wait()
			if !errors.As(err, new(*ipc.Violation)) {
				t.Fatalf("Serve returned %v, want a violation", err)
			}
			want := "warning: listener protocol violation: " + row.want + "; stopping listener\n"
			if b, _ := os.ReadFile(f.log); !bytes.HasSuffix(b, []byte(want)) || bytes.Count(b, []byte("\n")) != 1 {
				t.Errorf("log %q, want one line ending %q", b, want)
			}
			running := 0
			if row.flood {
				running = 2
			}
			if n := e.Running(); n != running {
				t.Errorf("%d commands running, want %d", n, running)
			}
			for _, c := range clients {
				unix.Shutdown(c, unix.SHUT_WR) // cat sees end of file
			}
			e.Drain()
			f.l.Close()
			if after := openFds(t); after != before+1 {
				t.Errorf("%d fds before, %d after (1 for the executor's end): fds leaked", before, after)
			}
		})
	}
}

// TestAccessViolation: a Run whose client the service's client_access
// refuses is a violation (the client is read from the socket, here
// SO_PEERCRED of a socket pair: this process's uid), its descriptor is
// closed and nothing runs; one the list admits runs.
func TestAccessViolation(t *testing.T) {
	needRoot(t)
	for _, c := range []struct{ list, want string }{
		{"!uid:" + strconv.Itoa(os.Getuid()) + " uid:1", "client uid 0 gid 0 refused by client_access !uid:0"},
		{"127.0.0.1", "client uid 0 gid 0 refused by client_access (no pattern matches)"},
		{"uid:" + strconv.Itoa(os.Getuid()), ""},
	} {
		svc := service("/bin/true")
		var err error
		if svc.Access, err = policy.ParseAccess(c.list); err != nil {
			t.Fatal(err)
		}
		e, log := newExecutor(t, 2, svc)
		sock, _ := unixClient(t)
		before := openFds(t)
		f := serve(t, e, log)
		if svcs := f.hello(); svcs[0].Access != svc.Access.String() {
			t.Errorf("Service message with access %q, want %q", svcs[0].Access, svc.Access.String())
		}
		f.run(1, 0, sock)
		if c.want == "" {
			if r := f.receive(); r.Kind != ipc.KindExited || r.Code != 0 {
				t.Errorf("%s: %+v, want the command run", c.list, r)
			}
			f.l.Shutdown()
			f.wait()
			f.l.Close()
			continue
		}
		if err := f.wait(); !errors.As(err, new(*ipc.Violation)) {
			t.Fatalf("%s: Serve returned %v, want a violation", c.list, err)
		}
		want := "warning: listener protocol violation: run request for service test: " + c.want + "; stopping listener\n"
		if b, _ := os.ReadFile(f.log); !bytes.HasSuffix(b, []byte(want)) {
			t.Errorf("%s: log %q, want %q", c.list, b, want)
		}
		if n := e.Running(); n != 0 {
			t.Errorf("%d commands running", n)
		}
		f.l.Close()
		if after := openFds(t); after != before+1 {
			t.Errorf("%d fds before, %d after (1 for the executor's end): fds leaked", before, after)
		}
	}
}

// TestResultsKept: a command that outlives its listener reports to the
// next one with Seq 0, whether it ends before that one says Hello (kept)
// or after (delivered at once); Service.Running counts both.
func TestResultsKept(t *testing.T) {
	needRoot(t)
	e, log := newExecutor(t, 10, service("/bin/cat"))
	first := serve(t, e, log)
	first.hello()
	var clients []int
	for i := range 2 {
		server, client := unixClient(t)
		first.run(uint64(i+1), 0, server)
		unix.Close(server)
		clients = append(clients, client)
	}
	waitUntil(t, "2 running", func() bool { return e.Running() == 2 })
	first.l.Close()
	if err := first.wait(); err != nil {
		t.Fatalf("Serve: %v, want nil at end of file", err)
	}
	unix.Close(clients[0])
	// Nothing reaps between sessions: the next one's loop does.
	second := serve(t, e, log)
	if svcs := second.hello(); svcs[0].Running != 2 {
		t.Errorf("Service %+v, want Running 2", svcs[0])
	}
	if m := second.receive(); m.Kind != ipc.KindExited || m.Seq != 0 {
		t.Errorf("kept result %+v, want Exited with Seq 0", m)
	}
	unix.Close(clients[1])
	if m := second.receive(); m.Kind != ipc.KindExited || m.Seq != 0 {
		t.Errorf("late result %+v, want Exited with Seq 0", m)
	}
}

// TestNoZombies runs many short commands at once and in turn, and looks
// for unreaped children.
func TestNoZombies(t *testing.T) {
	needRoot(t)
	f := start(t, 100, service("/bin/true"), service("/bin/sh", "-c", "sleep 0.1"))
	f.hello()
	const n = 60
	for i := range n {
		server, _ := unixClient(t)
		f.run(uint64(i+1), uint32(i%2), server)
		unix.Close(server)
	}
	seen := map[uint64]bool{}
	for range n {
		m := f.receive()
		if m.Kind != ipc.KindExited || m.Code != 0 || seen[m.Seq] {
			t.Fatalf("result %+v", m)
		}
		seen[m.Seq] = true
	}
	for _, st := range procStats() {
		if st.ppid == os.Getpid() && st.state == "Z" {
			t.Errorf("zombie child %d", st.pid)
		}
	}
	if n := f.e.Running(); n != 0 {
		t.Errorf("%d running after every result", n)
	}
}

// TestStuckListener: a listener that sends requests but never reads the
// results is stopped once its results fill the queue.
func TestStuckListener(t *testing.T) {
	needRoot(t)
	e, log := newExecutor(t, 2, service("/bin/true"))
	mine, theirs, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	// The smallest send buffer: a few unread results fill it.
	if err := unix.SetsockoptInt(mine, unix.SOL_SOCKET, unix.SO_SNDBUF, 1); err != nil {
		t.Fatal(err)
	}
	f := serveOn(t, e, log, mine, theirs)
	if err := f.l.Send(&ipc.Message{Kind: ipc.KindHello}, -1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 1; ; i++ {
		if time.Now().After(deadline) || i > 5000 {
			t.Fatal("a listener that does not read was not stopped")
		}
		server, client := unixClient(t)
		err := f.l.Send(&ipc.Message{Kind: ipc.KindRun, Seq: uint64(i), Service: 0}, server)
		unix.Close(server)
		if err != nil {
			break // the executor shut the connection down
		}
		// End of file: the command was reaped, so one at a time runs;
		// or Serve has returned, which leaves the reaping to Drain.
		eof := make(chan struct{})
		go func() {
			unix.SetsockoptTimeval(client, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 30})
			for n := 1; n > 0; n, _ = unix.Read(client, make([]byte, 64)) {
			}
			close(eof)
		}()
		select {
		case <-eof:
		case err := <-f.served:
			f.served <- err
			unix.Shutdown(client, unix.SHUT_RD)
		}
		<-eof
		unix.Close(client)
		if len(f.served) > 0 {
			break
		}
	}
	if err := f.wait(); err != errStuck {
		t.Fatalf("Serve returned %v, want %v", err, errStuck)
	}
	want := "warning: listener not reading its results; stopping listener\n"
	if b, _ := os.ReadFile(f.log); !bytes.HasSuffix(b, []byte(want)) {
		t.Errorf("log %q, want %q", b, want)
	}
	f.e.Drain()
}

// BenchmarkRoundTrip: Run -> exec /bin/true as nobody -> Exited, serially.
func BenchmarkRoundTrip(b *testing.B) {
	needRoot(b)
	f := start(b, 10, service("/bin/true"))
	f.hello()
	for i := 0; b.Loop(); i++ {
		server, _ := unixClient(b)
		f.run(uint64(i+1), 0, server)
		unix.Close(server)
		if m := f.receive(); m.Kind != ipc.KindExited {
			b.Fatalf("result %+v", m)
		}
	}
}

// TestTerminate: postfix stop ends the running commands with SIGTERM.
func TestTerminate(t *testing.T) {
	needRoot(t)
	f := start(t, 10, service("/bin/cat"))
	f.hello()
	server, _ := unixClient(t)
	f.run(1, 0, server)
	waitUntil(t, "command running", func() bool { return f.e.Running() == 1 })
	f.l.Close()
	f.wait()
	f.e.Terminate()
	f.e.Drain()
	if len(f.e.pending) != 1 || f.e.pending[0].Signal != 15 {
		t.Errorf("results %+v, want one killed by signal 15", f.e.pending)
	}
}

// TestCgroupReuse: the cgroup of a command that ended goes to the next
// command, but not one that was killed (the kernel kills whatever is
// cloned into it) nor one with a process left in it.
func TestCgroupReuse(t *testing.T) {
	needRoot(t)
	c := newCgroups(maillog.New(int(os.Stderr.Fd()), maillog.File, "spawnd", 2))
	if c == nil {
		t.Fatal("no cgroup v2 hierarchy, or no directory in it for this process: this test needs one")
	}
	t.Cleanup(c.close)
	dir, fd := c.make()
	unix.Close(fd)
	if !c.reuse(dir, false) || len(c.free) != 1 {
		t.Fatalf("an empty cgroup was not kept: %v", c.free)
	}
	if again, fd := c.make(); again != dir || len(c.free) != 0 {
		t.Fatalf("make returned %s, want the kept %s", again, dir)
	} else {
		unix.Close(fd)
	}
	c.kill(dir)
	if !c.reuse(dir, true) || len(c.free) != 0 {
		t.Fatalf("a killed cgroup was kept: %v", c.free)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a killed cgroup was not removed: %v", err)
	}
	busy, fd := c.make()
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}})
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if c.reuse(busy, false) || len(c.free) != 0 {
		t.Errorf("a cgroup with a process in it was kept or removed: %v", c.free)
	}
	unix.Kill(pid, unix.SIGKILL)
	syscall.Wait4(pid, nil, 0, nil)
}
