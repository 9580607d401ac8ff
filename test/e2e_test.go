package test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serveOne starts spawnd serve with one TCP and one unix service running
// the given commands, and returns the daemon and both addresses.
func serveOne(t *testing.T, tcpArgs, unixArgs string, extra ...string) (d *Daemon, tcp, sock string) {
	t.Helper()
	port := freePort(t)
	tcp = fmt.Sprintf("127.0.0.1:%d", port)
	master := fmt.Sprintf("%s inet n n n - - spawnd\n    user=nobody argv=%s\n"+
		"u unix - n n - - spawnd\n    %s user=nobody argv=%s\n", tcp, tcpArgs, strings.Join(extra, " "), unixArgs)
	dir := tempDir(t)
	sock = filepath.Join(dir, "u.sock")
	master = strings.Replace(master, "\nu unix", "\n"+sock+" unix", 1)
	d = StartServe(t, Config{Master: master, Args: []string{"-v"}, Env: []string{"TZ=UTC", "SECRET=hunter2"},
		Ready: []string{"tcp " + tcp, "unix " + sock}})
	return d, tcp, sock
}

// TestServeEchoIdEnv: /bin/echo over TCP, /usr/bin/id and /usr/bin/env
// over a unix socket: the command runs as nobody:nogroup with only that
// group, and its environment is export_environment plus PATH, nothing else.
func TestServeEchoIdEnv(t *testing.T) {
	d, tcp, sock := serveOne(t, "/bin/echo hello over tcp", "/usr/bin/id")
	if got, err := Talk("tcp", tcp, "", 10*time.Second); err != nil || got != "hello over tcp\n" {
		t.Fatalf("tcp: %q, %v", got, err)
	}
	if got, err := Talk("unix", sock, "", 10*time.Second); err != nil || got != "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n" {
		t.Fatalf("id: %q, %v", got, err)
	}
	if _, ok := d.WaitLog(`service=\S+u\.sock peer=unix pid=\d+ status=exit 0`, 5*time.Second); !ok {
		t.Errorf("no -v line for the unix service in:\n%s", d.ReadLog())
	}

	d2, _, sock2 := serveOne(t, "/bin/true", "/usr/bin/env")
	got, err := Talk("unix", sock2, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Fields(got)
	want := []string{"TZ=UTC", "LANG=C", "PATH=/usr/bin:/bin"}
	if strings.Join(env, " ") != strings.Join(want, " ") {
		t.Errorf("command environment %q, want %q (SECRET must not leak)", env, want)
	}
	_ = d2
}

// TestServeOnlyFds012: the command sees exactly fds 0, 1 and 2, all the
// same client socket.
func TestServeOnlyFds012(t *testing.T) {
	// ls, a child of the shell, lists the shell's descriptors: the shell
	// runs -c, so it holds no script file, and nothing was substituted.
	_, _, sock := serveOne(t, "/bin/true", "/bin/sh -c { ls -l /proc/$$/fd }")
	got, err := Talk("unix", sock, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var target string
	n := 0
	for _, l := range strings.Split(got, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[len(f)-2] != "->" {
			continue
		}
		fd, link := f[len(f)-3], f[len(f)-1]
		if fd != "0" && fd != "1" && fd != "2" || !strings.HasPrefix(link, "socket:[") || target != "" && link != target {
			t.Fatalf("command's fds:\n%s", got)
		}
		target = link
		n++
	}
	if n != 3 {
		t.Fatalf("command has %d fds, want 3:\n%s", n, got)
	}
}

// TestServeBigPayload: /bin/cat round-trips 1 MiB after a half-close.
func TestServeBigPayload(t *testing.T) {
	_, _, sock := serveOne(t, "/bin/true", "/bin/cat")
	payload := strings.Repeat("0123456789abcdef", 1<<16)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() { // write while reading: cat's output must be drained
		io.WriteString(conn, payload)
		conn.(*net.UnixConn).CloseWrite()
	}()
	b, err := io.ReadAll(conn)
	if got := string(b); err != nil || got != payload {
		t.Fatalf("cat returned %d bytes, %v; want %d", len(got), err, len(payload))
	}
}

// TestServeProcessLimit: maxproc 4, 16 clients of a one-second command:
// all 16 are served and never more than 4 run at once.
func TestServeProcessLimit(t *testing.T) {
	requireRoot(t)
	port := freePort(t)
	tcp := fmt.Sprintf("127.0.0.1:%d", port)
	marker := fmt.Sprintf("1.%d", os.Getpid())
	StartServe(t, Config{Master: fmt.Sprintf("%s inet n n n - 4 spawnd\n    user=nobody argv=/bin/sleep %s\n", tcp, marker),
		Ready: []string{"tcp " + tcp}})
	var peak, done atomic.Int32
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int32(len(ProcsWithArg(marker))); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Talk("tcp", tcp, "", 30*time.Second); err == nil {
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if done.Load() != 16 || peak.Load() > 4 || peak.Load() == 0 {
		t.Fatalf("served %d of 16, peak %d running, want 16 and at most 4", done.Load(), peak.Load())
	}
}

// TestServeTimeLimit: a command and its background and setsid
// grandchildren are all gone after the limit, the client sees end of file,
// and the log says so in spawn(8)'s words.
func TestServeTimeLimit(t *testing.T) {
	m := fmt.Sprintf("%d", os.Getpid())
	d, _, sock := serveOne(t, "/bin/true",
		"/bin/sh -c { sleep 61."+m+" & setsid sleep 62."+m+" & sleep 63."+m+" }", "-o command_time_limit=1")
	t.Cleanup(func() {
		for _, pid := range ProcsWithArg("." + m) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	if _, err := Talk("unix", filepath.Clean(sock), "", 20*time.Second); err != nil {
		t.Fatalf("client: %v", err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("client saw end of file after %v, limit 1s", took)
	}
	if _, ok := d.WaitLog(`warning: /bin/sh: process id \d+: command time limit exceeded`, 5*time.Second); !ok {
		t.Errorf("no time limit warning in:\n%s", d.ReadLog())
	}
	waitNoneRunning(t, "sleep", "."+m, 5*time.Second)
}

// TestServeExitStatusLogged: exit 3 is logged as spawn(8) logs it.
func TestServeExitStatusLogged(t *testing.T) {
	d, _, sock := serveOne(t, "/bin/true", "/bin/sh -c { exit 3 }")
	Talk("unix", sock, "", 10*time.Second)
	if _, ok := d.WaitLog(`warning: command /bin/sh exit status 3`, 5*time.Second); !ok {
		t.Fatalf("no exit status warning in:\n%s", d.ReadLog())
	}
}

// TestServeListenerKilled: kill -9 of the listener; the same executor
// starts a new one, which serves.
func TestServeListenerKilled(t *testing.T) {
	d, tcp, _ := serveOne(t, "/bin/echo ok", "/bin/true")
	Talk("tcp", tcp, "", 10*time.Second) // the listener runs once one is served
	old := d.Listener()
	if old == 0 {
		t.Fatal("no listener")
	}
	syscall.Kill(old, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for l := d.Listener(); l == 0 || l == old; l = d.Listener() {
		if time.Now().After(deadline) {
			t.Fatal("no new listener within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := Talk("tcp", tcp, "", 10*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
	if _, ok := d.WaitLog(`warning: listener pid \d+ killed by signal 9`, 5*time.Second); !ok {
		t.Errorf("listener death not logged:\n%s", d.ReadLog())
	}
}

// TestServeSIGTERM: a running command still delivers its output, then
// spawnd exits 0 and removes its unix socket.
func TestServeSIGTERM(t *testing.T) {
	d, _, sock := serveOne(t, "/bin/true", "/bin/sh -c { sleep 1; echo late }")
	got := make(chan string, 1)
	go func() { s, _ := Talk("unix", sock, "", 20*time.Second); got <- s }()
	// The command runs: the executor has a child besides the listener.
	if !waitFor(10*time.Second, func() bool { return len(Children(d.Pid())) >= 2 }) {
		t.Fatal("the command did not start")
	}
	d.Signal(syscall.SIGTERM)
	if s := <-got; s != "late\n" {
		t.Errorf("client got %q, want the command's output", s)
	}
	err, ok := d.Wait(15 * time.Second)
	if !ok || err != nil {
		t.Fatalf("spawnd after SIGTERM: exited %v, %v", ok, err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("unix socket %s left behind: %v", sock, err)
	}
}

// TestServeSIGHUP: a broken configuration is refused and the old one
// keeps serving; a valid changed one is served by the same pid.
func TestServeSIGHUP(t *testing.T) {
	d, tcp, _ := serveOne(t, "/bin/echo one", "/bin/true")
	good, _ := os.ReadFile(filepath.Join(d.Dir, "master.cf"))
	os.WriteFile(filepath.Join(d.Dir, "master.cf"), append(good, []byte("bad unix - n n - - spawnd usr=nobody argv=/bin/true\n")...), 0o644)
	d.Signal(syscall.SIGHUP)
	if _, ok := d.WaitLog(`warning: reload: keeping the old configuration: .*unknown attribute name: usr=nobody`, 5*time.Second); !ok {
		t.Fatalf("broken configuration not refused:\n%s", d.ReadLog())
	}
	if got, err := Talk("tcp", tcp, "", 10*time.Second); err != nil || got != "one\n" {
		t.Fatalf("after refused reload: %q, %v", got, err)
	}
	pid := d.Pid()
	os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(strings.Replace(string(good), "/bin/echo one", "/bin/echo two", 1)), 0o644)
	d.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := Talk("tcp", tcp, "", 5*time.Second); got == "two\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new configuration not served:\n%s", d.ReadLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.Pid() != pid || d.Cmd.ProcessState != nil {
		t.Errorf("pid changed or spawnd exited on reload")
	}
}

// TestServeLoad: 3,000 connections at concurrency 32 with zero errors, and
// no growth in the executor's or listener's descriptors, no zombies.
func TestServeLoad(t *testing.T) {
	d, tcp, _ := serveOne(t, "/bin/echo ok", "/bin/true")
	// Warm up first: the first connections settle one-time state (the
	// runtimes' own descriptors); growth is measured after that.
	for i := 0; i < 100; i++ {
		Talk("tcp", tcp, "", 10*time.Second)
	}
	lpid := d.Listener()
	ebefore, lbefore := OpenFds(d.Pid()), OpenFds(lpid)
	var failed atomic.Int32
	var firstErr atomic.Value
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if got, err := Talk("tcp", tcp, "", 20*time.Second); err != nil || got != "ok\n" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%q %v", got, err))
				}
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 3000 failed, first: %v", failed.Load(), firstErr.Load())
	}
	waitQuiet(d, 10*time.Second)
	if e, l := settleFds(d.Pid(), ebefore), settleFds(lpid, lbefore); e > ebefore || l > lbefore {
		t.Errorf("descriptors grew: executor %d -> %d, listener %d -> %d", ebefore, e, lbefore, l)
	}
	if z := Zombies(d.Pid()); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	if n := len(regexp.MustCompile(`status=exit 0`).FindAllString(d.ReadLog(), -1)); n < 3000 {
		t.Errorf("%d outcome lines logged, want at least 3000", n)
	}
}
