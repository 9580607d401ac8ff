package test

// Issue 7, hostile input: a test program installed as spawnd-listener
// beside a real spawnd (test/hostile-listener) speaks the protocol
// honestly until the test says go, then breaks it once in the way its
// scenario names. For every scenario: the executor logs "warning: listener
// protocol violation: ..." with the reason, no command runs (the service
// would leave a file behind), the executor survives, kills the listener
// and starts a new one after its back-off, and holds exactly the
// descriptors it held before the attack.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	hostileOnce sync.Once
	hostileBin  string // the built hostile listener
	hostileErr  error
)

// hostileDir returns a new directory holding the real spawnd and the
// hostile listener as spawnd-listener, with its scenario file.
func hostileDir(t *testing.T, scenario, state string, service int) string {
	t.Helper()
	real := bin(t)
	hostile := hostileBuild(t)
	dir := tempDir(t)
	for src, dst := range map[string]string{filepath.Join(real, "spawnd"): "spawnd", hostile: "spawnd-listener"} {
		if err := os.Link(src, filepath.Join(dir, dst)); err != nil {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, dst), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := fmt.Sprintf("scenario %s\nstate %s\nservice %d\n", scenario, state, service)
	if err := os.WriteFile(filepath.Join(dir, "scenario"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hostileBuild returns test/hostile-listener, built once, beside the real
// binaries.
func hostileBuild(t testing.TB) string {
	t.Helper()
	real := bin(t)
	hostileOnce.Do(func() {
		hostileBin = filepath.Join(real, "hostile-listener")
		cmd := exec.Command("go", "build", "-o", hostileBin, "./test/hostile-listener")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			hostileErr = fmt.Errorf("go build hostile-listener: %v\n%s", err, out)
		}
	})
	if hostileErr != nil {
		t.Fatal(hostileErr)
	}
	return hostileBin
}

// hostileRun is one spawnd with a hostile listener.
type hostileRun struct {
	d      *Daemon
	state  string // the listener's notes (runs) and the go file
	marks  string // where the service's command leaves a file
	marker string // in the flood service's arguments
	addr   string // service 0's address
}

// startHostile starts spawnd with six services: 0 (TCP) leaves a file in
// marks, with opts (-o options) if any, 1 sleeps (the flood's target, no
// process limit), 2 is the probe, 3 sleeps with a process limit of 2, 4
// sleeps with a time limit of 2s, 5 (unix, in a private/ that is
// mail_owner's) leaves a file in marks.
func startHostile(t *testing.T, scenario string, service int, opts ...string) *hostileRun {
	return startHostileWrap(t, scenario, service, nil, opts...)
}

// startHostileWrap is startHostile with spawnd started through wrap.
func startHostileWrap(t *testing.T, scenario string, service int, wrap []string, opts ...string) *hostileRun {
	t.Helper()
	requireRoot(t)
	h := &hostileRun{state: tempDir(t), marks: tempDir(t), marker: freshMarker(), addr: loopback(t)}
	killMarked(t, h.marker)
	for _, d := range []string{h.state, h.marks} {
		os.Chmod(d, 0o777)
	}
	script := writeScript(t, tempDir(t), "mark", "touch "+h.marks+"/ran.$$\n")
	probe, ready := probeService(t)
	// As in Postfix: the queue directory open to all, private/ mail_owner's.
	queue := tempDir(t)
	mustMailOwnerDir(t, filepath.Join(queue, "private"))
	h.d = StartServe(t, Config{
		Main: "queue_directory = " + queue,
		Master: fmt.Sprintf("%s inet n n n - - spawnd %s user=nobody argv=%s\n", h.addr, strings.Join(opts, " "), script) +
			fmt.Sprintf("%s inet n n n - 0 spawnd user=nobody argv=/bin/sleep 60.%s\n", loopback(t), h.marker) + probe +
			fmt.Sprintf("%s inet n n n - 2 spawnd user=nobody argv=/bin/sleep 60.%s\n", loopback(t), h.marker) +
			fmt.Sprintf("%s inet n n n - 0 spawnd -o command_time_limit=2 user=nobody argv=/bin/sleep 60.%s\n", loopback(t), h.marker) +
			fmt.Sprintf("hostile unix - n n - - spawnd user=nobody argv=%s\n", script),
		Bin:   hostileDir(t, scenario, h.state, service),
		Ready: []string{ready},
		Wrap:  wrap,
	})
	return h
}

// notes returns the hostile listener's notes.
func (h *hostileRun) notes() string {
	b, _ := os.ReadFile(filepath.Join(h.state, "runs"))
	return string(b)
}

// waitNotes waits until the notes hold n lines starting with what.
func (h *hostileRun) waitNotes(what string, n int, timeout time.Duration) bool {
	return waitFor(timeout, func() bool {
		got := 0
		for _, l := range strings.Split(h.notes(), "\n") {
			if strings.HasPrefix(l, what+" ") {
				got++
			}
		}
		return got >= n
	})
}

// restarted waits until a listener other than the first has had its
// Welcome.
func (h *hostileRun) restarted(timeout time.Duration) bool {
	return waitFor(timeout, func() bool {
		first := ""
		for _, l := range strings.Split(h.notes(), "\n") {
			what, pid, _ := strings.Cut(l, " ")
			if what == "start" && first == "" {
				first = pid
			}
			if what == "ready" && pid != first {
				return true
			}
		}
		return false
	})
}

// attack lets the first listener go, after the executor's descriptors
// have been counted, and returns that count.
func (h *hostileRun) attack(t *testing.T) int {
	t.Helper()
	if !h.waitNotes("waiting", 1, 10*time.Second) {
		t.Fatalf("the hostile listener did not reach its attack: %q\n%s", h.notes(), h.d.ReadLog())
	}
	// The executor closes its copy of the listener's end of the pair (the
	// listener's fd 3) after the fork; its descriptors are counted after.
	pair, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", h.d.Listener()))
	if !waitFor(10*time.Second, func() bool { return !strings.Contains(fdList(h.d.Pid()), "="+pair) }) || pair == "" {
		t.Fatalf("the executor still holds the listener's end of the pair %q: %s", pair, fdList(h.d.Pid()))
	}
	fds := countFds(h.d.Pid())
	if err := os.WriteFile(filepath.Join(h.state, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return fds
}

// hostileCases: scenario, the violation's reason as logged, and the
// service attacked when not 0.
var hostileCases = []struct {
	scenario, reason string
	service          int
}{
	{"garbage", `message is not a msgpack map`, 0},
	{"oversized", `message over 8192 bytes`, 0},
	{"truncated", `undecodable message`, 0},
	{"trailing", `1 bytes after the message`, 0},
	{"servicewrap", `undecodable message: key "s": value 4294967296 out of range`, 0},
	{"duplicateseq", `undecodable message: key "q": duplicate key`, 0},
	{"fds0", `run request with 0 descriptors, want 1`, 0},
	{"fds2", `run request with 2 descriptors, want 1`, 0},
	{"fds10", `descriptors truncated \(MSG_CTRUNC\)`, 0},
	{"pipe", `passed descriptor is not a socket`, 0},
	{"file", `passed descriptor is not a socket`, 0},
	{"listening", `passed socket is a listening socket`, 0},
	{"dgram", `passed socket is not a stream socket`, 0},
	{"unknownservice", `run request for service 99, have 6`, 0},
	// Issue 12.2: the client end of the listener's own connection to a
	// service, a socket of its own bound to a unix service's path, and a
	// connection from a network namespace of its own.
	{"clientend", `run request for service \S*hostile: passed socket fails check address: local address .* is not the service.s`, 5},
	{"rebind", `run request for service \S*hostile: passed socket fails check inode: bound to .*/private/hostile", but not by the service's socket`, 5},
	{"netns", `run request for service 127.0.0.1:\d+: passed socket fails check netns`, 0},
	{"runbeforehello", `run request while starting`, 0},
	{"hellotwice", `hello while serving`, 0},
	{"hellofd", `hello with 1 descriptors, want 0`, 0},
	{"seq0", `run request with sequence number 0`, 0},
	{"extrafield", `run request with fields it may not carry`, 0},
	{"replyexited", `exited sent in the wrong direction`, 0},
	{"replywelcome", `welcome sent in the wrong direction`, 0},
	{"unknownkind", `unknown kind 7`, 0},
	{"version", `version 3, want 2`, 0},
}

// TestHostileListener: every scenario of hostileCases against its own
// spawnd, four at a time.
func TestHostileListener(t *testing.T) {
	requireRoot(t)
	sem := make(chan struct{}, 4)
	for _, c := range hostileCases {
		t.Run(c.scenario, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			h := startHostile(t, c.scenario, c.service)
			pid := h.d.Pid()
			before := h.attack(t)
			re := `warning: listener protocol violation: .*` + c.reason
			if _, ok := h.d.WaitLog(re, 10*time.Second); !ok {
				t.Errorf("no line matching %q in:\n%s\nlistener notes:\n%s", re, h.d.ReadLog(), h.notes())
			}
			// The executor kills the listener and starts another, which
			// gets its Welcome.
			if !h.restarted(10 * time.Second) {
				t.Errorf("no honest second listener: notes\n%s\nlog:\n%s", h.notes(), h.d.ReadLog())
			}
			if _, ok := h.d.WaitLog(`warning: restarting the listener in \d+ms`, 5*time.Second); !ok {
				t.Errorf("no restart with back-off logged:\n%s", h.d.ReadLog())
			}
			if h.d.Pid() != pid || !alive(pid) {
				t.Fatalf("executor gone")
			}
			// A command the attack started, if any, has left its mark
			// once it has exited: wait until the executor runs none.
			if !waitFor(10*time.Second, func() bool { return len(Children(pid)) == len(Zombies(pid))+1 }) {
				t.Errorf("the executor still has children besides the listener: %v", Children(pid))
			}
			if after := settleFds(pid, before); after != before {
				t.Errorf("executor descriptors %d before the attack, %d after: %s", before, after, fdList(pid))
			}
			if ents, _ := os.ReadDir(h.marks); len(ents) > 0 {
				t.Errorf("a command ran: %v", ents)
			}
			if z := Zombies(pid); len(z) > 0 {
				t.Errorf("zombies: %v", z)
			}
			if n := strings.Count(h.d.ReadLog(), "protocol violation"); n != 1 {
				t.Errorf("%d violations logged, want 1:\n%s", n, h.d.ReadLog())
			}
		})
	}
}

// TestHostileListenerHonestControl: the same program sending an honest
// Run makes the command run (the file appears) with no warning, so that
// "no command ran" above means something.
func TestHostileListenerHonestControl(t *testing.T) {
	h := startHostile(t, "honest", 0)
	h.attack(t)
	if !waitFor(10*time.Second, func() bool { ents, _ := os.ReadDir(h.marks); return len(ents) == 1 }) {
		t.Errorf("the honest Run did not run the command:\n%s\n%s", h.d.ReadLog(), h.notes())
	}
	// Every record is written once spawnd has exited.
	h.d.Stop()
	if strings.Contains(h.d.ReadLog(), "warning:") {
		t.Errorf("warnings for an honest Run:\n%s", h.d.ReadLog())
	}
}

// TestHostileListenerFlood: Runs for the sleeping service past the
// executor's hard cap, all carrying the same socket. The executor runs
// commands up to the cap and not one more, refuses the next as a
// violation, and survives; once the commands are killed it holds the
// descriptors it held before.
func TestHostileListenerFlood(t *testing.T) {
	h := startHostile(t, "flood", 1)
	pid := h.d.Pid()
	before := h.attack(t)
	re := `warning: listener protocol violation: .*past the hard cap of (\d+) running commands`
	line, ok := h.d.WaitLog(re, 120*time.Second)
	if !ok {
		t.Fatalf("no line matching %q after 120s (%d commands running):\n%s\nnotes:\n%s", re, len(aliveWith(h.marker)), h.d.ReadLog(), h.notes())
	}
	limit, _ := strconv.Atoi(regexp.MustCompile(re).FindStringSubmatch(line)[1])
	running := len(aliveWith(h.marker))
	t.Logf("%s; %d commands running", line, running)
	if running != limit {
		t.Errorf("%d commands running at the cap of %d", running, limit)
	}
	if !h.restarted(10 * time.Second) {
		t.Errorf("no second listener: %s", h.notes())
	}
	for _, p := range aliveWith(h.marker) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	if !waitFor(60*time.Second, func() bool { return len(commands(h.d)) == 0 }) {
		t.Fatalf("%d commands still running", len(commands(h.d)))
	}
	if h.d.Pid() != pid || !alive(pid) {
		t.Fatalf("executor gone")
	}
	if after := settleFds(pid, before); after != before {
		t.Errorf("executor descriptors %d before the flood, %d after", before, after)
	}
	if z := Zombies(pid); len(z) > 0 {
		t.Errorf("%d zombies", len(z))
	}
	if ents, _ := os.ReadDir(h.marks); len(ents) > 0 {
		t.Errorf("the other service's command ran: %v", ents)
	}
}

// mustMailOwnerDir creates dir as Postfix has its private/: mail_owner's,
// mode 0700.
func mustMailOwnerDir(t testing.TB, dir string) {
	t.Helper()
	owner := lookupIDs(t, mailOwner())
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(owner.uid), int(owner.gid)); err != nil {
		t.Fatal(err)
	}
}
