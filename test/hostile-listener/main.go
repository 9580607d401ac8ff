// Command hostile-listener stands in for spawnd-listener in spawnd's
// hostile-listener tests: installed as spawnd-listener next to a real
// spawnd, it is started by the executor exactly as the real listener is
// (as mail_owner, empty environment, fd 3 its end of the pair, fd 4 the
// log, listening sockets from fd 5), and sends what no honest listener
// would.
//
// The executor passes it nothing to choose by, so it reads the file
// "scenario" in its own directory: lines "scenario NAME", "state DIR" and
// "service N" (the index whose Run it sends). Each start appends "start
// PID" to DIR/runs; after Welcome and the Service messages, "ready PID".
// The first start then waits for DIR/go, appends "attack PID", performs
// the scenario and keeps reading until the executor ends it. Every later
// start is honest: it reads what the executor sends until end of file, so
// that the test sees the executor restart it.
//
// It is a test program: it is not installed and nothing else uses it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

const (
	pairFd   = 3
	listenFd = 5
)

var state string

func main() {
	cfg := readConfig()
	state = cfg["state"]
	svc, _ := strconv.Atoi(cfg["service"])
	runs := note("start")
	if runs > 1 {
		honest()
		return
	}
	s := scenarios[cfg["scenario"]]
	if s == nil {
		note("unknown scenario " + cfg["scenario"])
		os.Exit(2)
	}
	s(uint32(svc))
	note("attack done")
	drain()
}

// scenarios: each breaks the protocol once, after waiting for the test.
var scenarios = map[string]func(svc uint32){
	// An honest Run: the control that shows a command would have run.
	"honest": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc), sock()) },
	"garbage": func(svc uint32) {
		hello()
		send([]byte("\x00\x01 this is not msgpack \xff\xfe"))
	},
	"oversized": func(svc uint32) {
		hello()
		b := make([]byte, 4*ipc.MaxMessage)
		copy(b, mustEncode(msg(ipc.KindRun, 1, svc)))
		sendFds(b, sock())
	},
	"truncated": func(svc uint32) {
		hello()
		b := mustEncode(msg(ipc.KindRun, 1, svc))
		sendFds(b[:len(b)/2], sock())
	},
	"trailing": func(svc uint32) {
		hello()
		sendFds(append(mustEncode(msg(ipc.KindRun, 1, svc)), 0xc0), sock())
	},
	"fds0": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc)) },
	"fds2": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc), sock(), sock()) },
	"fds10": func(svc uint32) {
		hello()
		fds := make([]int, 10)
		for i := range fds {
			fds[i] = sock()
		}
		run(msg(ipc.KindRun, 1, svc), fds...)
	},
	"pipe": func(svc uint32) {
		hello()
		var p [2]int
		must(unix.Pipe2(p[:], unix.O_CLOEXEC))
		run(msg(ipc.KindRun, 1, svc), p[0])
	},
	"file": func(svc uint32) {
		hello()
		self, _ := os.Executable()
		fd, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		must(err)
		run(msg(ipc.KindRun, 1, svc), fd)
	},
	// The service's own listening socket, as the real listener holds it.
	"listening": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc), listenFd) },
	"dgram": func(svc uint32) {
		hello()
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		must(err)
		run(msg(ipc.KindRun, 1, svc), p[0])
	},
	"unknownservice": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, 99), sock()) },
	"runbeforehello": func(svc uint32) { wait(); run(msg(ipc.KindRun, 1, svc), sock()) },
	"hellotwice":     func(svc uint32) { hello(); run(&ipc.Message{Kind: ipc.KindHello}) },
	"hellofd": func(svc uint32) {
		wait()
		run(&ipc.Message{Kind: ipc.KindHello}, sock())
	},
	"seq0": func(svc uint32) { hello(); run(msg(ipc.KindRun, 0, svc), sock()) },
	"extrafield": func(svc uint32) {
		hello()
		m := msg(ipc.KindRun, 1, svc)
		m.Name = "root"
		m.Command = "/bin/sh"
		run(m, sock())
	},
	"replyexited": func(svc uint32) {
		hello()
		run(&ipc.Message{Kind: ipc.KindExited, Seq: 1, Service: svc, Pid: 1})
	},
	"replywelcome": func(svc uint32) {
		hello()
		run(&ipc.Message{Kind: ipc.KindWelcome, Services: 1, Cap: 1})
	},
	"unknownkind": func(svc uint32) { hello(); run(&ipc.Message{Kind: 7}) },
	"version": func(svc uint32) {
		hello()
		send([]byte{0x82, 0xa1, 'v', 0x03, 0xa1, 'k', 0x01}) // {v: 3, k: 1}
	},
	// A client the test connects, accepted on service 0's listening
	// socket and passed on whoever it is: the executor re-checks the
	// service's client_access.
	"accepted": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc), acceptOne()) },
	// Runs past the service's process limit (the executor's own check).
	"overlimit": func(svc uint32) {
		hello()
		fd := sock()
		for seq := uint64(1); seq <= 3; seq++ {
			run(msg(ipc.KindRun, seq, svc), fd)
		}
	},
	// Ignores SIGTERM and SIGUSR1, and starts a process of its own in a
	// session of its own holding the pair and the listening sockets.
	"deaf": func(svc uint32) {
		signal.Ignore(unix.SIGTERM, unix.SIGUSR1, unix.SIGINT)
		hello()
		_, err := syscall.ForkExec("/bin/sh", []string{"/bin/sh", "-c", "sleep 300; true", state},
			&syscall.ProcAttr{Files: []uintptr{0, 1, 2, pairFd, 4, listenFd}, Sys: &syscall.SysProcAttr{Setsid: true}})
		must(err)
	},
	// Keeps the executor at its hard cap for six seconds, a new Run for
	// each result, and notes the longest run time of a command killed by
	// its time limit.
	"capflood": func(svc uint32) {
		hello()
		fd := sock()
		seq := uint64(0)
		for ; seq < uint64(welcomed.Cap); seq++ {
			run(msg(ipc.KindRun, seq+1, svc), fd)
		}
		var longest int64
		results := 0
		for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
			m := receive()
			if m == nil {
				break
			}
			if m.Kind == ipc.KindExited {
				results++
				if m.Timeout {
					longest = max(longest, m.Micros)
				}
			}
			seq++
			run(msg(ipc.KindRun, seq, svc), fd)
		}
		note(fmt.Sprintf("capflood: %d runs, %d results, longest %d", seq, results, longest))
	},
	// More Runs than the executor's hard cap, all with one socket: the
	// executor receives a new descriptor for each.
	"flood": func(svc uint32) {
		hello()
		fd := sock()
		for seq := uint64(1); ; seq++ {
			if err := sendMsg(mustEncode(msg(ipc.KindRun, seq, svc)), fd); err != nil {
				note(fmt.Sprintf("flood: %d sent: %v", seq-1, err))
				return
			}
			if seq%512 == 0 {
				note(fmt.Sprintf("flood: %d sent", seq))
			}
		}
	},
}

// hello is the honest start: Hello, then Welcome and the Service
// messages, then the wait for the test's go.
func hello() {
	send(mustEncode(&ipc.Message{Kind: ipc.KindHello}))
	welcome()
	wait()
}

// honest is every later start: Hello, Welcome, then reading until the
// executor goes.
func honest() {
	send(mustEncode(&ipc.Message{Kind: ipc.KindHello}))
	welcome()
	drain()
}

// welcomed is the executor's Welcome.
var welcomed *ipc.Message

func welcome() {
	m := receive()
	if m == nil || m.Kind != ipc.KindWelcome {
		note("no welcome")
		os.Exit(1)
	}
	welcomed = m
	for i := uint32(0); i < m.Services; i++ {
		if s := receive(); s == nil || s.Kind != ipc.KindService {
			note("no service")
			os.Exit(1)
		}
	}
	note("ready")
}

// wait notes that it waits, then waits for the test to create DIR/go.
func wait() {
	note("waiting")
	for {
		if _, err := os.Stat(filepath.Join(state, "go")); err == nil {
			note("attack")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drain reads until end of file, then exits.
func drain() {
	for receive() != nil {
	}
	note("end of file")
	os.Exit(0)
}

func receive() *ipc.Message {
	buf := make([]byte, ipc.MaxMessage)
	n, _, _, _, err := unix.Recvmsg(pairFd, buf, nil, 0)
	if err != nil || n == 0 {
		return nil
	}
	m, err := ipc.Decode(buf[:n])
	if err != nil {
		note("undecodable message from the executor: " + err.Error())
		return nil
	}
	return m
}

func msg(k ipc.Kind, seq uint64, svc uint32) *ipc.Message {
	return &ipc.Message{Kind: k, Seq: seq, Service: svc}
}

func mustEncode(m *ipc.Message) []byte {
	b, err := ipc.Encode(m)
	must(err)
	return b
}

func run(m *ipc.Message, fds ...int) { sendFds(mustEncode(m), fds...) }

func send(b []byte) { sendFds(b) }

func sendFds(b []byte, fds ...int) {
	if err := sendMsg(b, fds...); err != nil {
		note("send: " + err.Error())
	}
}

func sendMsg(b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(pairFd, b, oob, nil, 0)
}

// sock returns one end of a new stream socketpair: the kind of descriptor
// an honest Run carries.
func sock() int {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(err)
	return p[0]
}

// acceptOne accepts one connection on the first listening socket, waiting
// up to 20 seconds for the test to connect.
func acceptOne() int {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if fd, _, err := unix.Accept4(listenFd, unix.SOCK_CLOEXEC); err == nil {
			return fd
		} else if err != unix.EAGAIN && err != unix.EINTR {
			must(err)
		}
	}
	must(fmt.Errorf("no connection to accept within 20s"))
	return -1
}

func must(err error) {
	if err != nil {
		note("fatal: " + err.Error())
		os.Exit(1)
	}
}

// note appends "WHAT PID" to DIR/runs and returns how many starts it
// holds.
func note(what string) int {
	path := filepath.Join(state, "runs")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		fmt.Fprintf(f, "%s %d\n", what, os.Getpid())
		f.Close()
	}
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "start ")
}

func readConfig() map[string]string {
	self, err := os.Executable()
	if err != nil {
		os.Exit(2)
	}
	f, err := os.Open(filepath.Join(filepath.Dir(self), "scenario"))
	if err != nil {
		os.Exit(2)
	}
	defer f.Close()
	cfg := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		cfg[k] = strings.TrimSpace(v)
	}
	return cfg
}
