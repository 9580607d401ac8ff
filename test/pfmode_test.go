package test

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pfDaemonDir is Debian's daemon_directory: master(8) runs every command
// from there.
const pfDaemonDir = "/usr/lib/postfix/sbin"

// pfInstance is a private Postfix instance: its own configuration, queue
// and data directories, its own master(8) in its own session (as `postfix
// start` runs it), and a daemon_directory holding links to Postfix's
// daemons plus the spawnd binaries under test. The system's Postfix is
// not touched.
type pfInstance struct {
	dir, conf, queue, log string
	master                *exec.Cmd
}

func pfStart(t *testing.T, masterCF string) *pfInstance {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat(filepath.Join(pfDaemonDir, "master")); err != nil {
		t.Skip("Postfix not installed (apt-get install postfix)")
	}
	owner, err := user.Lookup("postfix")
	if err != nil {
		t.Skip("no postfix user (apt-get install postfix)")
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	p := &pfInstance{dir: tempDir(t)}
	p.conf, p.queue, p.log = filepath.Join(p.dir, "conf"), filepath.Join(p.dir, "queue"), filepath.Join(p.dir, "maillog")
	libexec, data := filepath.Join(p.dir, "libexec"), filepath.Join(p.dir, "data")
	for _, d := range []string{p.conf, filepath.Join(p.queue, "pid"), filepath.Join(p.queue, "public"), filepath.Join(p.queue, "private"), data, libexec} {
		os.MkdirAll(d, 0o755)
	}
	for _, d := range []string{filepath.Join(p.queue, "public"), filepath.Join(p.queue, "private"), data} {
		os.Chown(d, uid, gid)
	}
	os.Chmod(filepath.Join(p.queue, "private"), 0o700)
	ours := []string{"spawnd", "spawnd-listener", "spawnd-limits"}
	ents, _ := os.ReadDir(pfDaemonDir)
	for _, e := range ents {
		// Not the system's spawnd binaries (the Debian package's): ours
		// would be written through the links, into the installed files.
		if !slices.Contains(ours, e.Name()) {
			os.Symlink(filepath.Join(pfDaemonDir, e.Name()), filepath.Join(libexec, e.Name()))
		}
	}
	for _, b := range ours { // with their modes: spawnd-listener's is 0711
		data, err := os.ReadFile(filepath.Join(bin(t), b))
		st, serr := os.Stat(filepath.Join(bin(t), b))
		if err = cmp.Or(err, serr); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(libexec, b), data, st.Mode().Perm())
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
daemon_directory = %s
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = localhost.localdomain
maillog_file_prefixes = %s
maillog_file = %s
`, p.queue, data, libexec, p.dir, p.log)
	os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte("postlog unix-dgram n - n - 1 postlogd\n"+masterCF), 0o644)
	// Without -d master(8) makes itself a session leader, as under
	// `postfix start`, so that `postfix stop` signals its process group.
	p.master = exec.Command(filepath.Join(libexec, "master"), "-c", p.conf)
	p.master.Dir = "/"
	if err := p.master.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.master.Wait(); close(done) }()
	t.Cleanup(func() {
		p.master.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.master.Process.Kill()
		}
		if t.Failed() {
			t.Logf("Postfix log:\n%s", p.readLog())
		}
	})
	if !p.waitLog("daemon started", 10*time.Second) {
		t.Fatalf("master(8) did not start:\n%s", p.readLog())
	}
	return p
}

func (p *pfInstance) readLog() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *pfInstance) waitLog(s string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.readLog(), s) {
			return true
		}
	}
	return false
}

// pfSpawnds returns the pids of spawnd processes master(8) started.
func (p *pfInstance) pfSpawnds() []int {
	var out []int
	for _, pid := range Children(p.master.Process.Pid) {
		if comm(pid) == "spawnd" {
			out = append(out, pid)
		}
	}
	return out
}

// TestPostfixModeEcho: a unix and an inet service on 127.0.0.1 run
// /bin/echo ok through spawnd under the real master(8), and master(8)
// logs no warning.
func TestPostfixModeEcho(t *testing.T) {
	port := freePort(t)
	p := pfStart(t, fmt.Sprintf("echo unix - n n - - spawnd\n  user=nobody argv=/bin/echo ok\n"+
		"127.0.0.1:%d inet n n n - 2 spawnd\n  user=nobody argv=/bin/echo tcp ok\n", port))
	if got, err := Talk("unix", filepath.Join(p.queue, "private/echo"), "", 10*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("unix: %q, %v", got, err)
	}
	if got, err := Talk("tcp", fmt.Sprintf("127.0.0.1:%d", port), "", 10*time.Second); err != nil || got != "tcp ok\n" {
		t.Fatalf("inet: %q, %v", got, err)
	}
	time.Sleep(200 * time.Millisecond)
	if log := p.readLog(); strings.Contains(log, "warning") || strings.Contains(log, "fatal") {
		t.Errorf("warnings in the log:\n%s", log)
	}
}

// TestPostfixModeTimeLimit: a time limit set with -o in master.cf kills a
// hanging command and its grandchildren (Postfix 3.7's spawn(8) logs the
// limit but its kill fails with EPERM), and the client sees end of file.
func TestPostfixModeTimeLimit(t *testing.T) {
	m := strconv.Itoa(os.Getpid())
	p := pfStart(t, "hang unix - n n - - spawnd\n  -o hang_time_limit=1 user=nobody argv=/bin/sh -c { sleep 71."+m+" & setsid sleep 72."+m+" & sleep 73."+m+" }\n")
	t.Cleanup(func() {
		for _, pid := range ProcsWithArg("." + m) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	if _, err := Talk("unix", filepath.Join(p.queue, "private/hang"), "", 20*time.Second); err != nil {
		t.Fatalf("client: %v", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("end of file after %v, limit 1s", took)
	}
	if !p.waitLog("command time limit exceeded", 5*time.Second) {
		t.Errorf("no time limit warning")
	}
	waitNoneRunning(t, "sleep", "."+m, 5*time.Second)
}

// TestPostfixModeLoad: 500 connections at concurrency 16 through master(8)
// with zero errors; master(8) never logs an unknown pid or throttling.
func TestPostfixModeLoad(t *testing.T) {
	p := pfStart(t, "echo unix - n n - 4 spawnd\n  -o default_process_limit=8 user=nobody argv=/bin/echo ok\n")
	sock := filepath.Join(p.queue, "private/echo")
	var failed atomic.Int32
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if got, err := Talk("unix", sock, "", 20*time.Second); err != nil || got != "ok\n" {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of 500 failed", failed.Load())
	}
	log := p.readLog()
	for _, bad := range []string{"unknown pid", "throttling", "warning", "fatal", "panic"} {
		if strings.Contains(log, bad) {
			t.Errorf("master(8) log has %q:\n%s", bad, log)
		}
	}
}

// TestPostfixModeStop: `postfix stop` (SIGTERM to master(8)) during a
// running command leaves no spawnd, listener or command behind.
func TestPostfixModeStop(t *testing.T) {
	m := strconv.Itoa(os.Getpid())
	p := pfStart(t, "hang unix - n n - - spawnd\n  user=nobody argv=/bin/sleep 74."+m+"\n")
	t.Cleanup(func() {
		for _, pid := range ProcsWithArg("74." + m) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	got := make(chan error, 1)
	go func() { _, err := Talk("unix", filepath.Join(p.queue, "private/hang"), "", 20*time.Second); got <- err }()
	// The command itself, not spawnd, whose argv= holds the marker too.
	running := func() bool {
		for _, pid := range ProcsWithArg("74." + m) {
			if comm(pid) == "sleep" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !running(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the command did not start")
		}
	}
	spawnds := p.pfSpawnds()
	var listeners []int
	for _, s := range spawnds {
		listeners = append(listeners, Children(s)...)
	}
	p.master.Process.Signal(syscall.SIGTERM)
	if err := <-got; err != nil {
		t.Errorf("client: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var left []int
		for _, pid := range append(append(ProcsWithArg("74."+m), spawnds...), listeners...) {
			if f := statFields(pid); len(f) > 0 && f[0] != "Z" {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left running after postfix stop: %v", left)
		}
	}
}
