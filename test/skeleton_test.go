package test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runSpawnd runs bin/spawnd with a master(8) command line, MAIL_CONFIG
// dir and stdin, and returns its exit status and what it printed.
func runSpawnd(t *testing.T, dir string, stdin *os.File, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin(t), "spawnd"), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "MAIL_CONFIG=" + dir}
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("spawnd %s: still running after 20s", strings.Join(args, " "))
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// pty returns the terminal side of a new pseudo-terminal.
func pty(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("a terminal for stdin: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("a terminal for stdin: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSpawndSkeletonOptions (issue: the rest of spawn(8)'s surface):
// spawnd given a master(8) command line treats the skeleton's options as
// Postfix's single_server.c does, in its words: an unknown option or one
// without its argument `fatal: invalid option: X`, no -t `no transport
// type specified`, stdin a terminal without -d `do not run this command
// by hand`; -t pass and -S, which spawnd does not do, are clear fatals;
// -d lets it past the terminal check. Each exits 1.
func TestSpawndSkeletonOptions(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("mail_owner = "+mailOwner()+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte("x unix - n n - 3 spawnd user=nobody argv=/bin/true\n"), 0o644)
	tty := pty(t)
	for _, tc := range []struct {
		args  string
		stdin *os.File
		want  string
	}{
		{"-Q", nil, "fatal: invalid option: Q\n"},
		{"-z -n x -t", nil, "fatal: invalid option: t (it takes an argument)\n"},
		{"-z -n x", nil, "fatal: " + dir + "/master.cf: service x: no transport type specified\n"},
		{"-z -n x -t fifo", nil, "fatal: " + dir + "/master.cf: service x: unsupported transport type: fifo\n"},
		{"-z -n x -t pass", nil, "fatal: " + dir + "/master.cf: service x: transport type pass is not supported: spawnd does not receive passed connections\n"},
		{"-z -n x -t unix -S", nil, "fatal: " + dir + "/master.cf: service x: -S (one client on standard input) is not supported\n"},
		{"-n y -t unix", nil, "fatal: " + dir + "/master.cf: service y: no unix entry of this service with a maxproc in master.cf (changed since postfix reload?)\n"},
		{"-z -n x -t unix", tty, "fatal: do not run this command by hand\n"},
		// Past the terminal check, it finds no socket from master(8).
		{"-d -n x -t unix", tty, "listening fd 6: socket operation on non-socket"},
	} {
		args := strings.Fields(tc.args)
		if !strings.HasSuffix(tc.args, " -t") { // else -t would take user=nobody
			args = append(args, "user=nobody", "argv=/bin/true")
		}
		code, out := runSpawnd(t, dir, tc.stdin, args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("spawnd %s: exit %d, printed %q, want exit 1 and %q", tc.args, code, out, tc.want)
		}
	}
}

// TestPostfixSpawndPostlog (issue: logging as every Postfix daemon logs,
// and spawn(8)'s log lines): a private instance with maillog_file, on a
// machine without /dev/log, master(8) starting spawn(8) and spawnd with
// the same lines. Every record spawnd writes reaches the maillog_file
// through postlogd(8), in Postfix's shape with myhostname's first label:
// its start-up fatal `invalid option: Q` as spawn(8)'s does; `command
// /bin/false exit status 1` under -o syslog_name, with the pid of the
// process master(8) forked; a command that cannot be executed gives
// spawn(8)'s `command PATH exit status 1`; -D warns; -V is accepted.
// Neither spawnd process has the maillog_file open.
func TestPostfixSpawndPostlog(t *testing.T) {
	dd := spawndDaemonDir(t)
	if _, err := os.Stat("/dev/log"); err == nil {
		t.Log("this machine has /dev/log; the test shows the records in the maillog_file all the same")
	}
	dir := tempDir(t)
	gone := writeScript(t, dir, "gone", "echo ok\n")
	spawnGone := writeScript(t, dir, "spawn-gone", "echo ok\n")
	p := newPostfixInstance(t, `badspawn unix - n n - 0 spawn -Q user=nobody argv=/bin/true
badspawnd unix - n n - 0 spawnd -Q user=nobody argv=/bin/true
false unix - n n - 4 spawnd -o syslog_name=postfix/pol user=nobody argv=/bin/false
gonespawn unix - n n - 0 spawn user=nobody argv=`+spawnGone+`
gonespawnd unix - n n - 0 spawnd user=nobody argv=`+gone+`
dbg unix - n n - 0 spawnd -D -V user=nobody argv=/bin/echo ok
`, "myhostname = mail.example.test\ndaemon_directory = "+dd)
	for _, s := range []string{"badspawn", "badspawnd"} {
		c, err := p.dial("private/" + s)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for _, prog := range []string{"spawn", "spawnd"} {
		re := `^\w{3} \d\d \d\d:\d\d:\d\d mail postfix/` + prog + `\[\d+\]: fatal: invalid option: Q$`
		if line, ok := p.waitLog(re, 20*time.Second); !ok {
			t.Errorf("no line matching %s", re)
		} else {
			t.Logf("%s", line)
		}
	}

	if got, err := p.talk("private/false", "", 20*time.Second); err != nil || got != "" {
		t.Errorf("false: %q, %v", got, err)
	}
	line, ok := p.waitLog(`postfix/pol/spawnd\[\d+\]: warning: command /bin/false exit status 1$`, 10*time.Second)
	if !ok {
		t.Fatalf("no `postfix/pol/spawnd[N]: warning: command /bin/false exit status 1`")
	}
	t.Logf("%s", line)
	pid, _ := strconv.Atoi(regexp.MustCompile(`spawnd\[(\d+)\]`).FindStringSubmatch(line)[1])
	if f := statFields(pid); len(f) < 2 || f[1] != strconv.Itoa(p.self.Pid) || comm(pid) != "spawnd" {
		t.Errorf("the line's pid %d is not a spawnd master(8) forked (stat %q)", pid, f)
	}
	logFile, _ := filepath.EvalSymlinks(p.logFile)
	for _, q := range append([]int{pid}, Children(pid)...) {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", q))
		for _, e := range ents {
			if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", q, e.Name())); target == logFile {
				t.Errorf("%s pid %d has the maillog_file open on fd %s", comm(q), q, e.Name())
			}
		}
	}

	// A command that exists when spawn(8) and spawnd start, and is gone
	// when the next client comes.
	for _, s := range []struct{ service, path string }{{"gonespawn", spawnGone}, {"gonespawnd", gone}} {
		if got, err := p.talk("private/"+s.service, "", 20*time.Second); err != nil || got != "ok\n" {
			t.Fatalf("%s: %q, %v", s.service, got, err)
		}
		os.Remove(s.path)
		p.talk("private/"+s.service, "", 20*time.Second)
		if line, ok := p.waitLog(`postfix/spawnd?\[\d+\]: warning: command `+regexp.QuoteMeta(s.path)+` exit status 1$`, 10*time.Second); !ok {
			t.Errorf("%s: no `warning: command %s exit status 1`", s.service, s.path)
		} else {
			t.Logf("%s", line)
		}
	}
	for _, l := range p.logLines(`execvp`) {
		t.Logf("%s", l)
	}

	if got, err := p.talk("private/dbg", "", 20*time.Second); err != nil || got != "ok\n" {
		t.Errorf("dbg (-D -V): %q, %v", got, err)
	}
	if _, ok := p.waitLog(`postfix/spawnd\[\d+\]: warning: -D or MAIL_DEBUG: spawnd runs no debugger_command`, 10*time.Second); !ok {
		t.Errorf("no warning for -D")
	}
}

// TestSpawndMailVerbose: MAIL_VERBOSE in spawnd's environment (master(8)
// passes it on when import_environment lets it) makes spawnd verbose, as
// -v does and as it makes the skeleton: one info line per connection.
// The test plays master(8): status channel on fd 5, a listening socket on
// fd 6; closing its end of the channel ends spawnd.
func TestSpawndMailVerbose(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("mail_owner = "+mailOwner()+"\nqueue_directory = "+dir+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte("echo unix - n n - 2 spawnd user=nobody argv=/bin/echo ok\n"), 0o644)
	sock := filepath.Join(dir, "echo")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o666)
	lf, _ := ln.(*net.UnixListener).File()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master, child := os.NewFile(uintptr(pair[0]), "master"), os.NewFile(uintptr(pair[1]), "status")
	defer master.Close()
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	cmd := exec.Command(filepath.Join(bin(t), "spawnd"), "-n", "echo", "-t", "unix", "user=nobody", "argv=/bin/echo", "ok")
	cmd.Env = []string{"MAIL_CONFIG=" + dir, "MAIL_VERBOSE=", "GENERATION=7"}
	cmd.ExtraFiles = []*os.File{null, null, child, lf} // fds 3, 4 (flow pipe), 5, 6
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	lf.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		master.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("spawnd still running 20s after master(8) went away")
		}
	}()
	if got, err := Talk("unix", sock, "", 20*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("echo: %q, %v\n%s", got, err, out.String())
	}
	re := regexp.MustCompile(`postfix/spawnd\[` + strconv.Itoa(cmd.Process.Pid) + `\]: service=echo peer=unix pid=\d+ status=exit 0 `)
	for deadline := time.Now().Add(10 * time.Second); !re.MatchString(out.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no per-connection info line with MAIL_VERBOSE; spawnd printed:\n%s", out.String())
		}
	}
}

// TestSpawndFatalToPostlog: with POSTLOG_SERVICE set (master(8) sets it
// when maillog_file is), a fatal error before main.cf is read (a bad
// option, main.cf missing) goes to postlogd(8)'s socket as a record in
// Postfix's shape, with $MAIL_LOGTAG and POSTLOG_HOSTNAME's first label.
func TestSpawndFatalToPostlog(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	sock := filepath.Join(dir, "postlog")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct{ args, want string }{
		{"-Q", "fatal: invalid option: Q"},
		{"-z -n x -t unix", "fatal: open " + dir + "/none/main.cf: no such file or directory"},
	} {
		cmd := exec.Command(filepath.Join(bin(t), "spawnd"), append(strings.Fields(tc.args), "user=nobody", "argv=/bin/true")...)
		cmd.Env = []string{"MAIL_CONFIG=" + dir + "/none", "POSTLOG_SERVICE=" + sock, "POSTLOG_HOSTNAME=mail.example.test", "MAIL_LOGTAG=postfix-x"}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 2048)
		n, err := srv.Read(buf)
		cmd.Wait()
		re := regexp.MustCompile(`^[A-Z][a-z]{2} [0-3]\d \d\d:\d\d:\d\d mail postfix-x/spawnd\[` + strconv.Itoa(cmd.Process.Pid) + `\]: ` + regexp.QuoteMeta(tc.want) + `$`)
		if err != nil || !re.Match(buf[:n]) {
			t.Errorf("spawnd %s: record %q, %v; want %s", tc.args, buf[:n], err, re)
		}
	}
}
