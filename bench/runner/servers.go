package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spawnd/bench/loadgen"
)

// server is one measured service: a row of the tables.
type server struct {
	key     string // short name, for -only
	label   string // row title
	addr    string
	proc    *proc
	counted string         // which processes' CPU is counted, for the notes
	daemons func() []pstat // those processes, live, now
	memory  func() []pstat // processes whose RSS is reported (spawnd only)
	dead    string         // why it is no longer measured

	// direct, for a row that is not a server (the spawn ceiling): the
	// command that measures itself and prints a loadgen.Result with
	// cpu_us; the runner adds -d and -n. proc and addr are unset.
	direct []string
}

// env is what every start function needs.
type env struct {
	tmp    string // private directory, removed at the end
	bin    string // where spawnd and spawnd-listener are
	reg    *registry
	nobody *user.User
	group  string // name of nobody's primary group
}

// skipError says why a peer is not measured; it is not a failure.
type skipError string

func (e skipError) Error() string { return string(e) }

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so that none repeats
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// lookPath finds a program in the clean PATH the servers get.
func lookPath(name string) (string, bool) {
	for _, d := range filepath.SplitList(strings.TrimPrefix(cleanEnv[0], "PATH=")) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// launch starts a server process with its output in tmp/name.out and waits
// until addr answers "ok\n".
func (e *env) launch(name, addr string, cmd *exec.Cmd) (*proc, error) {
	out, err := os.Create(filepath.Join(e.tmp, name+".out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	p, err := e.reg.start(name, cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %v", cmd.Path, err)
	}
	if err := waitReady(addr, p, 5*time.Second); err != nil {
		stop(p)
		return nil, fmt.Errorf("%v%s", err, tail(out.Name()))
	}
	return p, nil
}

// waitReady polls addr until a connection gets "ok\n", p exits, or the
// time is up.
func waitReady(addr string, p *proc, within time.Duration) error {
	deadline := time.Now().Add(within)
	last := "no answer"
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited (%s)", p.name, p.cmd.ProcessState)
		}
		r, err := loadgen.Run(loadgen.Config{Addr: addr, Concurrency: 1, Duration: time.Second,
			MaxConns: 1, Expect: "ok\n", ConnTimeout: 2 * time.Second})
		if err == nil && r.Failures == 0 {
			return nil
		}
		if r.FirstError != "" {
			last = r.FirstError
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not serving %s after %s: %s", addr, within, last)
}

// tail returns the last non-empty line of a log file, as "; last log line: ...".
func tail(path string) string {
	lines := strings.Split(strings.TrimSpace(readString(path)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return "; last log line: " + l
	}
	return ""
}

// self counts the CPU time of the started process only.
func self(p *proc) func() []pstat {
	return func() []pstat {
		st, err := readStat(p.cmd.Process.Pid)
		if err != nil {
			return nil
		}
		return []pstat{st}
	}
}

// withChildren counts the started process and its children named comms.
func withChildren(p *proc, comms ...string) func() []pstat {
	return func() []pstat {
		return append(self(p)(), childrenOf(p.cmd.Process.Pid, comms...)...)
	}
}

func startCServer(e *env, src string) ([]*server, error) {
	cc, ok := lookPath("cc")
	if !ok {
		return nil, skipError("no C compiler (apt-get install gcc)")
	}
	exe := filepath.Join(e.tmp, "cserver")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-o", exe, src).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cc %s: %v: %s", src, err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := e.launch("cserver", addr, exec.Command(exe, "-p", strconv.Itoa(port), "-u", "nobody", "--", "/bin/echo", "ok"))
	if err != nil {
		return nil, err
	}
	return []*server{{key: "cserver", label: "C accept+fork+exec (bench/cserver)", addr: addr, proc: p,
		counted: "the server process", daemons: self(p)}}, nil
}

// startGoServer builds bench/goserver, the one-process Go accept+ForkExec
// server: what any server behind a TCP socket pays on top of the ceiling.
func startGoServer(e *env, pkg string) ([]*server, error) {
	exe := filepath.Join(e.tmp, "goserver")
	if out, err := exec.Command("go", "build", "-o", exe, pkg).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v: %s", pkg, err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := e.launch("goserver", addr, exec.Command(exe, "-p", strconv.Itoa(port),
		"-uid", e.nobody.Uid, "-gid", e.nobody.Gid, "--", "/bin/echo", "ok"))
	if err != nil {
		return nil, err
	}
	return []*server{{key: "goserver", label: "Go accept+ForkExec, one process (bench/goserver)", addr: addr, proc: p,
		counted: "the server process", daemons: self(p)}}, nil
}

func startTCPServer(e *env) ([]*server, error) {
	exe, ok := lookPath("tcpserver")
	if !ok {
		return nil, skipError("not installed (apt-get install ucspi-tcp)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// -H -R -l 0: no DNS or ident lookups per connection, as deployed;
	// -b 1024: the backlog of the C server (the default, 20, drops
	// connections at c=64 and the clients wait for SYN retransmits).
	p, err := e.launch("tcpserver", addr, exec.Command(exe, "-H", "-R", "-l", "0", "-c", "200", "-b", "1024",
		"-u", e.nobody.Uid, "-g", e.nobody.Gid, "127.0.0.1", strconv.Itoa(port), "/bin/echo", "ok"))
	if err != nil {
		return nil, err
	}
	return []*server{{key: "tcpserver", label: "ucspi-tcp tcpserver", addr: addr, proc: p,
		counted: "tcpserver", daemons: self(p)}}, nil
}

func startXinetd(e *env) ([]*server, error) {
	exe, ok := lookPath("xinetd")
	if !ok {
		return nil, skipError("not installed (apt-get install xinetd)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(e.tmp, "xinetd.conf")
	text := fmt.Sprintf(`service bench
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	bind           = 127.0.0.1
	port           = %d
	wait           = no
	user           = nobody
	group          = %s
	server         = /bin/echo
	server_args    = ok
	instances      = UNLIMITED
	per_source     = UNLIMITED
	cps            = 1000000 1
	log_type       = FILE %s
	log_on_success =
	log_on_failure = HOST
}
`, port, e.group, filepath.Join(e.tmp, "xinetd.log"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := e.launch("xinetd", addr, exec.Command(exe, "-dontfork", "-f", conf,
		"-pidfile", filepath.Join(e.tmp, "xinetd.pid")))
	if err != nil {
		return nil, err
	}
	return []*server{{key: "xinetd", label: "xinetd", addr: addr, proc: p,
		counted: "xinetd", daemons: self(p)}}, nil
}

// startPostfix runs a private Postfix instance: its own config, queue and
// data directories under tmp, master(8) started directly in the foreground
// (-d), two spawn(8) services (maxproc 1 and 100) and postlogd(8) for its
// log file. The system's Postfix configuration is neither read nor touched.
func startPostfix(e *env) ([]*server, error) {
	postconf, ok := lookPath("postconf")
	if !ok {
		return nil, skipError("not installed (apt-get install postfix)")
	}
	owner, err := user.Lookup("postfix")
	if err != nil {
		return nil, skipError("no postfix user (apt-get install postfix)")
	}
	dir := filepath.Join(e.tmp, "postfix")
	conf, queue, data := filepath.Join(dir, "conf"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{conf, filepath.Join(queue, "pid"), filepath.Join(queue, "public"), data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	// master(8) creates the postlog socket and its lock file as mail_owner.
	for _, d := range []string{filepath.Join(queue, "public"), data} {
		if err := os.Chown(d, uid, gid); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	port1, port100 := ports[0], ports[1]
	// max_use and max_idle are raised so that the spawn processes live
	// through the whole run: their CPU time can only be read while they
	// are alive. With the default max_use of 100 each would be replaced
	// every 100 connections.
	mainCF := fmt.Sprintf(`compatibility_level = 3.7
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = localhost.localdomain
maillog_file_prefixes = %s
maillog_file = %s
max_use = 1000000
max_idle = 3600s
`, queue, data, dir, filepath.Join(dir, "postfix.log"))
	masterCF := fmt.Sprintf(`127.0.0.1:%d inet n n n - 1 spawn user=nobody argv=/bin/echo ok
127.0.0.1:%d inet n n n - 100 spawn user=nobody argv=/bin/echo ok
postlog unix-dgram n - n - 1 postlogd
`, port1, port100)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), []byte(masterCF), 0o644); err != nil {
		return nil, err
	}
	out, err := exec.Command(postconf, "-c", conf, "-h", "daemon_directory").Output()
	if err != nil {
		return nil, fmt.Errorf("postconf -c %s -h daemon_directory: %v", conf, err)
	}
	master := filepath.Join(strings.TrimSpace(string(out)), "master")
	addr1, addr100 := fmt.Sprintf("127.0.0.1:%d", port1), fmt.Sprintf("127.0.0.1:%d", port100)
	p, err := e.launch("postfix", addr1, exec.Command(master, "-c", conf, "-d"))
	if err == nil {
		err = waitReady(addr100, p, 5*time.Second)
	}
	if err != nil {
		if p != nil {
			stop(p)
		}
		return nil, fmt.Errorf("%v%s", err, tail(filepath.Join(dir, "postfix.log")))
	}
	counted := "master + its spawn processes"
	daemons := withChildren(p, "spawn")
	return []*server{
		{key: "postfix-1", label: "Postfix spawn(8) under master(8), maxproc 1", addr: addr1, proc: p, counted: counted, daemons: daemons},
		{key: "postfix-100", label: "Postfix spawn(8) under master(8), maxproc 100", addr: addr100, proc: p, counted: counted, daemons: daemons},
	}, nil
}

// startCeiling builds bench/ceiling: the raw spawn ceiling, 1 and 2
// commands in flight, measured like a server in every pass.
func startCeiling(e *env, pkg string) ([]*server, error) {
	exe := filepath.Join(e.tmp, "ceiling")
	if out, err := exec.Command("go", "build", "-o", exe, pkg).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v: %s", pkg, err, out)
	}
	var out []*server
	for _, n := range []string{"1", "2"} {
		out = append(out, &server{key: "ceiling-" + n,
			label:   fmt.Sprintf("raw spawn ceiling: Go ForkExec of /bin/echo ok as nobody, setsid, %s in flight (bench/ceiling)", n),
			counted: "the program itself", daemons: func() []pstat { return nil },
			direct: []string{exe, "-inflight", n, "-uid", e.nobody.Uid, "-gid", e.nobody.Gid}})
	}
	return out, nil
}

// startSpawnd runs `spawnd serve -c DIR` with a generated configuration:
// the /bin/echo service, the same with command_cpu_limit and
// command_no_new_privileges (its commands run through spawnd-limits), and
// the same with a 100-pattern client_access list.
func startSpawnd(e *env) ([]*server, error) {
	exe := filepath.Join(e.bin, "spawnd")
	for _, b := range []string{exe, filepath.Join(e.bin, "spawnd-listener")} {
		if _, err := os.Stat(b); err != nil {
			return nil, skipError(fmt.Sprintf("%s not found (make build)", b))
		}
	}
	exe, err := filepath.Abs(exe)
	if err != nil {
		return nil, err
	}
	owner := "postfix"
	if _, err := user.Lookup(owner); err != nil {
		owner = "daemon"
	}
	dir := filepath.Join(e.tmp, "spawnd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	addr, hardened := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	acl := fmt.Sprintf("127.0.0.1:%d", ports[2])
	// The third service has a client_access list of 100 patterns whose
	// last one admits the load generator: every connection is checked
	// against all of them, by the listener and again by the executor.
	var patterns []string
	for i := 0; i < 99; i++ {
		if i%3 == 0 {
			patterns = append(patterns, fmt.Sprintf("![2001:db8:%x::]/48", i))
		} else {
			patterns = append(patterns, fmt.Sprintf("10.%d.%d.0/24", i, 255-i))
		}
	}
	logFile := filepath.Join(dir, "spawnd.log")
	mainCF := fmt.Sprintf("mail_owner = %s\nqueue_directory = %s\nmaillog_file_prefixes = %s\nmaillog_file = %s\n",
		owner, dir, dir, logFile)
	masterCF := fmt.Sprintf("%s inet n n n - 0 spawnd user=nobody argv=/bin/echo ok\n", addr) +
		fmt.Sprintf("%s inet n n n - 0 spawnd -o command_cpu_limit=60 -o command_no_new_privileges=yes\n"+
			"    user=nobody argv=/bin/echo ok\n", hardened) +
		fmt.Sprintf("%s inet n n n - 0 spawnd -o {client_access = %s 127.0.0.0/8} user=nobody argv=/bin/echo ok\n",
			acl, strings.Join(patterns, " "))
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCF), 0o644); err != nil {
		return nil, err
	}
	p, err := e.launch("spawnd", addr, exec.Command(exe, "serve", "-c", dir))
	if err == nil {
		err = waitReady(hardened, p, 5*time.Second)
	}
	if err == nil {
		err = waitReady(acl, p, 5*time.Second)
	}
	if err != nil {
		if p != nil {
			stop(p)
		}
		return nil, skipError(err.Error() + tail(logFile))
	}
	daemons := withChildren(p, "spawnd-listener")
	if len(daemons()) != 2 {
		stop(p)
		return nil, errors.New("serving, but no spawnd-listener child found")
	}
	return []*server{{key: "spawnd", label: "spawnd", addr: addr, proc: p,
		counted: "executor + listener", daemons: daemons, memory: daemons},
		{key: "spawnd-limits", label: "spawnd, command_cpu_limit and command_no_new_privileges (spawnd-limits)", addr: hardened,
			proc: p, counted: "executor + listener", daemons: daemons},
		{key: "spawnd-acl", label: "spawnd, 100-pattern client_access", addr: acl, proc: p,
			counted: "executor + listener", daemons: daemons}}, nil
}
