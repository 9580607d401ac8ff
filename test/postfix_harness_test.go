package test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A private Postfix instance for the integration tests.
//
// It is the system's Postfix (Debian's package) run the way `postfix start`
// runs it, with everything it writes under a test directory: its own
// config_directory (main.cf, master.cf), queue_directory, data_directory,
// daemon_directory (links to the system's daemons, plus the programs under
// test) and maillog_file. /etc/postfix and the system's own instance, if
// any, are not touched: master(8) is started as `master -c DIR`, which as
// root needs no alternate_config_directories entry.

// postfixInstance is one running private Postfix instance.
type postfixInstance struct {
	t         *testing.T
	dir       string // everything of the instance lives under it
	conf      string // config_directory: main.cf, master.cf (MAIL_CONFIG)
	queue     string // queue_directory
	daemonDir string // daemon_directory
	logFile   string // maillog_file, written by postlogd(8)
	smtp      string // 127.0.0.1:PORT of the instance's smtpd(8)

	master  *exec.Cmd
	self    procID // master(8) itself
	done    chan struct{}
	stopped bool
	tree    []procID // master(8)'s descendants seen before it was stopped
}

// procID names a process by pid and start time, so that a reused pid is
// not mistaken for it.
type procID struct {
	Pid   int
	Start string // field 22 of /proc/PID/stat
}

// postfixSystem is what the system's Postfix installation offers.
var postfixSystem struct {
	once       sync.Once
	daemonDir  string // the system's daemon_directory
	commandDir string // the system's command_directory: postfix, postconf
	version    string
	missing    string // why Postfix is unusable, or ""
}

// requirePostfix skips the test unless it runs as root on a system with
// Postfix installed, and returns the system's daemon_directory.
func requirePostfix(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root: a private Postfix instance runs master(8) as root")
	}
	s := &postfixSystem
	s.once.Do(func() {
		postconf, err := exec.LookPath("postconf")
		if err != nil {
			postconf = "/usr/sbin/postconf" // root's PATH may lack sbin
		}
		out, err := exec.Command(postconf, "-d", "-h", "daemon_directory", "command_directory", "mail_version").Output()
		if err != nil {
			s.missing = postconf + " -d: " + err.Error()
			return
		}
		f := strings.Fields(string(out))
		if len(f) != 3 {
			s.missing = fmt.Sprintf("%s -d printed %q", postconf, out)
			return
		}
		s.daemonDir, s.commandDir, s.version = f[0], f[1], f[2]
		for _, p := range []string{"master", "postlogd", "spawn", "smtpd", "cleanup", "qmgr", "trivial-rewrite", "discard", "bounce", "postfix-script"} {
			if _, err := os.Stat(filepath.Join(s.daemonDir, p)); err != nil {
				s.missing = err.Error()
				return
			}
		}
		if _, err := os.Stat(filepath.Join(s.commandDir, "postfix")); err != nil {
			s.missing = err.Error()
		} else if _, err := user.Lookup("postfix"); err != nil {
			s.missing = "no user postfix"
		} else if _, err := user.LookupGroup("postdrop"); err != nil {
			s.missing = "no group postdrop"
		}
	})
	if s.missing != "" {
		t.Skipf("postfix not installed: apt-get install postfix (%s)", s.missing)
	}
	return s.daemonDir
}

// postfixDaemonDir makes a daemon_directory for a private instance:
// symbolic links to every program of the system's daemon_directory, plus
// copies of the files in extra (name in the directory -> source file).
// master(8) runs every master.cf command from daemon_directory (an
// absolute path in the command column does not work), so this is how a
// program under test takes a place in master.cf.
func postfixDaemonDir(t testing.TB, extra map[string]string) string {
	t.Helper()
	system := requirePostfix(t)
	dir := filepath.Join(tempDir(t), "libexec")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(system)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := extra[e.Name()]; ok {
			continue
		}
		if err := os.Symlink(filepath.Join(system, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range extra {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var spawndMode struct {
	once sync.Once
	why  string // why Postfix mode is not there, or ""
}

// spawndDaemonDir returns a daemon_directory holding Postfix's daemons and
// freshly built spawnd, spawnd-listener and spawnd-limits, for main.cf's
// daemon_directory. It fails the test when spawnd's Postfix mode does not
// answer as Postfix's daemon skeleton does, which rejects an unknown option
// with `invalid option`: a regression must not skip the Postfix suite.
func spawndDaemonDir(t testing.TB) string {
	t.Helper()
	requirePostfix(t)
	bins := bin(t)
	spawndMode.once.Do(func() {
		cmd := exec.Command(filepath.Join(bins, "spawnd"), "-Q", "user=nobody", "argv=/bin/true")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "MAIL_CONFIG=" + os.TempDir()}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			spawndMode.why = err.Error()
			return
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !regexp.MustCompile(`fatal: invalid option: Q`).Match(out.Bytes()) {
				spawndMode.why = fmt.Sprintf("`spawnd -Q user=nobody argv=/bin/true` did not fail with `fatal: invalid option: Q` (%v: %q)", err, out.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			spawndMode.why = "`spawnd -Q user=nobody argv=/bin/true` still running after 15s"
		}
	})
	if spawndMode.why != "" {
		t.Fatal("spawnd's Postfix mode is broken: " + spawndMode.why)
	}
	return postfixDaemonDir(t, map[string]string{
		"spawnd":          filepath.Join(bins, "spawnd"),
		"spawnd-listener": filepath.Join(bins, "spawnd-listener"),
		"spawnd-limits":   filepath.Join(bins, "spawnd-limits"),
	})
}

// postfixServices are the master.cf entries every instance has: the log
// service, and a mail system on loopback (smtpd on the instance's port,
// cleanup, qmgr, trivial-rewrite, bounce and discard) that accepts mail
// for localhost and discards it.
const postfixServices = `postlog   unix-dgram n - n - 1 postlogd
%s inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
discard   unix - - n - - discard
`

// newPostfixInstance starts a private Postfix instance whose master.cf is
// postfixServices followed by masterCF, and whose main.cf is the harness's
// settings, any of them replaced by a setting of the same name in
// mainCFExtra (to set daemon_directory, for example). It waits until
// master(8) has logged its start (by then every listening socket exists)
// and stops the instance at the end of the test, failing the test if any
// process of the instance is left running.
func newPostfixInstance(t *testing.T, masterCF, mainCFExtra string) *postfixInstance {
	t.Helper()
	system := requirePostfix(t)
	dir := tempDir(t)
	p := &postfixInstance{
		t:       t,
		dir:     dir,
		conf:    filepath.Join(dir, "conf"),
		queue:   filepath.Join(dir, "queue"),
		logFile: filepath.Join(dir, "maillog"),
		smtp:    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		done:    make(chan struct{}),
	}
	data := filepath.Join(dir, "data")
	settings := [][2]string{
		{"compatibility_level", "3.7"},
		{"queue_directory", p.queue},
		{"data_directory", data},
		{"daemon_directory", system},
		{"mail_owner", "postfix"},
		{"setgid_group", "postdrop"},
		{"inet_interfaces", "loopback-only"},
		{"inet_protocols", "ipv4"},
		{"myhostname", "localhost"},
		{"mydomain", "localdomain"},
		{"mydestination", "localhost"},
		{"mynetworks", "127.0.0.0/8"},
		{"local_recipient_maps", ""},
		{"alias_maps", ""},
		{"alias_database", ""},
		{"local_transport", "discard"},
		{"default_transport", "discard"},
		{"maillog_file_prefixes", dir},
		{"maillog_file", p.logFile},
	}
	extra := map[string]bool{}
	for _, line := range strings.Split(mainCFExtra, "\n") {
		if name, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
			extra[strings.TrimSpace(name)] = true
		}
	}
	var main strings.Builder
	for _, s := range settings {
		if !extra[s[0]] {
			fmt.Fprintf(&main, "%s = %s\n", s[0], s[1])
		}
	}
	main.WriteString(mainCFExtra + "\n")
	for _, line := range strings.Split(mainCFExtra, "\n") {
		if v, ok := strings.CutPrefix(strings.ReplaceAll(line, " ", ""), "daemon_directory="); ok {
			p.daemonDir = v
		}
	}
	if p.daemonDir == "" {
		p.daemonDir = system
	}
	if err := os.Mkdir(p.conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(main.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	master := fmt.Sprintf(postfixServices, p.smtp) + masterCF
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	makePostfixQueue(t, p.queue, data)

	// master(8) makes itself a session leader and sends SIGTERM to its
	// process group on stop, as under `postfix start`; without -w it stays
	// this process's child, so that it can be waited for.
	p.master = exec.Command(filepath.Join(p.daemonDir, "master"), "-c", p.conf)
	p.master.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	p.master.Dir = "/"
	if err := p.master.Start(); err != nil {
		t.Fatal(err)
	}
	p.self, _ = procOf(p.master.Process.Pid)
	go func() { p.master.Wait(); close(p.done) }()
	t.Cleanup(p.cleanup)
	deadline := time.Now().Add(15 * time.Second)
	for !regexp.MustCompile(`postfix/master\[\d+\]: daemon started`).MatchString(p.log()) {
		select {
		case <-p.done:
			t.Fatalf("master(8) exited at start-up: %v\nmaillog:\n%s", p.master.ProcessState, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("master(8) did not log its start within 15s\nmaillog:\n%s", p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// makePostfixQueue creates the queue and data directories with the owners
// and modes of Postfix's postfix-files, as `postfix check` (post-install
// create-missing) would, but without its checks of the system's files.
func makePostfixQueue(t testing.TB, queue, data string) {
	t.Helper()
	owner, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	postdrop, err := user.LookupGroup("postdrop")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(owner.Uid)
	drop, _ := strconv.Atoi(postdrop.Gid)
	dirs := []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{queue, 0, 0, 0o755},
		{data, uid, 0, 0o700},
		{filepath.Join(queue, "pid"), 0, 0, 0o755},
		{filepath.Join(queue, "maildrop"), uid, drop, 0o730},
		{filepath.Join(queue, "public"), uid, drop, 0o710},
	}
	for _, d := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		dirs = append(dirs, struct {
			path     string
			uid, gid int
			mode     os.FileMode
		}{filepath.Join(queue, d), uid, 0, 0o700})
	}
	for _, d := range dirs {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d.path, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// running reports whether master(8) is still running.
func (p *postfixInstance) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop runs `postfix -c DIR stop`, as an administrator would, and waits
// for master(8) to exit. It returns the command's output and error.
func (p *postfixInstance) stop() (string, error) {
	p.t.Helper()
	if p.stopped {
		return "", nil
	}
	p.stopped = true
	p.tree = append(p.tree, procTree(p.self.Pid)...)
	if !p.running() {
		return "", fmt.Errorf("master(8) pid %d exited before postfix stop: %v", p.self.Pid, p.master.ProcessState)
	}
	out, err := postfixCommand(20*time.Second, "-c", p.conf, "stop")
	if err != nil || p.running() {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.t.Errorf("master(8) pid %d still running 10s after postfix stop (%v: %s); killing it", p.self.Pid, err, out)
			p.master.Process.Kill()
			<-p.done
		}
	}
	return out, err
}

// cleanup stops the instance and fails the test if any process it ran is
// still alive after that; those it kills, by pid.
func (p *postfixInstance) cleanup() {
	t := p.t
	if out, err := p.stop(); err != nil && !t.Failed() {
		t.Errorf("postfix -c %s stop: %v\n%s", p.conf, err, out)
	}
	var left []procID
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = left[:0]
		for _, pr := range p.tree {
			if pr.alive() {
				left = append(left, pr)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, pr := range left {
		t.Errorf("left running 10s after postfix stop: pid %d (%s)", pr.Pid, cmdline(pr.Pid))
		pr.kill()
	}
	if t.Failed() {
		t.Logf("maillog of the instance:\n%s", p.log())
	}
}

// postfixCommand runs the system's postfix(1) with a time limit, and
// returns its combined output.
func postfixCommand(limit time.Duration, args ...string) (string, error) {
	return runFor(limit, filepath.Join(postfixSystem.commandDir, "postfix"), args...)
}

// runFor runs a program with a time limit and returns its combined output.
func runFor(limit time.Duration, path string, args ...string) (string, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s: still running after %v", path, limit)
	}
}

// log returns the instance's maillog so far: master(8)'s and its
// children's log records, through postlogd(8).
func (p *postfixInstance) log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// waitLog waits up to timeout for a maillog line matching re and returns
// the first such line.
func (p *postfixInstance) waitLog(re string, timeout time.Duration) (string, bool) {
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(p.log(), "\n") {
			if rx.MatchString(line) {
				return line, true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
	}
}

// logLines returns the maillog lines matching re.
func (p *postfixInstance) logLines(re string) []string {
	rx := regexp.MustCompile(re)
	var out []string
	for _, line := range strings.Split(p.log(), "\n") {
		if rx.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

// problems returns the maillog's warning, error, fatal and panic lines.
func (p *postfixInstance) problems() []string {
	return p.logLines(`\]: (warning|error|fatal|panic): `)
}

// addr turns a master.cf service into a dial address: "private/NAME" and
// "public/NAME" are unix sockets under queue_directory, anything else is
// a TCP host:port.
func (p *postfixInstance) addr(service string) (network, address string) {
	if strings.HasPrefix(service, "private/") || strings.HasPrefix(service, "public/") {
		return "unix", filepath.Join(p.queue, service)
	}
	return "tcp", service
}

// dial connects to a service of the instance (see addr).
func (p *postfixInstance) dial(service string) (net.Conn, error) {
	network, address := p.addr(service)
	return net.DialTimeout(network, address, 10*time.Second)
}

// talk connects to a service, writes input, half-closes and reads the
// answer until end of file, all within timeout.
func (p *postfixInstance) talk(service, input string, timeout time.Duration) (string, error) {
	network, address := p.addr(service)
	return Talk(network, address, input, timeout)
}

// sendMail sends one message to the instance's smtpd(8) with net/smtp,
// every step within 30 seconds. The error names the SMTP step that failed
// and wraps the server's *textproto.Error.
func (p *postfixInstance) sendMail(from, to, body string) error {
	conn, err := net.DialTimeout("tcp", p.smtp, 10*time.Second)
	if err != nil {
		return fmt.Errorf("connect %s: %w", p.smtp, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("client.localdomain"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", from, err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO:<%s>: %w", to, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}

// children returns master(8)'s living children whose command name is name.
func (p *postfixInstance) children(name string) []int {
	var out []int
	for _, pid := range Children(p.self.Pid) {
		if f := statFields(pid); len(f) > 0 && f[0] != "Z" && comm(pid) == name {
			out = append(out, pid)
		}
	}
	return out
}

// procOf returns the process with this pid, if there is one.
func procOf(pid int) (procID, bool) {
	f := statFields(pid)
	if len(f) < 20 {
		return procID{}, false
	}
	return procID{Pid: pid, Start: f[19]}, true
}

// alive reports whether the process still runs: same pid and start time,
// and not a zombie.
func (pr procID) alive() bool {
	f := statFields(pr.Pid)
	return len(f) >= 20 && f[19] == pr.Start && f[0] != "Z"
}

// kill sends SIGKILL to the process if it is still the same one.
func (pr procID) kill() {
	if pr.alive() {
		syscall.Kill(pr.Pid, syscall.SIGKILL)
	}
}

// procTree returns the descendants of root, read from /proc.
func procTree(root int) []procID {
	kids := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	var out []procID
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range kids[pid] {
			if pr, ok := procOf(k); ok {
				out = append(out, pr)
				queue = append(queue, k)
			}
		}
	}
	return out
}

// livingWithArg returns the living processes named name (/proc/PID/comm)
// whose command line contains marker (a test's unique argument): the
// test's commands, not the spawn or spawnd whose arguments name them.
func livingWithArg(name, marker string) []procID {
	var out []procID
	for _, pid := range ProcsWithArg(marker) {
		if pr, ok := procOf(pid); ok && pr.alive() && comm(pid) == name {
			out = append(out, pr)
		}
	}
	return out
}

// shAndSleeps returns the living sh and sleep processes of a command
// `/bin/sh -c { sleep 600.MARKER & sleep 601.MARKER }`.
func shAndSleeps(marker string) []procID {
	return append(livingWithArg("sh", marker), livingWithArg("sleep", marker)...)
}

// shAndSleepsStarted reports whether such a command has started: both
// sleeps exec'd, and the sh that started them alone left (a forked sh
// that has not exec'd its sleep yet shares the marker).
func shAndSleepsStarted(marker string) bool {
	return len(livingWithArg("sleep", marker)) == 2 && len(livingWithArg("sh", marker)) == 1
}

// cmdline returns a process's command line, words separated by spaces.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// uniqueMarker returns a number to put in a test command's arguments (as
// `sleep 600.MARKER`), so that the test finds its commands, and only
// them, in /proc.
func uniqueMarker() string {
	return fmt.Sprintf("%d%06d", os.Getpid()%1000, time.Now().Nanosecond()/1000)
}
