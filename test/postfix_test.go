package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Integration tests with Debian's real Postfix: master(8), smtpd(8) and
// spawn(8) in a private instance (postfix_harness_test.go).
//
// TestPostfixMasterFacts and the TestPostfixSpawn* baselines run Postfix's
// own programs and pin down the behaviour spawnd must fit into; the
// TestPostfixSpawnd* tests run spawnd where spawn(8) was.

// probeReport is what testdata/postfix/probe records at its start.
type probeReport struct {
	Args      []string
	Env       []string
	Uid, Gid  int
	Groups    []int
	Cwd       string
	Umask     string
	SigIgn    string
	SigBlk    string
	Pid       int
	Ppid      int
	Pgid, Sid int
	Fds       map[int]struct {
		Target    string
		Flags     string
		Nonblock  bool
		SockType  int
		Listening bool
	}
	Generation string
}

// buildProbe builds testdata/postfix/probe into a temporary directory.
func buildProbe(t *testing.T) string {
	t.Helper()
	out := filepath.Join(tempDir(t), "probe")
	cmd := exec.Command("go", "build", "-o", out, "./test/testdata/postfix/probe")
	cmd.Dir = moduleRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build probe: %v\n%s", err, b)
	}
	return out
}

// probeConnect connects to a probe service, checks its answer and returns
// the report the probe that answered wrote.
func probeConnect(t *testing.T, p *postfixInstance, service, name string) probeReport {
	t.Helper()
	got, err := p.talk(service, "", 20*time.Second)
	var pid int
	if _, e := fmt.Sscanf(got, "probe %d\n", &pid); err != nil || e != nil {
		t.Fatalf("%s: answer %q, %v", service, got, err)
	}
	var r probeReport
	b, err := os.ReadFile(filepath.Join(p.conf, "probe", fmt.Sprintf("%s.%d.json", name, pid)))
	if err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	return r
}

// TestPostfixMasterFacts records what master(8) hands a daemon it runs
// (argv, environment, descriptors, credentials), what it logs when one
// exits non-zero, with and without having reported status first, that an
// absolute command path does not work, and what a daemon sees at postfix
// reload and postfix stop. docs/postfix-mode.md quotes these facts.
func TestPostfixMasterFacts(t *testing.T) {
	requirePostfix(t)
	probe := buildProbe(t)
	dd := postfixDaemonDir(t, map[string]string{"probe": probe, "probe-exit": probe, "probe-served": probe})
	in1, in100 := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := newPostfixInstance(t, fmt.Sprintf(`probe  unix - n n - 1 probe
p100   unix - n n - 100 probe -o { probe_x = a b } extra
p0     unix - - n - 0 probe
%s inet n - n - 1 probe
%s inet n n n - 100 probe
abs    unix - n n - 1 %s
exit3  unix - n n - 1 probe-exit exit=3
served unix - n n - 1 probe-served status exit=4
linger unix - n n - 1 probe linger
`, in1, in100, probe), "daemon_directory = "+dd)
	if err := os.Mkdir(filepath.Join(p.conf, "probe"), 0o755); err != nil {
		t.Fatal(err)
	}

	// argv: the command column as argv[0], then -l (maxproc 1) or -z
	// (maxproc 0), -n when the service name is not the command's, -t, -u
	// when unpriv is y, no -o stress= for loopback inet, and the rest with
	// { } groups made single words.
	for _, c := range []struct {
		service, name string
		want          []string
	}{
		{"private/probe", "probe", []string{"probe", "-l", "-t", "unix"}},
		{"private/p100", "p100", []string{"probe", "-n", "p100", "-t", "unix", "-o", "probe_x = a b", "extra"}},
		{"private/p0", "p0", []string{"probe", "-z", "-n", "p0", "-t", "unix", "-u"}},
		{in1, in1, []string{"probe", "-l", "-n", in1, "-t", "inet", "-u"}},
		{in100, in100, []string{"probe", "-n", in100, "-t", "inet"}},
	} {
		r := probeConnect(t, p, c.service, c.name)
		if !slices.Equal(r.Args, c.want) {
			t.Errorf("%s: argv %q, want %q", c.service, r.Args, c.want)
		}
		t.Logf("%s: argv %q", c.service, r.Args)
		checkProbeStart(t, p, c.service, r)
	}

	// A daemon that exits non-zero before it ever reported TAKEN and AVAIL
	// gets its service throttled; one that served a client first does not.
	r := probeConnect(t, p, "private/served", "served")
	if line, ok := p.waitLog(fmt.Sprintf(`pid %d exit status 4`, r.Pid), 10*time.Second); !ok {
		t.Errorf("no exit status line for the probe that served a client")
	} else {
		t.Logf("%s", line)
	}
	r = probeConnect(t, p, "private/exit3", "exit3")
	if line, ok := p.waitLog(fmt.Sprintf(`pid %d exit status 3`, r.Pid), 10*time.Second); !ok {
		t.Errorf("no exit status line for the probe that exits 3")
	} else {
		t.Logf("%s", line)
	}
	if line, ok := p.waitLog(`probe-exit: bad command startup -- throttling`, 10*time.Second); !ok {
		t.Errorf("no throttling after exit 3 without status")
	} else {
		t.Logf("%s", line)
	}
	if lines := p.logLines(`probe-served: bad command startup`); len(lines) > 0 {
		t.Errorf("throttled although it had served a client: %q", lines)
	}

	// An absolute command path is appended to daemon_directory.
	conn, err := p.dial("private/abs")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := regexp.QuoteMeta(fmt.Sprintf("fatal: master_spawn: exec %s/%s: No such file or directory", dd, probe))
	if line, ok := p.waitLog(want, 10*time.Second); !ok {
		t.Errorf("no %q in the log", want)
	} else {
		t.Logf("%s", line)
	}

	// postfix reload: an old daemon sees end of file on the status channel,
	// no signal.
	r = probeConnect(t, p, "private/linger", "linger")
	if out, err := postfixCommand(20*time.Second, "-c", p.conf, "reload"); err != nil {
		t.Fatalf("postfix reload: %v\n%s", err, out)
	}
	end := waitFile(t, filepath.Join(p.conf, "probe", fmt.Sprintf("linger.%d.end", r.Pid)), 15*time.Second)
	if end != "status channel read 0 <nil>\n" { // and no SIGTERM
		t.Errorf("at postfix reload the daemon saw %q, want end of file on the status channel", end)
	}
	t.Logf("at postfix reload: %s", strings.TrimSpace(end))

	// postfix stop: SIGTERM to master(8)'s process group.
	r = probeConnect(t, p, "private/linger", "linger")
	if out, err := p.stop(); err != nil {
		t.Fatalf("postfix stop: %v\n%s", err, out)
	}
	end = waitFile(t, filepath.Join(p.conf, "probe", fmt.Sprintf("linger.%d.end", r.Pid)), 15*time.Second)
	// master(8) signals its process group and exits, closing the status
	// channel: the daemon may see the end of file before its runtime
	// delivers the signal.
	if !strings.Contains(end, "SIGTERM") {
		t.Errorf("at postfix stop the daemon saw %q, want SIGTERM", end)
	}
	t.Logf("at postfix stop: %s", strings.TrimSpace(end))
	t.Logf("maillog:\n%s", p.log())
}

// checkProbeStart checks what every daemon gets from master(8).
func checkProbeStart(t *testing.T, p *postfixInstance, service string, r probeReport) {
	t.Helper()
	var fds []int
	for fd, f := range r.Fds {
		// Go's runtime (1.25 and later) keeps its cgroup CPU limit files
		// open, close-on-exec, at the lowest free numbers: 7 and 8 here.
		if !strings.HasPrefix(f.Target, "/sys/fs/cgroup/") {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	if !slices.Equal(fds, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("%s: open fds %v, want 0-6", service, fds)
	}
	for fd := 0; fd <= 2; fd++ {
		if r.Fds[fd].Target != "/dev/null" {
			t.Errorf("%s: fd %d is %s, want /dev/null", service, fd, r.Fds[fd].Target)
		}
	}
	f3, f4, f5, f6 := r.Fds[3], r.Fds[4], r.Fds[5], r.Fds[6]
	if !strings.HasPrefix(f3.Target, "pipe:") || f3.Target != f4.Target || !f3.Nonblock || !f4.Nonblock {
		t.Errorf("%s: fds 3 and 4 are %+v and %+v, want the two ends of one non-blocking pipe", service, f3, f4)
	}
	if f5.SockType != syscall.SOCK_STREAM || f5.Listening || f5.Nonblock {
		t.Errorf("%s: fd 5 is %+v, want a blocking connected stream socket", service, f5)
	}
	if f6.SockType != syscall.SOCK_STREAM || !f6.Listening || !f6.Nonblock {
		t.Errorf("%s: fd 6 is %+v, want a non-blocking listening stream socket", service, f6)
	}
	var names []string
	for _, kv := range r.Env {
		name, value, _ := strings.Cut(kv, "=")
		names = append(names, name)
		switch name {
		case "GENERATION":
			if !regexp.MustCompile(`^[0-7]+$`).MatchString(value) {
				t.Errorf("%s: GENERATION=%q is not octal", service, value)
			}
		case "MAIL_CONFIG":
			if value != p.conf {
				t.Errorf("%s: MAIL_CONFIG=%q, want %q", service, value, p.conf)
			}
		case "LANG":
			if value != "C" {
				t.Errorf("%s: LANG=%q, want C", service, value)
			}
		}
	}
	slices.Sort(names)
	if want := []string{"GENERATION", "LANG", "MAIL_CONFIG", "MAIL_LOGTAG", "POSTLOG_HOSTNAME", "POSTLOG_SERVICE"}; !slices.Equal(names, want) {
		t.Errorf("%s: environment %q, want the names %q", service, r.Env, want)
	}
	if r.Uid != 0 || r.Gid != 0 || r.Cwd != p.queue || r.Umask != "0077" {
		t.Errorf("%s: uid %d gid %d cwd %s umask %s, want root, root, %s, 0077", service, r.Uid, r.Gid, r.Cwd, r.Umask, p.queue)
	}
	if r.Ppid != p.self.Pid || r.Pgid != p.self.Pid || r.Sid != p.self.Pid {
		t.Errorf("%s: ppid %d pgid %d sid %d, want master(8)'s pid %d for all three", service, r.Ppid, r.Pgid, r.Sid, p.self.Pid)
	}
	if r.SigBlk != "0000000000000000" {
		t.Errorf("%s: blocked signals %s, want none", service, r.SigBlk)
	}
}

// waitFile waits for a file to exist and returns its content.
func waitFile(t *testing.T, path string, timeout time.Duration) string {
	t.Helper()
	var b []byte
	if !waitFor(timeout, func() bool { var err error; b, err = os.ReadFile(path); return err == nil }) {
		t.Fatalf("no %s after %v", path, timeout)
	}
	return string(b)
}

// TestPostfixSpawnBaseline: Postfix's own spawn(8) serves /bin/echo on a
// unix and an inet service with no warning in the log, and logs a
// command's non-zero exit as `warning: command PATH exit status N`.
func TestPostfixSpawnBaseline(t *testing.T) {
	inet := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := newPostfixInstance(t, fmt.Sprintf(`echo unix - n n - 0 spawn
    user=nobody argv=/bin/echo ok
%s inet n n n - 0 spawn
    user=nobody argv=/bin/echo ok
fail unix - n n - 0 spawn
    user=nobody argv=/bin/false
`, inet), "")
	checkEcho(t, p, []string{"private/echo", inet}, "ok\n")
	if got, err := p.talk("private/fail", "", 20*time.Second); err != nil || got != "" {
		t.Errorf("fail: %q, %v", got, err)
	}
	if line, ok := p.waitLog(`postfix/spawn\[\d+\]: warning: command /bin/false exit status 1$`, 10*time.Second); !ok {
		t.Errorf("no exit status warning for /bin/false")
	} else {
		t.Logf("%s", line)
	}
}

// checkEcho connects to each service, expects want, and then expects no
// warning in the log.
func checkEcho(t *testing.T, p *postfixInstance, services []string, want string) {
	t.Helper()
	for _, s := range services {
		if got, err := p.talk(s, "", 20*time.Second); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", s, got, err, want)
		}
	}
	time.Sleep(time.Second) // let the last log records arrive
	if bad := p.problems(); len(bad) > 0 {
		t.Errorf("warnings in the log:\n%s", strings.Join(bad, "\n"))
	}
	t.Logf("maillog:\n%s", p.log())
}

// TestPostfixSpawnTimeLimitBaseline documents Postfix 3.7's bug: spawn(8)
// logs `command time limit exceeded`, but its kill runs with the mail
// owner's uid and fails with EPERM, so the command and its children keep
// running and the client stays connected. The test then kills them itself.
func TestPostfixSpawnTimeLimitBaseline(t *testing.T) {
	m := uniqueMarker()
	p := newPostfixInstance(t, `tl unix - n n - 0 spawn -o tl_time_limit=2
    user=nobody argv=/bin/sh -c { sleep 600.`+m+` & sleep 601.`+m+` }
`, "")
	t.Cleanup(func() {
		for _, pr := range shAndSleeps(m) {
			pr.kill()
		}
	})
	conn, err := p.dial("private/tl")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, ok := p.waitLog(`command time limit exceeded`, 20*time.Second)
	if !ok {
		t.Fatalf("no time limit warning after 20s")
	}
	t.Logf("%s", line)
	time.Sleep(time.Second)
	left := shAndSleeps(m)
	for _, pr := range left {
		t.Logf("still running after the time limit: pid %d: %s", pr.Pid, cmdline(pr.Pid))
	}
	if len(left) != 3 {
		t.Errorf("%d processes of the command still running, want 3 (sh and two sleeps): this Postfix enforces the limit", len(left))
	}
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("client: read %d, %v; want it still connected", n, err)
	}
	for _, pr := range left {
		pr.kill()
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("client after the test killed the command: %v", err)
	}
	if line, ok := p.waitLog(`warning: command /bin/sh killed by signal 9`, 10*time.Second); ok {
		t.Logf("%s", line)
	}
}

// TestPostfixSpawnPolicyBaseline: smtpd's check_policy_service reaches a
// policy program run by Postfix's spawn(8).
func TestPostfixSpawnPolicyBaseline(t *testing.T) {
	checkPolicyService(t, "spawn", "")
}

// checkPolicyService runs a policy program as `policy unix - n n - 0
// COMMAND user=nobody argv=SCRIPT`, named in smtpd_recipient_restrictions,
// and sends mail through the instance's smtpd: with action=REJECT the
// client sees the rejection at RCPT TO, with action=DUNNO the message is
// accepted and delivered (to discard(8)).
func checkPolicyService(t *testing.T, command, daemonDir string) {
	for _, c := range []struct{ name, action string }{
		{"REJECT", "REJECT policy says no"},
		{"DUNNO", "DUNNO"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A policy server as spawn(8) runs one: requests end with an
			// empty line, one answer each, until end of file.
			script := writeScript(t, tempDir(t), "policy", `while IFS= read -r line; do
	[ -n "$line" ] && continue
	printf 'action=`+c.action+`\n\n'
done
`)
			main := "smtpd_recipient_restrictions = check_policy_service unix:private/policy\n"
			if daemonDir != "" {
				main += "daemon_directory = " + daemonDir + "\n"
			}
			p := newPostfixInstance(t, "policy unix - n n - 0 "+command+" user=nobody argv="+script+"\n", main)
			err := p.sendMail("sender@example.com", "rcpt@localhost", "Subject: policy test\r\n\r\nhello\r\n")
			var reply *textproto.Error
			switch {
			case c.name == "REJECT" && errors.As(err, &reply) && strings.HasPrefix(err.Error(), "RCPT TO:"):
				if reply.Code != 554 || !strings.Contains(reply.Msg, "Recipient address rejected: policy says no") {
					t.Errorf("RCPT: %d %s, want 554 ... Recipient address rejected: policy says no", reply.Code, reply.Msg)
				}
				t.Logf("RCPT TO:<rcpt@localhost>: %d %s", reply.Code, reply.Msg)
			case c.name == "REJECT":
				t.Errorf("sending: %v, want a rejection at RCPT TO", err)
			case err != nil:
				t.Errorf("sending: %v, want the message accepted", err)
			default:
				line, ok := p.waitLog(`postfix/discard\[\d+\]: [0-9A-F]+: to=<rcpt@localhost>.* status=sent`, 20*time.Second)
				if !ok {
					t.Errorf("accepted message not delivered to discard(8) within 20s")
				}
				t.Logf("%s", line)
			}
			if bad := p.problems(); len(bad) > 0 {
				t.Errorf("warnings in the log:\n%s", strings.Join(bad, "\n"))
			}
		})
	}
}

// TestPostfixSpawndEcho: a unix and an inet service on 127.0.0.1 running
// /bin/echo ok through spawnd under master(8) answer correctly, and the
// log has no warning.
func TestPostfixSpawndEcho(t *testing.T) {
	dd := spawndDaemonDir(t)
	inet := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := newPostfixInstance(t, fmt.Sprintf(`echo unix - n n - 0 spawnd
    user=nobody argv=/bin/echo ok
%s inet n n n - 0 spawnd
    user=nobody argv=/bin/echo ok
`, inet), "daemon_directory = "+dd)
	checkEcho(t, p, []string{"private/echo", inet, "private/echo", inet}, "ok\n")
	if n := len(p.children("spawnd")); n == 0 {
		t.Errorf("no spawnd among master(8)'s children")
	}
}

// TestPostfixSpawndPolicy: smtpd's check_policy_service reaches a policy
// program run by spawnd.
func TestPostfixSpawndPolicy(t *testing.T) {
	checkPolicyService(t, "spawnd", spawndDaemonDir(t))
}

// TestPostfixSpawndTimeLimit: a time limit set with -o in master.cf kills
// a hanging command and its grandchildren and the client sees end of file,
// where Postfix 3.7's spawn(8) leaves them running
// (TestPostfixSpawnTimeLimitBaseline).
func TestPostfixSpawndTimeLimit(t *testing.T) {
	dd := spawndDaemonDir(t)
	m := uniqueMarker()
	p := newPostfixInstance(t, `tl unix - n n - 0 spawnd -o tl_time_limit=2
    user=nobody argv=/bin/sh -c { sleep 600.`+m+` & sleep 601.`+m+` }
`, "daemon_directory = "+dd)
	t.Cleanup(func() {
		for _, pr := range shAndSleeps(m) {
			pr.kill()
		}
	})
	conn, err := p.dial("private/tl")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(10 * time.Second); !shAndSleepsStarted(m); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not start: %v", shAndSleeps(m))
		}
	}
	sh := livingWithArg("sh", m)
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("client: %v, want end of file after the time limit", err)
	}
	t.Logf("end of file %v after the command started (limit 2s)", time.Since(start).Round(time.Millisecond))
	// spawn(8)'s line, with the command's pid, from the process master(8)
	// forked.
	re := `postfix/spawnd\[(\d+)\]: warning: /bin/sh: process id (\d+): command time limit exceeded$`
	if line, ok := p.waitLog(re, 10*time.Second); !ok {
		t.Errorf("no line matching %s in the log", re)
	} else {
		t.Logf("%s", line)
		f := regexp.MustCompile(re).FindStringSubmatch(line)
		if len(sh) != 1 || f[2] != strconv.Itoa(sh[0].Pid) {
			t.Errorf("process id %s, want the command's (%v)", f[2], sh)
		}
		if pid, _ := strconv.Atoi(f[1]); len(p.children("spawnd")) == 0 || !slices.Contains(p.children("spawnd"), pid) {
			t.Errorf("logged by pid %s, want the spawnd master(8) forked (%v)", f[1], p.children("spawnd"))
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := shAndSleeps(m)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, pr := range left {
				t.Errorf("still running 10s after the client's end of file: pid %d: %s", pr.Pid, cmdline(pr.Pid))
			}
			break
		}
	}
	if lines := p.logLines(`unknown pid|throttling|fatal:|panic:`); len(lines) > 0 {
		t.Errorf("master(8) or spawnd failed:\n%s", strings.Join(lines, "\n"))
	}
}

// TestPostfixSpawndLoad: 500 connections at concurrency 16 through
// master(8), alternating a unix service with maxproc 1 (master passes -l,
// one spawnd carries everything) and an inet service with the default
// maxproc, complete with zero errors; master(8) never logs an unknown pid
// or throttling, and nothing logs a warning.
func TestPostfixSpawndLoad(t *testing.T) {
	dd := spawndDaemonDir(t)
	inet := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := newPostfixInstance(t, fmt.Sprintf(`load unix - n n - 1 spawnd
    user=nobody argv=/bin/echo ok
%s inet n n n - - spawnd
    user=nobody argv=/bin/echo ok
`, inet), "daemon_directory = "+dd)
	const total, workers = 500, 16
	var next, failed atomic.Int32
	var mu sync.Mutex
	var firstErr []string
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < total; i = next.Add(1) - 1 {
				service := "private/load"
				if i%2 == 1 {
					service = inet
				}
				got, err := p.talk(service, "", 30*time.Second)
				if err != nil || got != "ok\n" {
					failed.Add(1)
					mu.Lock()
					if len(firstErr) < 5 {
						firstErr = append(firstErr, fmt.Sprintf("%s: %q, %v", service, got, err))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d connections at concurrency %d in %v", total, workers, time.Since(start).Round(time.Millisecond))
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d connections failed, first: %s", n, total, strings.Join(firstErr, "; "))
	}
	time.Sleep(time.Second) // let the last log records arrive
	if lines := p.logLines(`unknown pid|throttling`); len(lines) > 0 {
		t.Errorf("master(8) logged:\n%s", strings.Join(lines, "\n"))
	}
	if bad := p.problems(); len(bad) > 0 {
		t.Errorf("warnings in the log:\n%s", strings.Join(bad, "\n"))
	}
	if !p.running() || !p.self.alive() {
		t.Errorf("master(8) is gone")
	}
	// For the record (go test -v): what master(8) and spawnd logged.
	t.Logf("master(8) and spawnd logged:\n%s", strings.Join(p.logLines(`postfix\S*/(master|spawnd)\[`), "\n"))
}

// TestPostfixSpawndStop: `postfix stop` while a command runs leaves no
// spawnd, spawnd-listener or command process behind, and the client's
// connection is closed.
func TestPostfixSpawndStop(t *testing.T) {
	dd := spawndDaemonDir(t)
	m := uniqueMarker()
	p := newPostfixInstance(t, `hang unix - n n - 0 spawnd
    user=nobody argv=/bin/sh -c { sleep 600.`+m+` & sleep 601.`+m+` }
`, "daemon_directory = "+dd)
	t.Cleanup(func() {
		for _, pr := range shAndSleeps(m) {
			pr.kill()
		}
	})
	conn, err := p.dial("private/hang")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(10 * time.Second); !shAndSleepsStarted(m); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not start: %v", shAndSleeps(m))
		}
	}
	tree := procTree(p.self.Pid)
	for _, pr := range tree {
		t.Logf("before postfix stop: pid %d: %s", pr.Pid, cmdline(pr.Pid))
	}
	if out, err := p.stop(); err != nil {
		t.Errorf("postfix stop: %v\n%s", err, out)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("client after postfix stop: %v, want end of file", err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var left []procID
		for _, pr := range append(tree, shAndSleeps(m)...) {
			if pr.alive() {
				left = append(left, pr)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, pr := range left {
				t.Errorf("left running 15s after postfix stop: pid %d: %s", pr.Pid, cmdline(pr.Pid))
			}
			break
		}
	}
}

// TestPostfixSpawndFatalLogged: a service line spawnd refuses (user=root)
// is reported where spawn(8) reports it (SPEC section 5): a `fatal:` line
// from postfix/spawnd in the instance's maillog_file, next to master(8)'s
// exit status and throttling lines. spawn(8) logs `fatal: request to
// deliver as root` there.
func TestPostfixSpawndFatalLogged(t *testing.T) {
	dd := spawndDaemonDir(t)
	p := newPostfixInstance(t, "rootuser unix - n n - 0 spawnd user=root argv=/bin/true\n", "daemon_directory = "+dd)
	conn, err := p.dial("private/rootuser")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, ok := p.waitLog(`postfix/master\[\d+\]: warning: \S+/spawnd: bad command startup -- throttling`, 20*time.Second)
	if !ok {
		t.Fatalf("master(8) did not throttle the service within 20s")
	}
	t.Logf("%s", line)
	if line, ok := p.waitLog(`postfix/spawnd\[\d+\]: fatal: .*request to deliver as root`, 5*time.Second); !ok {
		t.Errorf("no `fatal: ... request to deliver as root` from postfix/spawnd in the maillog_file")
	} else {
		t.Logf("%s", line)
	}
}

// TestPostfixSpawndLimits: resource limits and no_new_privileges given
// with -o on master.cf's command line reach the command under master(8).
func TestPostfixSpawndLimits(t *testing.T) {
	dd := spawndDaemonDir(t)
	p := newPostfixInstance(t, `lim unix - n n - 0 spawnd -o command_open_files_limit=32 -o command_no_new_privileges=yes
    user=nobody argv=/bin/sh -c { grep -E '^(Max open files|NoNewPrivs)' /proc/self/limits /proc/self/status }
`, "daemon_directory = "+dd)
	got, err := p.talk("private/lim", "", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`limits:Max open files +32 +32 `).MatchString(got) || !strings.Contains(got, "status:NoNewPrivs:\t1") {
		t.Errorf("command saw:\n%s\nwant open files 32 32 and NoNewPrivs 1", got)
	}
	if bad := p.problems(); len(bad) > 0 {
		t.Errorf("warnings in the log:\n%s", strings.Join(bad, "\n"))
	}
}
