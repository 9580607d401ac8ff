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
	"unsafe"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/listener"
)

const (
	pairFd   = 3
	listenFd = 5
)

var (
	state     string
	listenFds []int // per service, its first listening fd
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "netns-helper" {
		netnsHelper(os.Args[2])
		return
	}
	if len(os.Args) > 3 && os.Args[1] == "symlink-racer" {
		racer(os.Args[2], os.Args[3:])
		return
	}
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
	"honest": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc), accepted(svc)) },
	// The client end of a connection the listener makes to the service
	// itself: the command would see the listener's connection as its
	// client, with the executor's credentials (SO_PEERCRED) on the other
	// end of the socket the listener would hold.
	"clientend": func(svc uint32) {
		hello()
		c, _ := connectTo(svc)
		run(msg(ipc.KindRun, 1, svc), c)
	},
	// A socket of its own bound to the unix service's path (private/ is
	// mail_owner's), and a connection accepted on it: its local address
	// is the service's path.
	"rebind": func(svc uint32) {
		hello()
		sa, err := unix.Getsockname(listenFds[svc])
		must(err)
		path := sa.(*unix.SockaddrUnix).Name
		must(os.Remove(path))
		l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		must(err)
		must(unix.Bind(l, &unix.SockaddrUnix{Name: path}))
		must(unix.Listen(l, 1))
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		must(err)
		must(unix.Connect(c, &unix.SockaddrUnix{Name: path}))
		a, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		must(err)
		run(msg(ipc.KindRun, 1, svc), a)
	},
	// A TCP connection made in a network namespace of the listener's own,
	// on the service's address and port.
	"netns": func(svc uint32) { hello(); run(msg(ipc.KindRun, 1, svc), foreign(svc)) },
	// After start-up, under the real listener's seccomp filter: an exec,
	// and an open, each of which would leave a file in the state
	// directory.
	"execve": func(svc uint32) {
		hello()
		sandbox()
		err := syscall.Exec("/usr/bin/touch", []string{"touch", filepath.Join(state, "escaped.exec")}, nil)
		note(fmt.Sprintf("execve returned: %v", err))
	},
	"open": func(svc uint32) {
		hello()
		sandbox()
		f, err := os.Create(filepath.Join(state, "escaped.open"))
		note(fmt.Sprintf("open returned: %v %v", f, err))
	},
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
	// A service index of 2^32, which a decoder that truncates would read
	// as service 0, and a Run naming two sequence numbers.
	"servicewrap": func(svc uint32) {
		hello()
		sendFds([]byte{0x84, 0xa1, 'v', ipc.Version, 0xa1, 'k', byte(ipc.KindRun), 0xa1, 'q', 0x01,
			0xa1, 's', 0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0}, sock())
	},
	"duplicateseq": func(svc uint32) {
		hello()
		sendFds([]byte{0x84, 0xa1, 'v', ipc.Version, 0xa1, 'k', byte(ipc.KindRun), 0xa1, 'q', 0x01,
			0xa1, 'q', 0x02}, sock())
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
		fd := accepted(svc)
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
		fd := accepted(svc)
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
		fd := accepted(svc)
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
		s := receive()
		if s == nil || s.Kind != ipc.KindService {
			note("no service")
			os.Exit(1)
		}
		listenFds = append(listenFds, int(s.Fd))
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

// sock returns one end of a new stream socketpair: a stream socket, as
// ipc's checks want, that no service accepted (tie.go refuses it).
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

// connectTo connects a new socket to service svc's listening address and
// returns it with the listening fd.
func connectTo(svc uint32) (client, lfd int) {
	lfd = listenFds[svc]
	sa, err := unix.Getsockname(lfd)
	must(err)
	dom, err := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	must(err)
	if a, ok := sa.(*unix.SockaddrInet6); ok && a.Addr == [16]byte{} {
		a.Addr[15] = 1 // ::1 for the wildcard
	}
	if a, ok := sa.(*unix.SockaddrInet4); ok && a.Addr == [4]byte{} {
		a.Addr = [4]byte{127, 0, 0, 1}
	}
	client, err = unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(err)
	must(unix.Connect(client, sa))
	return client, lfd
}

// accepted returns an honest client descriptor for service svc: a
// connection to it, accepted on its listening socket, as the real
// listener passes. The client end stays open.
func accepted(svc uint32) int {
	_, lfd := connectTo(svc)
	must(unix.SetNonblock(lfd, false))
	fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	must(err)
	return fd
}

// foreign returns a TCP connection accepted in a new user and network
// namespace, on service svc's address and port there, from a child that
// sends it back over a socket pair.
func foreign(svc uint32) int {
	sa, err := unix.Getsockname(listenFds[svc])
	must(err)
	port := 0
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	}
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(err)
	self, _ := os.Executable()
	uid, gid := os.Getuid(), os.Getgid()
	pid, err := syscall.ForkExec(self, []string{self, "netns-helper", strconv.Itoa(port)}, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2, uintptr(p[1])},
		Sys: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}},
	})
	must(err)
	unix.Close(p[1])
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(p[0], buf, oob, 0)
	must(err)
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	must(err)
	if len(msgs) != 1 {
		note("netns: no descriptor from the helper")
		os.Exit(1)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	must(err)
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	note("netns: got a connection to 127.0.0.1 port " + strconv.Itoa(port) + " from another network namespace")
	return fds[0]
}

// netnsHelper runs in the new namespaces: it brings the loopback up,
// listens on 127.0.0.1:port, connects to it, and sends the accepted end to
// fd 3.
func netnsHelper(port string) {
	state = readConfig()["state"]
	n, _ := strconv.Atoi(port)
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	must(err)
	ifr, err := unix.NewIfreq("lo")
	must(err)
	must(unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr))
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	must(unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr))
	sa := &unix.SockaddrInet4{Port: n, Addr: [4]byte{127, 0, 0, 1}}
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	must(err)
	must(unix.Bind(l, sa))
	must(unix.Listen(l, 1))
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	must(err)
	must(unix.Connect(c, sa))
	a, _, err := unix.Accept4(l, 0)
	must(err)
	must(unix.Sendmsg(3, []byte{0}, unix.UnixRights(a), nil, 0))
}

// sandbox confines the process as the real listener is after start-up.
func sandbox() {
	must(listener.Harden())
	must(listener.Sandbox(false))
}

// racer is not a listener: run as mail_owner, it watches dir, where
// spawnd binds unix sockets, and renames a symlink to one of victims over
// every name created there, the moment it is created; it exits after ten
// minutes at most.
func racer(dir string, victims []string) {
	time.AfterFunc(10*time.Minute, func() { os.Exit(0) })
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		os.Exit(1)
	}
	if _, err := unix.InotifyAddWatch(ifd, dir, unix.IN_CREATE); err != nil {
		os.Exit(1)
	}
	buf := make([]byte, 64<<10)
	for i := 0; ; {
		n, err := unix.Read(ifd, buf)
		if err != nil {
			os.Exit(1)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if name == "" || strings.HasPrefix(name, ".swap") {
				continue
			}
			i++
			tmp := filepath.Join(dir, fmt.Sprintf(".swap%d", i))
			unix.Symlink(victims[i%len(victims)], tmp)
			unix.Rename(tmp, filepath.Join(dir, name))
		}
	}
}
