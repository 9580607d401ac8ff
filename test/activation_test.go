package test

// Socket activation as systemd does it, with systemd-socket-activate from
// Debian's systemd package: it listens, waits for the first connection,
// then executes spawnd with the socket as fd 3 and LISTEN_PID, LISTEN_FDS
// and LISTEN_FDNAMES set. The service whose name equals the descriptor's
// name takes it; the others open their own sockets.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// activated is spawnd started by systemd-socket-activate.
type activated struct {
	Dir    string
	cmd    *exec.Cmd
	stderr *syncWriter
	buf    bytes.Buffer
	done   chan struct{}
}

func requireSocketActivate(t *testing.T) string {
	t.Helper()
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (apt-get install systemd)")
	}
	requireRoot(t)
	return ssa
}

// startActivated writes main.cf and master.cf into dir and runs spawnd
// serve on it under systemd-socket-activate listening on listen with the
// descriptor name fdname; opts go to systemd-socket-activate.
func startActivated(t *testing.T, dir, listen, fdname, master string, opts ...string) *activated {
	t.Helper()
	ssa := requireSocketActivate(t)
	a := &activated{Dir: dir, done: make(chan struct{})}
	a.stderr = &syncWriter{w: &a.buf}
	queue := filepath.Join(a.Dir, "queue")
	mainCF := fmt.Sprintf("mail_owner = %s\nqueue_directory = %s\nmaillog_file = %s\n",
		mailOwner(), queue, filepath.Join(a.Dir, "maillog"))
	os.WriteFile(filepath.Join(a.Dir, "main.cf"), []byte(mainCF), 0o644)
	os.MkdirAll(filepath.Join(queue, "private"), 0o700)
	if u, err := user.Lookup(mailOwner()); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(filepath.Join(queue, "private"), uid, gid)
	}
	os.WriteFile(filepath.Join(a.Dir, "master.cf"), []byte(master), 0o644)
	args := append([]string{"-l", listen, "--fdname=" + fdname,
		"-E", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-E", "LANG=C"}, opts...)
	a.cmd = exec.Command(ssa, append(args, filepath.Join(bin(t), "spawnd"), "serve", "-c", a.Dir)...)
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			a.stderr.mu.Lock()
			t.Logf("systemd-socket-activate and spawnd stderr:\n%s", a.buf.String())
			a.stderr.mu.Unlock()
			b, _ := os.ReadFile(filepath.Join(a.Dir, "maillog"))
			t.Logf("maillog:\n%s", b)
		}
	})
	// systemd-socket-activate says when it listens.
	if !waitFor(10*time.Second, func() bool {
		a.stderr.mu.Lock()
		defer a.stderr.mu.Unlock()
		return strings.Contains(a.buf.String(), "Listening on")
	}) {
		t.Fatal("systemd-socket-activate not listening after 10s")
	}
	return a
}

// reload sends SIGHUP and waits until spawnd has logged the reload, so
// that what the test checks next is the reloaded spawnd's doing.
func (a *activated) reload(t *testing.T) {
	t.Helper()
	log := filepath.Join(a.Dir, "maillog")
	count := func() int { b, _ := os.ReadFile(log); return strings.Count(string(b), "reload") }
	before := count()
	a.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return count() > before }) {
		b, _ := os.ReadFile(log)
		t.Fatalf("no reload logged 10s after SIGHUP:\n%s", b)
	}
}

// Stop sends SIGTERM and waits for spawnd to exit, SIGKILL after ten
// seconds.
func (a *activated) Stop() {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// Pid is the executor's pid: systemd-socket-activate executes spawnd in
// its own process, so LISTEN_PID names it.
func (a *activated) Pid() int { return a.cmd.Process.Pid }

// talkUntil talks to addr until the answer contains want or ten seconds
// pass, and returns the last answer.
func talkUntil(t *testing.T, network, addr, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := Talk(network, addr, "", 10*time.Second)
		if err == nil && strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: got %q, %v; want %q", network, addr, got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listeningInodes returns the inodes of the TCP sockets listening on port.
func listeningInodes(port int) []string {
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(file)
		for s.Scan() {
			// sl local_address rem_address st ... uid timeout inode
			fs := strings.Fields(s.Text())
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			if _, p, ok := strings.Cut(fs[1], ":"); ok && p == fmt.Sprintf("%04X", port) {
				out = append(out, fs[9])
			}
		}
		file.Close()
	}
	return out
}

// holds reports whether process pid has the socket with this inode open.
func holds(pid int, inode string) bool {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, _ := os.Readlink(fd); l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// TestSocketActivationTCP: the service named like the descriptor (an inet
// service named by its port, since systemd allows no ":" in a name) takes
// the inherited socket, queued first connection included; the executor
// keeps it and the listener accepts on it; another service opens its own;
// SIGHUP keeps the inherited socket.
func TestSocketActivationTCP(t *testing.T) {
	requireSocketActivate(t)
	port, other := freePort(t), freePort(t)
	addr, otherAddr := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", other)
	a := startActivated(t, tempDir(t), addr, strconv.Itoa(port), fmt.Sprintf(
		"%d inet n n n - - spawnd\n    user=nobody argv=/bin/echo ok\n"+
			"%s inet n n n - - spawnd\n    user=nobody argv=/bin/echo other\n", port, otherAddr))
	// The first connection starts spawnd and waits in the listen queue.
	if got, err := Talk("tcp", addr, "", 15*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("first connection: got %q, %v; want \"ok\\n\"", got, err)
	}
	talkUntil(t, "tcp", otherAddr, "other")

	inodes := listeningInodes(port)
	if len(inodes) != 1 {
		t.Fatalf("%d sockets listen on port %d, want 1 (the inherited one)", len(inodes), port)
	}
	listener := (&Daemon{Cmd: a.cmd}).Listener()
	if !holds(a.Pid(), inodes[0]) || listener == 0 || !holds(listener, inodes[0]) {
		t.Fatalf("inherited socket %s: held by executor %v, by listener %d %v; want both",
			inodes[0], holds(a.Pid(), inodes[0]), listener, listener != 0 && holds(listener, inodes[0]))
	}

	// SIGHUP re-executes spawnd in the same process, which must take the
	// same inherited socket again.
	a.reload(t)
	talkUntil(t, "tcp", addr, "ok")
	talkUntil(t, "tcp", otherAddr, "other")
	select {
	case <-a.done:
		t.Fatalf("spawnd exited on SIGHUP: %v", a.cmd.ProcessState)
	default:
	}
	if now := listeningInodes(port); len(now) != 1 || now[0] != inodes[0] || !holds(a.Pid(), inodes[0]) {
		t.Fatalf("after SIGHUP, sockets listening on %d: %v, want the inherited %s held by spawnd", port, now, inodes[0])
	}
}

// TestSocketActivationUnix: a unix service takes an inherited unix socket
// instead of creating its own under $queue_directory/private, and the
// activation variables do not reach commands.
func TestSocketActivationUnix(t *testing.T) {
	requireSocketActivate(t)
	dir := tempDir(t)
	sock := filepath.Join(dir, "activated.sock")
	startActivated(t, dir, sock, "policy",
		"policy unix - n n - - spawnd\n    user=nobody argv=/usr/bin/env\n")
	got, err := Talk("unix", sock, "", 15*time.Second)
	if err != nil || !strings.Contains(got, "PATH=/usr/bin:/bin\n") {
		t.Fatalf("env through the inherited socket: got %q, %v", got, err)
	}
	if strings.Contains(got, "LISTEN_") {
		t.Errorf("the command got the activation variables:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "queue/private/policy")); err == nil {
		t.Error("spawnd created queue/private/policy although the service's socket was inherited")
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the inherited socket is gone: %v", err)
	}
}

// TestSocketActivationUnixReload: systemd's socket is where the service
// would put its own ($queue_directory/private/NAME), as in a socket unit
// written for Postfix's layout. spawnd must never remove it: systemd
// owns it and listens on it again when spawnd exits, across a reload
// (SIGHUP) too.
func TestSocketActivationUnixReload(t *testing.T) {
	requireSocketActivate(t)
	dir := tempDir(t)
	sock := filepath.Join(dir, "queue/private/policy")
	os.MkdirAll(filepath.Dir(sock), 0o700)
	a := startActivated(t, dir, sock, "policy",
		"policy unix - n n - - spawnd\n    user=nobody argv=/bin/echo ok\n")
	talkUntil(t, "unix", sock, "ok")
	a.reload(t)
	talkUntil(t, "unix", sock, "ok")
	a.Stop()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("after a reload and a stop, systemd's socket %s: %v; spawnd removed a socket it did not create", sock, err)
	}
}

// TestSocketActivationChecks: an inherited socket no service is named
// after is closed with a warning while the services serve on their own
// sockets; an inherited socket that is not a listening stream socket (a
// UDP one) stops spawnd at start-up with a message naming the service.
func TestSocketActivationChecks(t *testing.T) {
	requireSocketActivate(t)
	t.Run("unnamed", func(t *testing.T) {
		port, other := freePort(t), freePort(t)
		addr, otherAddr := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", other)
		a := startActivated(t, tempDir(t), addr, "nosuch",
			fmt.Sprintf("%s inet n n n - - spawnd\n    user=nobody argv=/bin/echo other\n", otherAddr))
		// The first connection starts spawnd, which closes the socket
		// under it: the client is reset or sees end of file.
		if got, err := Talk("tcp", addr, "", 15*time.Second); got != "" {
			t.Errorf("connection to the unclaimed socket: got %q, %v; want nothing", got, err)
		}
		talkUntil(t, "tcp", otherAddr, "other")
		log, _ := os.ReadFile(filepath.Join(a.Dir, "maillog"))
		if want := "warning: inherited socket nosuch (LISTEN_FDNAMES) is no service's: closed"; !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
		if n := len(listeningInodes(port)); n != 0 {
			t.Errorf("%d sockets still listen on port %d", n, port)
		}
	})
	t.Run("datagram", func(t *testing.T) {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		a := startActivated(t, tempDir(t), addr, strconv.Itoa(port),
			fmt.Sprintf("%d inet n n n - - spawnd\n    user=nobody argv=/bin/echo ok\n", port), "--datagram")
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("wake up\n"))
		c.Close()
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			t.Fatal("spawnd still running with a UDP socket for a stream service")
		}
		a.stderr.mu.Lock()
		out := a.buf.String()
		a.stderr.mu.Unlock()
		want := fmt.Sprintf("fatal: service %d: inherited descriptor 3 is not a listening inet stream socket", port)
		if a.cmd.ProcessState.Success() || !strings.Contains(out, want) {
			t.Errorf("exit %v, stderr:\n%s\nwant %q", a.cmd.ProcessState, out, want)
		}
	})
}
