package test

// Issue 4: spawnd serve end to end, driven as an administrator would: a
// configuration directory, the real binaries, real sockets, the maillog.
// Every test names what it checks in its comment; helpers shared with
// faults_test.go, hostile_test.go and soak_test.go are at the end.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestServeEchoTCP: /bin/echo over TCP on 127.0.0.1, with the -v line
// naming the service, the peer, the pid and the status.
func TestServeEchoTCP(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo hello over tcp\n", tcp),
		Args:   []string{"-v"},
		Ready:  []string{"tcp " + tcp},
	})
	conn, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	conn.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || string(b) != "hello over tcp\n" {
		t.Fatalf("got %q, %v; want %q", b, err, "hello over tcp\n")
	}
	re := `service=` + regexp.QuoteMeta(tcp) + ` peer=` + regexp.QuoteMeta(local) + ` pid=\d+ status=exit 0 duration=`
	if _, ok := d.WaitLog(re, 10*time.Second); !ok {
		t.Errorf("no -v line matching %q in:\n%s", re, d.ReadLog())
	}
	logLineShape(t, d)
}

// TestServeEchoUnix: /bin/echo over unix sockets named three ways: an
// absolute path, a name under $queue_directory/private/ (private column
// -) and one under $queue_directory/public/ (private n). Each socket is
// root's with mode 0666 from its bind on (the listener has the
// descriptor; a chown by path would follow a symlink mail_owner put in
// private/, issue 12.1), private/ is 0700 mail_owner.
func TestServeEchoUnix(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	abs := filepath.Join(tempDir(t), "echo.sock")
	d := StartServe(t, Config{
		Master: abs + " unix - n n - - spawnd user=nobody argv=/bin/echo absolute\n" +
			"echopriv unix - n n - - spawnd user=nobody argv=/bin/echo private\n" +
			"echopub unix n n n - - spawnd user=nobody argv=/bin/echo public\n",
		Ready: []string{"unix " + abs},
	})
	queue := filepath.Join(d.Dir, "queue")
	owner := lookupIDs(t, mailOwner())
	for _, c := range []struct{ path, want string }{
		{abs, "absolute\n"},
		{filepath.Join(queue, "private", "echopriv"), "private\n"},
		{filepath.Join(queue, "public", "echopub"), "public\n"},
	} {
		got, err := talkRetry("unix", c.path, "", 20*time.Second)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.path, got, err, c.want)
			continue
		}
		st, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o666 || sys.Uid != 0 {
			t.Errorf("%s: mode %v owner %d:%d, want a socket 0666 root's", c.path, st.Mode(), sys.Uid, sys.Gid)
		}
	}
	st, err := os.Stat(filepath.Join(queue, "private"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); st.Mode().Perm() != 0o700 || sys.Uid != owner.uid {
		t.Errorf("private/: mode %v owner %d, want 0700 %d", st.Mode().Perm(), sys.Uid, owner.uid)
	}
}

// TestServeCommandCredentials: /usr/bin/id shows the service's uid and
// gid and the gid as the only group, for user=nobody (nobody:nogroup, as
// spawn(8) gives) and for user=nobody:GROUP.
func TestServeCommandCredentials(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	plain, other := loopback(t), loopback(t)
	master := fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/usr/bin/id\n", plain)
	group := ""
	for _, g := range []string{"users", "staff", "games"} {
		if out, err := exec.Command("getent", "group", g).Output(); err == nil && len(out) > 0 {
			group = g
			break
		}
	}
	if group != "" {
		master += fmt.Sprintf("%s inet n n n - - spawnd user=nobody:%s argv=/usr/bin/id\n", other, group)
	}
	StartServe(t, Config{Master: master, Ready: []string{"tcp " + plain}})
	got, err := talkRetry("tcp", plain, "", 20*time.Second)
	if want := "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"; err != nil || got != want {
		t.Errorf("user=nobody: got %q, %v; want %q", got, err, want)
	}
	if group == "" {
		t.Logf("no spare group (users, staff, games) for the user=nobody:GROUP case")
		return
	}
	gid := lookupGroup(t, group)
	got, err = talkRetry("tcp", other, "", 20*time.Second)
	if want := fmt.Sprintf("uid=65534(nobody) gid=%d(%s) groups=%d(%s)\n", gid, group, gid, group); err != nil || got != want {
		t.Errorf("user=nobody:%s: got %q, %v; want %q", group, got, err, want)
	}
}

// TestServeCommandEnvironment: /usr/bin/env shows the export_environment
// names taken from spawnd's environment (TZ, MAIL_CONFIG and LANG by
// default) and PATH=/usr/bin:/bin, nothing else: not spawnd's PATH, not
// SECRET; and the secret's value is nowhere in the log.
func TestServeCommandEnvironment(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp, narrow := loopback(t), loopback(t)
	const secret = "s3cr3t-do-not-log"
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/usr/bin/env\n", tcp) +
			fmt.Sprintf("%s inet n n n - - spawnd -o export_environment=TZ user=nobody argv=/usr/bin/env\n", narrow),
		Args:  []string{"-v"},
		Env:   []string{"TZ=Europe/Berlin", "SECRET=" + secret, "MAIL_CONFIG=/etc/postfix", "HOME=/root"},
		Ready: []string{"tcp " + tcp, "tcp " + narrow},
	})
	for _, c := range []struct {
		addr string
		want []string
	}{
		{tcp, []string{"LANG=C", "MAIL_CONFIG=/etc/postfix", "PATH=/usr/bin:/bin", "TZ=Europe/Berlin"}},
		{narrow, []string{"PATH=/usr/bin:/bin", "TZ=Europe/Berlin"}},
	} {
		got, err := talkRetry("tcp", c.addr, "", 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Fields(got)
		sort.Strings(env)
		if strings.Join(env, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: command environment %q, want exactly %q", c.addr, env, c.want)
		}
	}
	if strings.Contains(d.ReadLog(), secret) {
		t.Errorf("the log holds an environment value:\n%s", d.ReadLog())
	}
}

// TestServeCatHalfClose: /bin/cat returns a 1 MiB random payload
// byte for byte after the client half-closes, over TCP and over a unix
// socket.
func TestServeCatHalfClose(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp := loopback(t)
	sock := filepath.Join(tempDir(t), "cat.sock")
	StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/cat\n", tcp) +
			sock + " unix - n n - - spawnd user=nobody argv=/bin/cat\n",
		Ready: []string{"tcp " + tcp, "unix " + sock},
	})
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	for _, ep := range [][2]string{{"tcp", tcp}, {"unix", sock}} {
		got, err := roundTrip(ep[0], ep[1], payload, 60*time.Second)
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%s: cat returned %d bytes (equal %v), %v; want the %d sent", ep[0], len(got), bytes.Equal(got, payload), err, len(payload))
		}
	}
}

// TestServeCommandFds: the command has exactly fds 0, 1 and 2, all the
// same socket. Seen from inside (a shell listing its own descriptors
// through readlink, a child, so that the listing opens nothing in the
// shell) and from outside (/proc of a running command), which also shows
// spawnd's other promises: pid = pgid = sid, no controlling tty, umask
// 077, working directory $queue_directory, signals at their default but
// SIGPIPE and SIGXFSZ ignored, nothing blocked.
func TestServeCommandFds(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	inside, outside := loopback(t), loopback(t)
	m := freshMarker()
	killMarked(t, m)
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sh -c { for f in /proc/$$/fd/*; do echo $f; readlink $f; done }\n", inside) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sleep 30.%s\n", outside, m) + probe,
		Ready: []string{ready},
	})
	got, err := talkRetry("tcp", inside, "", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Lines: a descriptor's name, then its target. The glob opens
	// /proc/$$/fd in the shell while it reads it: that descriptor is gone
	// by the time readlink looks, which then prints nothing. An inherited
	// descriptor would still be there.
	fds := map[string]string{}
	var name string
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if strings.HasPrefix(l, "/proc/") {
			name = filepath.Base(l)
			continue
		}
		if name == "" {
			t.Fatalf("unexpected line %q in:\n%s", l, got)
		}
		fds[name] = l
		name = ""
	}
	checkOnlyClientFds(t, "sh, from inside", fds)

	conn, err := net.Dial("tcp", outside)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if !waitFor(20*time.Second, func() bool { p := aliveWith(m); pid = firstOr0(p); return pid != 0 }) {
		t.Fatal("the sleep command did not start")
	}
	fds = map[string]string{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		fds[e.Name()] = link
	}
	checkOnlyClientFds(t, "sleep, from /proc", fds)
	st := procStatus(pid)
	f := statFields(pid)
	if len(f) < 5 || f[2] != strconv.Itoa(pid) || f[3] != strconv.Itoa(pid) || f[4] != "0" {
		t.Errorf("command pgrp %v sid %v tty %v, want pgrp = sid = pid %d and no tty", f[2], f[3], f[4], pid)
	}
	if st["Umask"] != "0077" {
		t.Errorf("command umask %q, want 0077", st["Umask"])
	}
	// SIGPIPE is 13 and SIGXFSZ 25: bits 12 and 24.
	if st["SigIgn"] != "0000000001001000" || st["SigBlk"] != "0000000000000000" {
		t.Errorf("command SigIgn %s SigBlk %s, want SIGPIPE and SIGXFSZ ignored, none blocked", st["SigIgn"], st["SigBlk"])
	}
	if st["Uid"] != "65534 65534 65534 65534" || st["Groups"] != "65534" || st["CapEff"] != "0000000000000000" {
		t.Errorf("command Uid %q Groups %q CapEff %s", st["Uid"], st["Groups"], st["CapEff"])
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != filepath.Join(d.Dir, "queue") && cwd != "/" {
		t.Errorf("command cwd %q, want %s (or / when it does not exist)", cwd, filepath.Join(d.Dir, "queue"))
	}
}

// checkOnlyClientFds fails unless fds is exactly 0, 1, 2, all one socket.
func checkOnlyClientFds(t *testing.T, who string, fds map[string]string) {
	t.Helper()
	if len(fds) != 3 || fds["0"] == "" || fds["0"] != fds["1"] || fds["1"] != fds["2"] || !strings.HasPrefix(fds["0"], "socket:[") {
		t.Errorf("%s: descriptors %v, want exactly 0, 1, 2, one socket", who, fds)
	}
}

// TestServeListenerCredentials: the listener runs as mail_owner (real,
// effective, saved and filesystem ids) with no supplementary groups and
// no capabilities, and is the executor's child.
func TestServeListenerCredentials(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", tcp),
		Ready:  []string{"tcp " + tcp},
	})
	if got, err := talkRetry("tcp", tcp, "", 20*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	l := d.Listener()
	if l == 0 {
		t.Fatal("no spawnd-listener child of the executor")
	}
	owner := lookupIDs(t, mailOwner())
	st := procStatus(l)
	u, g := strconv.Itoa(int(owner.uid)), strconv.Itoa(int(owner.gid))
	if st["Uid"] != strings.Repeat(u+" ", 3)+u || st["Gid"] != strings.Repeat(g+" ", 3)+g {
		t.Errorf("listener Uid %q Gid %q, want all %s and %s", st["Uid"], st["Gid"], u, g)
	}
	if st["Groups"] != "" {
		t.Errorf("listener Groups %q, want none", st["Groups"])
	}
	if st["CapEff"] != "0000000000000000" || st["CapPrm"] != "0000000000000000" {
		t.Errorf("listener CapEff %s CapPrm %s, want none", st["CapEff"], st["CapPrm"])
	}
	if st := procStatus(d.Pid()); !strings.HasPrefix(st["Uid"], "0 ") {
		t.Errorf("executor Uid %q, want root", st["Uid"])
	}
}

// TestServeOnlyListenerAccepts: strace follows every thread of the
// executor (and whatever it forks) while connections are served: it sees
// the executor's recvmsg calls, which shows the trace works, and no accept.
func TestServeOnlyListenerAccepts(t *testing.T) {
	requireRoot(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed: cannot trace the executor's system calls")
	}
	t.Parallel()
	tcp := loopback(t)
	sock := filepath.Join(tempDir(t), "acc.sock")
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", tcp) +
			sock + " unix - n n - - spawnd user=nobody argv=/bin/echo ok\n",
		Ready: []string{"tcp " + tcp, "unix " + sock},
	})
	talkRetry("tcp", tcp, "", 20*time.Second)
	var out syncBuffer
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=accept,accept4,recvmsg", "-p", strconv.Itoa(d.Pid()))
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	waitTraced(t, d.Pid(), cmd.Process.Pid)
	for i := 0; i < 6; i++ {
		network, addr := "tcp", tcp
		if i%2 == 1 {
			network, addr = "unix", sock
		}
		if got, err := Talk(network, addr, "", 20*time.Second); err != nil || got != "ok\n" {
			t.Fatalf("%s: got %q, %v", network, got, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	s := out.String()
	if !strings.Contains(s, "recvmsg(") {
		t.Fatalf("the trace saw no recvmsg, so it proves nothing:\n%s", s)
	}
	if strings.Contains(s, "accept(") || strings.Contains(s, "accept4(") {
		t.Fatalf("the executor (or a child) called accept:\n%s", s)
	}
}

// TestServeMaxprocFour: maxproc 4, 16 clients of a one-second command:
// all 16 are served and at no moment do more than 4 run. Counted twice:
// start and end stamps the commands append to a file, and the sleeps
// found in /proc every 10 ms. 16 one-second commands four at a time also
// take at least four seconds.
func TestServeMaxprocFour(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp := loopback(t)
	m := freshMarker()
	killMarked(t, m)
	dir := tempDir(t)
	stamps := filepath.Join(dir, "stamps")
	os.Mkdir(stamps, 0o777)
	os.Chmod(stamps, 0o777)
	script := writeScript(t, dir, "one-second", fmt.Sprintf(
		"echo \"s $(date +%%s%%N)\" >> %[1]s/log\nsleep 1.%[2]s\necho \"e $(date +%%s%%N)\" >> %[1]s/log\necho done\n", stamps, m))
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - 4 spawnd user=nobody argv=%s\n", tcp, script) + probe,
		Ready:  []string{ready},
	})
	var peak atomic.Int32
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if n := int32(len(aliveWith(m))); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	start := time.Now()
	var served atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := Talk("tcp", tcp, "", 60*time.Second); err == nil && got == "done\n" {
				served.Add(1)
			} else {
				t.Errorf("client: %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	<-sampled
	b, _ := os.ReadFile(filepath.Join(stamps, "log"))
	stampPeak, starts := overlap(string(b))
	t.Logf("served %d in %v; peak running: %d by /proc, %d by stamps", served.Load(), took, peak.Load(), stampPeak)
	if served.Load() != 16 || starts != 16 {
		t.Errorf("served %d of 16, %d commands started", served.Load(), starts)
	}
	if peak.Load() > 4 || stampPeak > 4 {
		t.Errorf("more than 4 ran at once: %d by /proc, %d by stamps", peak.Load(), stampPeak)
	}
	if stampPeak < 2 {
		t.Errorf("peak %d by stamps: the limit of 4 was never used", stampPeak)
	}
	if took < 3900*time.Millisecond {
		t.Errorf("16 one-second commands took %v: more than 4 at a time", took)
	}
	if _, ok := d.WaitLog(`warning:`, 0); ok {
		t.Errorf("warnings logged:\n%s", d.ReadLog())
	}
}

// overlap returns the most intervals open at once in "s NANOS" / "e
// NANOS" lines, and the number of starts.
func overlap(log string) (peak, starts int) {
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, l := range strings.Split(log, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		if f[0] == "s" {
			evs = append(evs, ev{n, 1})
			starts++
		} else {
			evs = append(evs, ev{n, -1})
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta // an end before a start at the same instant
	})
	cur := 0
	for _, e := range evs {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak, starts
}

// TestServeTimeLimitKillsGroup: tl_time_limit = 1s in main.cf. The
// command (pid reported to the client) starts a background grandchild
// and waits; at the limit the command and the grandchild are gone, the
// client sees end of file, and the log has spawn(8)'s warning with that
// pid and the -v status "time limit".
func TestServeTimeLimitKillsGroup(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := freshMarker()
	killMarked(t, m)
	dir := tempDir(t)
	script := writeScript(t, dir, "slow", fmt.Sprintf("echo $$\nsleep 60.%[1]s &\nsleep 61.%[1]s\necho not killed\n", m))
	d := StartServe(t, Config{
		Main:   "tl_time_limit = 1s",
		Master: "tl unix - n n - - spawnd user=nobody argv=" + script + "\n",
		Args:   []string{"-v"},
	})
	sock := filepath.Join(d.Dir, "queue", "private", "tl")
	start := time.Now()
	got, err := talkRetry("unix", sock, "", 30*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("client: %v (after %v)", err, took)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(got))
	if pid == 0 || strings.Contains(got, "not killed") {
		t.Fatalf("client got %q", got)
	}
	if took > 10*time.Second {
		t.Errorf("end of file after %v with a 1s limit", took)
	}
	if _, ok := d.WaitLog(fmt.Sprintf(`warning: %s: process id %d: command time limit exceeded`, regexp.QuoteMeta(script), pid), 10*time.Second); !ok {
		t.Errorf("no time limit warning for pid %d in:\n%s", pid, d.ReadLog())
	}
	if _, ok := d.WaitLog(fmt.Sprintf(`service=tl peer=unix pid=%d status=time limit`, pid), 10*time.Second); !ok {
		t.Errorf("no -v time limit line for pid %d in:\n%s", pid, d.ReadLog())
	}
	if !waitFor(10*time.Second, func() bool { return len(aliveWith(m)) == 0 && !alive(pid) }) {
		t.Errorf("still running after the time limit: command %d alive %v, marked %v", pid, alive(pid), aliveWith(m))
	}
}

// TestServeTimeLimitForms: the three ways to give a service a time limit
// (main.cf NAME_time_limit, -o NAME_time_limit, -o command_time_limit)
// each end a 30-second command after about a second, with a Postfix time
// unit or without.
func TestServeTimeLimitForms(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := freshMarker()
	killMarked(t, m)
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Main: "tla_time_limit = 1s",
		Master: fmt.Sprintf("tla unix - n n - - spawnd user=nobody argv=/bin/sleep 30.%s\n", m) +
			fmt.Sprintf("tlb unix - n n - - spawnd -o tlb_time_limit=1 user=nobody argv=/bin/sleep 31.%s\n", m) +
			fmt.Sprintf("tlc unix - n n - - spawnd -o command_time_limit=1s user=nobody argv=/bin/sleep 32.%s\n", m) + probe,
		Ready: []string{ready},
	})
	var wg sync.WaitGroup
	for _, name := range []string{"tla", "tlb", "tlc"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			got, err := Talk("unix", filepath.Join(d.Dir, "queue", "private", name), "", 40*time.Second)
			if took := time.Since(start); err != nil || got != "" || took > 10*time.Second {
				t.Errorf("%s: %q, %v after %v; want end of file after about 1s", name, got, err, took)
			}
		}()
	}
	wg.Wait()
	if !waitFor(10*time.Second, func() bool { return strings.Count(d.ReadLog(), "command time limit exceeded") == 3 }) {
		t.Errorf("want 3 time limit warnings:\n%s", d.ReadLog())
	}
}

// TestServePeerEnvironment: with -o peer_environment=yes (or
// NAME_peer_environment = yes in main.cf) the command also gets the
// UCSPI-style peer variables, taken from the connection: for TCP the
// client's and the server's address and port, for a unix socket the
// client's uid, gid and pid (this test process, as root). Without it, none.
func TestServePeerEnvironment(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp, plain := loopback(t), loopback(t)
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Main: "peerunix_peer_environment = yes",
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o peer_environment=yes user=nobody argv=/usr/bin/env\n", tcp) +
			"peerunix unix - n n - - spawnd user=nobody argv=/usr/bin/env\n" +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/usr/bin/env\n", plain) + probe,
		Ready: []string{ready},
	})
	envOf := func(s string) map[string]string {
		out := map[string]string{}
		for _, l := range strings.Fields(s) {
			k, v, _ := strings.Cut(l, "=")
			out[k] = v
		}
		return out
	}
	conn, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().(*net.TCPAddr)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	conn.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(conn)
	conn.Close()
	_, port, _ := net.SplitHostPort(tcp)
	env := envOf(string(b))
	for k, v := range map[string]string{"PROTO": "TCP", "TCPREMOTEIP": "127.0.0.1", "TCPREMOTEPORT": strconv.Itoa(local.Port),
		"TCPLOCALIP": "127.0.0.1", "TCPLOCALPORT": port, "PATH": "/usr/bin:/bin"} {
		if env[k] != v {
			t.Errorf("tcp: %s=%q, want %q (environment %v)", k, env[k], v, env)
		}
	}
	got, err := talkRetry("unix", filepath.Join(d.Dir, "queue", "private", "peerunix"), "", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	env = envOf(got)
	for k, v := range map[string]string{"PROTO": "UNIX", "UNIXREMOTEUID": "0", "UNIXREMOTEGID": "0", "UNIXREMOTEPID": strconv.Itoa(os.Getpid())} {
		if env[k] != v {
			t.Errorf("unix: %s=%q, want %q (environment %v)", k, env[k], v, env)
		}
	}
	got, err = talkRetry("tcp", plain, "", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for k := range envOf(got) {
		if k == "PROTO" || strings.HasPrefix(k, "TCP") || strings.HasPrefix(k, "UNIX") {
			t.Errorf("without peer_environment the command got %s", k)
		}
	}
}

// TestServeExitStatusLogged3: `exit 3` is logged as spawn(8) logs it, a
// command killed by a signal too, and -v gives their status.
func TestServeExitStatusLogged3(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	three, signalled := loopback(t), loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sh -c { exit 3 }\n", three) +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sh -c { kill -USR1 $$ }\n", signalled),
		Args:  []string{"-v"},
		Ready: []string{"tcp " + three, "tcp " + signalled},
	})
	if got, err := Talk("tcp", three, "", 20*time.Second); err != nil || got != "" {
		t.Errorf("exit 3: got %q, %v", got, err)
	}
	if got, err := Talk("tcp", signalled, "", 20*time.Second); err != nil || got != "" {
		t.Errorf("kill -USR1: got %q, %v", got, err)
	}
	for _, re := range []string{
		`postfix/spawnd\[\d+\]: warning: command /bin/sh exit status 3\n`,
		`service=` + regexp.QuoteMeta(three) + ` peer=127\.0\.0\.1:\d+ pid=\d+ status=exit 3 `,
		`postfix/spawnd\[\d+\]: warning: command /bin/sh killed by signal 10\n`,
		`service=` + regexp.QuoteMeta(signalled) + ` peer=127\.0\.0\.1:\d+ pid=\d+ status=signal 10 `,
	} {
		if _, ok := d.WaitLog(re, 10*time.Second); !ok {
			t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
		}
	}
}

// TestServeListenerRestart: kill -9 of the listener. The same executor
// (same pid) logs it and starts a new listener (as mail_owner again) after
// its first back-off; a connection made while no listener ran waits in
// the backlog of the socket the executor kept and is served.
func TestServeListenerRestart(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp := loopback(t)
	sock := filepath.Join(tempDir(t), "r.sock")
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", tcp) +
			sock + " unix - n n - - spawnd user=nobody argv=/bin/echo unix ok\n",
		Ready: []string{"tcp " + tcp, "unix " + sock},
	})
	if got, err := talkRetry("tcp", tcp, "", 20*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	pid, old := d.Pid(), d.Listener()
	if old == 0 {
		t.Fatal("no listener")
	}
	syscall.Kill(old, syscall.SIGKILL)
	// Straight away, most likely before the new listener runs.
	early := make(chan string, 2)
	go func() { s, err := Talk("tcp", tcp, "", 20*time.Second); early <- fmt.Sprint(s, err) }()
	go func() { s, err := Talk("unix", sock, "", 20*time.Second); early <- fmt.Sprint(s, err) }()
	var nl int
	if !waitFor(5*time.Second, func() bool { nl = d.Listener(); return nl != 0 && nl != old }) {
		t.Fatalf("no new listener within 5s:\n%s", d.ReadLog())
	}
	for i := 0; i < 2; i++ {
		if s := <-early; s != "ok\n<nil>" && s != "unix ok\n<nil>" {
			t.Errorf("connection made during the restart: %q", s)
		}
	}
	if d.Pid() != pid || !alive(pid) {
		t.Errorf("executor changed or died")
	}
	if got, err := Talk("unix", sock, "", 20*time.Second); err != nil || got != "unix ok\n" {
		t.Errorf("after the restart: %q, %v", got, err)
	}
	for _, re := range []string{
		fmt.Sprintf(`warning: listener pid %d killed by signal 9`, old),
		`warning: restarting the listener in 100ms`,
	} {
		if _, ok := d.WaitLog(re, 5*time.Second); !ok {
			t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
		}
	}
	owner := lookupIDs(t, mailOwner())
	if st := procStatus(nl); !strings.HasPrefix(st["Uid"], strconv.Itoa(int(owner.uid))+" ") || st["Groups"] != "" {
		t.Errorf("new listener Uid %q Groups %q", st["Uid"], st["Groups"])
	}
	if z := Zombies(pid); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

// TestServeTermDeliversOutput: SIGTERM while a command runs: the command
// finishes and its output reaches the client, a connection made after the
// signal is not served a command (and does not hang), spawnd exits 0,
// removes its unix socket, leaves no listener and frees the TCP port.
func TestServeTermDeliversOutput(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := freshMarker()
	killMarked(t, m)
	tcp := loopback(t)
	dir := tempDir(t)
	sock := filepath.Join(dir, "term.sock")
	ran := filepath.Join(dir, "ran")
	os.Mkdir(ran, 0o777)
	os.Chmod(ran, 0o777)
	script := writeScript(t, dir, "late", fmt.Sprintf("touch %s/$$\nsleep 2.%s\necho late\n", ran, m))
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: sock + " unix - n n - - spawnd user=nobody argv=" + script + "\n" +
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=%s\n", tcp, script) + probe,
		Ready: []string{ready},
	})
	got := make(chan string, 1)
	go func() { s, err := Talk("unix", sock, "", 30*time.Second); got <- fmt.Sprint(s, err) }()
	if !waitFor(20*time.Second, func() bool { return len(aliveWith(m)) == 1 }) {
		t.Fatal("the command did not start")
	}
	lpid := d.Listener()
	d.Signal(syscall.SIGTERM)
	// SIGTERM ends the listener first: a connection made after that is
	// made after SIGTERM took effect.
	if !waitFor(10*time.Second, func() bool { return !alive(lpid) }) {
		t.Fatalf("listener %d still running 10s after SIGTERM", lpid)
	}
	after := make(chan string, 1)
	go func() { s, err := Talk("tcp", tcp, "", 30*time.Second); after <- fmt.Sprint(s, err) }()
	if s := <-got; s != "late\n<nil>" {
		t.Errorf("client of the running command got %q, want its output", s)
	}
	err, ok := d.Wait(20 * time.Second)
	if !ok {
		t.Fatalf("spawnd still running 20s after SIGTERM:\n%s", d.ReadLog())
	}
	if err != nil {
		t.Errorf("spawnd exited with %v, want 0", err)
	}
	select {
	case s := <-after:
		if strings.Contains(s, "late") {
			t.Errorf("a connection made after SIGTERM was served: %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("a connection made after SIGTERM hangs after spawnd exited")
	}
	if ents, _ := os.ReadDir(ran); len(ents) != 1 {
		t.Errorf("%d commands ran, want the 1 started before SIGTERM", len(ents))
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unix socket %s left behind: %v", sock, err)
	}
	if lpid != 0 && alive(lpid) {
		t.Errorf("listener %d still running", lpid)
	}
	if l, err := net.Listen("tcp", tcp); err != nil {
		t.Errorf("TCP port still taken: %v", err)
	} else {
		l.Close()
	}
}

// TestServeHupBrokenConfig: SIGHUP with a broken master.cf: the warning
// names the error, the old configuration keeps serving with the same
// executor and listener, and the broken file is never served.
func TestServeHupBrokenConfig(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tcp := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo old\n", tcp),
		Ready:  []string{"tcp " + tcp},
	})
	if got, err := talkRetry("tcp", tcp, "", 20*time.Second); err != nil || got != "old\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	pid, lpid := d.Pid(), d.Listener()
	broken := fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo new\nbad unix - n n - - spawnd usr=nobody argv=/bin/true\n", tcp)
	os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(broken), 0o644)
	d.Signal(syscall.SIGHUP)
	re := `warning: reload: keeping the old configuration: .*master\.cf: line 2: service bad: unknown attribute name: usr=nobody`
	if _, ok := d.WaitLog(re, 10*time.Second); !ok {
		t.Fatalf("no line matching %q in:\n%s", re, d.ReadLog())
	}
	for i := 0; i < 3; i++ {
		if got, err := Talk("tcp", tcp, "", 20*time.Second); err != nil || got != "old\n" {
			t.Errorf("after the refused reload: %q, %v", got, err)
		}
	}
	if d.Pid() != pid || !alive(pid) || d.Listener() != lpid {
		t.Errorf("executor %d -> %d (alive %v), listener %d -> %d", pid, d.Pid(), alive(pid), lpid, d.Listener())
	}
	// A main.cf error too.
	os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(strings.SplitAfter(broken, "\n")[0]), 0o644)
	mainCF, _ := os.ReadFile(filepath.Join(d.Dir, "main.cf"))
	os.WriteFile(filepath.Join(d.Dir, "main.cf"), append(mainCF, "command_time_limit = soon\n"...), 0o644)
	n := strings.Count(d.ReadLog(), "keeping the old configuration")
	d.Signal(syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return strings.Count(d.ReadLog(), "keeping the old configuration") > n }) {
		t.Fatalf("bad main.cf not refused:\n%s", d.ReadLog())
	}
	if got, err := Talk("tcp", tcp, "", 20*time.Second); err != nil || got != "old\n" {
		t.Errorf("after the second refused reload: %q, %v", got, err)
	}
}

// TestServeHupNewConfig: SIGHUP with a valid changed configuration: the
// same pid serves the new command and a new service, and a command
// running across the reload still delivers its output.
func TestServeHupNewConfig(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := freshMarker()
	killMarked(t, m)
	tcp, added, slow := loopback(t), loopback(t), loopback(t)
	slowLine := fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/sh -c { sleep 2.%s; echo survived }\n", slow, m)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo one\n", tcp) + slowLine,
		Ready:  []string{"tcp " + tcp},
	})
	if got, err := talkRetry("tcp", tcp, "", 20*time.Second); err != nil || got != "one\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	inflight := make(chan string, 1)
	go func() { s, err := Talk("tcp", slow, "", 30*time.Second); inflight <- fmt.Sprint(s, err) }()
	if !waitFor(20*time.Second, func() bool { return len(aliveWith(m)) > 0 }) {
		t.Fatal("the slow command did not start")
	}
	pid := d.Pid()
	os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(
		fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo two\n", tcp)+slowLine+
			fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo added\n", added)), 0o644)
	d.Signal(syscall.SIGHUP)
	if !waitFor(20*time.Second, func() bool { got, _ := Talk("tcp", tcp, "", 5*time.Second); return got == "two\n" }) {
		t.Fatalf("new configuration not served:\n%s", d.ReadLog())
	}
	if got, err := talkRetry("tcp", added, "", 20*time.Second); err != nil || got != "added\n" {
		t.Errorf("added service: %q, %v", got, err)
	}
	if d.Pid() != pid || !alive(pid) {
		t.Errorf("pid changed or spawnd exited on reload")
	}
	if s := <-inflight; s != "survived\n<nil>" {
		t.Errorf("command running across the reload: client got %q", s)
	}
	if _, ok := d.WaitLog(`reload: configuration is valid`, 5*time.Second); !ok {
		t.Errorf("reload not logged:\n%s", d.ReadLog())
	}
}

// TestServeHupKeepsTimeLimit: a command started before a reload is still
// held to its time limit after it: the reloaded executor is the same
// process and the command still its child.
func TestServeHupKeepsTimeLimit(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := freshMarker()
	killMarked(t, m)
	tcp, other := loopback(t), loopback(t)
	master := fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=3 user=nobody argv=/bin/sleep 60.%s\n", tcp, m)
	probe, ready := probeService(t)
	master += probe
	d := StartServe(t, Config{Master: master, Ready: []string{ready}})
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		Talk("tcp", tcp, "", 60*time.Second)
		done <- time.Since(start)
	}()
	if !waitFor(20*time.Second, func() bool { return len(aliveWith(m)) == 1 }) {
		t.Fatal("the command did not start")
	}
	os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(master+fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo x\n", other)), 0o644)
	d.Signal(syscall.SIGHUP)
	if _, err := talkRetry("tcp", other, "", 20*time.Second); err != nil {
		t.Fatalf("reload not served: %v\n%s", err, d.ReadLog())
	}
	select {
	case took := <-done:
		if took > 20*time.Second {
			t.Errorf("client saw end of file after %v, limit 3s", took)
		}
	case <-time.After(25 * time.Second):
		t.Errorf("a command started before the reload outlived its 3s time limit by 20s (still running: %v)\n%s", aliveWith(m), d.ReadLog())
	}
	// The client's end of file comes with the SIGKILL, which takes a
	// moment to end the process.
	if n := aliveWith(m); !waitFor(5*time.Second, func() bool { n = aliveWith(m); return len(n) == 0 }) {
		t.Errorf("command still running: %v", n)
	}
}

// TestServeHupDoesNotStall: reloads while a long command runs serve the
// new configuration at once, as postfix reload does: new connections do
// not wait in the backlog for the command, which goes on under the old
// configuration's time limit (8s, raised to 60s by the first reload) even
// after the second reload removed its service; it is killed at that
// limit, its result logged once, by the executor, and nothing of it stays
// open in the same spawnd process.
func TestServeHupDoesNotStall(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := freshMarker()
	killMarked(t, m)
	tcp, slow := loopback(t), loopback(t)
	slowLine := func(limit int) string {
		return fmt.Sprintf("%s inet n n n - - spawnd -o command_time_limit=%d user=nobody argv=/bin/sleep 30.%s\n", slow, limit, m)
	}
	echo := func(word string) string {
		return fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo %s\n", tcp, word)
	}
	d := StartServe(t, Config{Master: echo("one") + slowLine(8), Args: []string{"-v"}, Ready: []string{"tcp " + tcp}})
	if got, err := talkRetry("tcp", tcp, "", 20*time.Second); err != nil || got != "one\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	pid := d.Pid()
	waitQuiet(d, 5*time.Second)
	base := countFds(pid)
	took := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		Talk("tcp", slow, "", 60*time.Second)
		took <- time.Since(start)
	}()
	var cmd []int
	if !waitFor(20*time.Second, func() bool { cmd = aliveWith(m); return len(cmd) == 1 }) {
		t.Fatal("the slow command did not start")
	}
	for i, word := range []string{"two", "three"} {
		conf := echo(word)
		if i == 0 {
			conf += slowLine(60)
		}
		os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(conf), 0o644)
		d.Signal(syscall.SIGHUP)
		start := time.Now()
		if !waitFor(20*time.Second, func() bool { return strings.Count(d.ReadLog(), "reload: configuration is valid") > i }) {
			t.Fatalf("reload %d not logged:\n%s", i+1, d.ReadLog())
		}
		var got string
		waitFor(20*time.Second, func() bool { got, _ = Talk("tcp", tcp, "", 5*time.Second); return got == word+"\n" })
		if took := time.Since(start); got != word+"\n" || took > 5*time.Second {
			t.Errorf("reload %d: %q %v after SIGHUP, want %q at once: the reload waited for the running command", i+1, got, took, word)
		}
	}
	if !alive(cmd[0]) {
		t.Errorf("the command running across the reloads died with them")
	}
	select {
	case took := <-took:
		if took < 7*time.Second || took > 15*time.Second {
			t.Errorf("slow client saw end of file after %v, want its old limit of 8s", took)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the command outlived its time limit: %v\n%s", aliveWith(m), d.ReadLog())
	}
	want := fmt.Sprintf("warning: /bin/sleep: process id %d: command time limit exceeded", cmd[0])
	verbose := fmt.Sprintf("service=%s peer=unknown pid=%d status=time limit", slow, cmd[0])
	if !waitFor(5*time.Second, func() bool { return strings.Contains(d.ReadLog(), verbose) }) ||
		strings.Count(d.ReadLog(), want) != 1 || strings.Count(d.ReadLog(), verbose) != 1 {
		t.Errorf("want %q and %q once each in:\n%s", want, verbose, d.ReadLog())
	}
	if d.Pid() != pid || !alive(pid) {
		t.Errorf("spawnd %d is gone", pid)
	}
	if n := settleFds(pid, base); n > base {
		t.Errorf("executor descriptors %d -> %d: %s", base, n, fdList(pid))
	}
	if z := Zombies(pid); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	if strings.Contains(d.ReadLog(), "not taking over") {
		t.Errorf("a command was refused at the hand-over:\n%s", d.ReadLog())
	}
}

// TestServeLoad3000: 3,000 connections at concurrency 32, half over TCP,
// half over a unix socket: zero errors, one -v line each, no warning, the
// same listener throughout, no growth in the executor's or the listener's
// descriptors, no zombies.
func TestServeLoad3000(t *testing.T) {
	requireRoot(t)
	tcp := loopback(t)
	sock := filepath.Join(tempDir(t), "load.sock")
	probe, ready := probeService(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/echo ok\n", tcp) +
			sock + " unix - n n - 0 spawnd user=nobody argv=/bin/echo ok\n" + probe,
		Args:  []string{"-v"},
		Ready: []string{ready},
	})
	job := func(i int) error {
		network, addr := "tcp", tcp
		if i%2 == 1 {
			network, addr = "unix", sock
		}
		got, err := Talk(network, addr, "", 30*time.Second)
		if err == nil && got != "ok\n" {
			err = fmt.Errorf("got %q", got)
		}
		return err
	}
	talkRetry("tcp", tcp, "", 20*time.Second)
	talkRetry("unix", sock, "", 20*time.Second)
	// A warm-up, so that what each process opens once (the Go runtime's
	// own poller, for one) is in the baseline.
	if res := load(200, 32, time.Minute, job); res.failed > 0 {
		t.Fatalf("warm-up: %d of %d failed, first: %v", res.failed, res.done, res.first)
	}
	lpid := d.Listener()
	waitQuiet(d, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	efd, lfd := countFds(d.Pid()), countFds(lpid)
	res := load(3000, 32, 4*time.Minute, job)
	t.Logf("%d connections in %v (%.0f/s), %d failed", res.done, res.took, float64(res.done)/res.took.Seconds(), res.failed)
	if res.done != 3000 || res.failed != 0 {
		t.Fatalf("%d of 3000 done, %d failed, first error: %v", res.done, res.failed, res.first)
	}
	waitQuiet(d, 10*time.Second)
	if e, l := settleFds(d.Pid(), efd), settleFds(lpid, lfd); e > efd || l > lfd {
		t.Errorf("descriptors grew: executor %d -> %d, listener %d -> %d\nexecutor: %s\nlistener: %s",
			efd, e, lfd, l, fdList(d.Pid()), fdList(lpid))
	}
	if z := Zombies(d.Pid()); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	if d.Listener() != lpid {
		t.Errorf("listener changed during the load: %d -> %d", lpid, d.Listener())
	}
	log := d.ReadLog()
	if n := strings.Count(log, "status=exit 0"); n < 3202 {
		t.Errorf("%d -v lines with status=exit 0, want 3202", n)
	}
	if w := regexp.MustCompile(`.*warning:.*`).FindAllString(log, 10); len(w) > 0 {
		t.Errorf("warnings logged:\n%s", strings.Join(w, "\n"))
	}
}

// ---- helpers shared by serve_test.go, faults_test.go, hostile_test.go and soak_test.go

var markerSeq atomic.Int64

// freshMarker returns a string of digits no other process's argument holds:
// it goes into a command's arguments (sleep 30.MARKER) so that the test
// finds, and cleans up, whatever escaped.
func freshMarker() string {
	return fmt.Sprintf("%d%d%05d", 90+os.Getpid()%10, os.Getpid(), markerSeq.Add(1))
}

// killMarked kills, at cleanup, every process whose arguments hold marker.
func killMarked(t testing.TB, marker string) {
	t.Cleanup(func() {
		for i := 0; i < 3; i++ {
			pids := ProcsWithArg(marker)
			if len(pids) == 0 {
				return
			}
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// aliveWith returns the processes, zombies excepted, whose arguments hold
// marker.
func aliveWith(marker string) []int {
	var out []int
	for _, pid := range ProcsWithArg(marker) {
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	f := statFields(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func firstOr0(pids []int) int {
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}

// probeService returns a master.cf line for an echo service on a fresh
// port and its Ready entry: StartServe's readiness check connects, which
// runs the command; a test that counts its commands waits on this one
// instead (spawnd opens every socket before it serves any).
func probeService(t testing.TB) (line, ready string) {
	addr := loopback(t)
	return fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/true\n", addr), "tcp " + addr
}

// loopback returns "127.0.0.1:PORT" for a port that was free.
func loopback(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// talkRetry is Talk, tried again while the endpoint does not exist yet or
// refuses, until timeout.
func talkRetry(network, addr, input string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := Talk(network, addr, input, time.Until(deadline))
		if err == nil || time.Now().After(deadline) || !(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)) {
			return got, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// roundTrip sends payload, half-closes and returns everything read, with
// reading and writing at once.
func roundTrip(network, addr string, payload []byte, timeout time.Duration) ([]byte, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	b, err := io.ReadAll(conn)
	if e := <-werr; err == nil {
		err = e
	}
	return b, err
}

// countFds is OpenFds without two epoll and eventfd pairs: the process's
// own and the Go runtime's poller, which the runtime opens the first time
// it needs a timer; in the listener that may be the first time the
// garbage collector's scavenger sleeps, after thousands of connections.
// A third pair counts.
func countFds(pid int) int {
	n, polls := 0, 0
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		switch link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); link {
		case "anon_inode:[eventpoll]", "anon_inode:[eventfd]":
			polls++
		default:
			n++
		}
	}
	return n + max(polls, 4) - 4
}

// settleFds waits up to five seconds for pid to hold at most want
// descriptors by countFds (a result may still be on its way) and returns
// the count.
func settleFds(pid, want int) int {
	n := countFds(pid)
	waitFor(5*time.Second, func() bool { n = countFds(pid); return n <= want })
	return n
}

// fdList describes pid's descriptors, for messages.
func fdList(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+"="+link)
	}
	return strings.Join(out, " ")
}

// procStatus returns /proc/pid/status as a map, values with their blanks
// squeezed.
func procStatus(pid int) map[string]string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// cpuTicks returns pid's user plus system time in clock ticks (1/100 s).
func cpuTicks(pid int) int {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// rssKiB returns pid's resident set size in KiB.
func rssKiB(pid int) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(procStatus(pid)["VmRSS"], " kB"))
	return n
}

type ids struct{ uid, gid uint32 }

// lookupIDs returns a user's uid and primary gid.
func lookupIDs(t testing.TB, name string) ids {
	t.Helper()
	u, err1 := exec.Command("id", "-u", name).Output()
	g, err2 := exec.Command("id", "-g", name).Output()
	if err1 != nil || err2 != nil {
		t.Fatalf("id %s: %v %v", name, err1, err2)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(u)))
	gid, _ := strconv.Atoi(strings.TrimSpace(string(g)))
	return ids{uint32(uid), uint32(gid)}
}

// lookupGroup returns a group's gid.
func lookupGroup(t testing.TB, name string) int {
	t.Helper()
	out, err := exec.Command("getent", "group", name).Output()
	f := strings.Split(string(out), ":")
	if err != nil || len(f) < 3 {
		t.Fatalf("getent group %s: %v", name, err)
	}
	gid, _ := strconv.Atoi(f[2])
	return gid
}

// commands returns the executor's children other than the listener.
func commands(d *Daemon) []int {
	var out []int
	l := d.Listener()
	for _, pid := range Children(d.Pid()) {
		if pid != l && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// waitQuiet waits until the executor runs no command, so that descriptor
// counts are comparable.
func waitQuiet(d *Daemon, timeout time.Duration) bool {
	return waitFor(timeout, func() bool { return len(commands(d)) == 0 })
}

// loadResult is what load measured.
type loadResult struct {
	done, failed int
	first        error
	took         time.Duration
}

// load runs job(i) for i < n with c workers, stopping early at the time
// limit, and counts the failures.
func load(n, c int, limit time.Duration, job func(i int) error) loadResult {
	var done, failed atomic.Int64
	var first atomic.Value
	next := atomic.Int64{}
	deadline := time.Now().Add(limit)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := job(i); err != nil {
					if failed.Add(1) == 1 {
						first.Store(fmt.Errorf("job %d: %w", i, err))
					}
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	r := loadResult{done: int(done.Load()), failed: int(failed.Load()), took: time.Since(start)}
	if e, ok := first.Load().(error); ok {
		r.first = e
	}
	return r
}

// logLineShape checks that every maillog line has Postfix's shape:
// "Mon DD HH:MM:SS host postfix/spawnd[pid]: text".
func logLineShape(t *testing.T, d *Daemon) {
	t.Helper()
	re := regexp.MustCompile(`^[A-Z][a-z]{2} [0-3]\d \d\d:\d\d:\d\d \S+ postfix/spawnd\[\d+\]: \S`)
	for _, l := range strings.Split(strings.TrimSpace(d.ReadLog()), "\n") {
		if l != "" && !re.MatchString(l) {
			t.Errorf("log line not in Postfix's shape: %q", l)
		}
	}
}
