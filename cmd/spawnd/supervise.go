package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/executor"
	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// hardCap bounds the commands one executor runs at once, whatever the
// listener asks: the executor holds one descriptor per running command.
// fdReserve is what it keeps free of its descriptor limit besides: the
// fork's pipe, /proc walks, the log's redial and a new listener's pair.
const (
	hardCap   = 4096
	fdReserve = 16
)

// supervisor keeps one listener running for an executor: it starts it as
// mail_owner, serves the protocol with it, restarts it with back-off when
// it dies (standalone) and stops it on a signal.
type supervisor struct {
	pol     *policy.Policy
	log     *maillog.Logger
	ex      *executor.Executor
	sockets []int    // every listening socket, in service order
	status  int      // master(8) status channel, -1 standalone
	flags   []string // the listener's command-line flags

	// reload, standalone only, validates the configuration again on
	// SIGHUP and reports whether to re-execute with it.
	reload func() bool
}

// newSupervisor builds the executor for a policy whose services listen on
// the given sockets; in the listener they start at fd 5, or 6 after
// master(8)'s status channel.
func newSupervisor(p *policy.Policy, log *maillog.Logger, sockets [][]int, status int, flags []string) *supervisor {
	s := &supervisor{pol: p, log: log, status: status, flags: flags}
	self, _ := os.Executable() // empty: services with limits are refused
	cfg := executor.Config{Policy: p, Log: log, Cap: commandCap(log), Verbose: slices.Contains(flags, "-v"), Self: self, Listening: sockets}
	next := int32(5)
	if status >= 0 {
		next = 6
	}
	for _, fds := range sockets {
		cfg.ListenFd = append(cfg.ListenFd, next)
		cfg.ListenN = append(cfg.ListenN, uint32(len(fds)))
		next += int32(len(fds))
		s.sockets = append(s.sockets, fds...)
	}
	s.ex = executor.New(cfg)
	return s
}

// commandCap returns the hard cap for a process whose listening sockets
// are open: hardCap, or less when RLIMIT_NOFILE leaves no room for a
// descriptor per command. The listener never asks past the cap (Welcome
// announces it), so a low limit makes connections wait in the backlog
// instead of making the kernel drop the descriptors it passes.
func commandCap(log *maillog.Logger) int {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return hardCap
	}
	open, _ := os.ReadDir("/proc/self/fd")
	n := int(min(lim.Cur, hardCap+1<<10)) - len(open) - fdReserve
	if n >= hardCap {
		return hardCap
	}
	n = max(n, 1)
	log.Warning("descriptor limit %d (RLIMIT_NOFILE) leaves room for %d commands at once; more connections wait", lim.Cur, n)
	return n
}

// Outcomes of one listener's life.
const (
	died = iota
	stop
	reexec
)

// run supervises listeners until a stop and the commands have finished;
// it returns stop, reexec, or died when in Postfix mode the listener failed
// and spawnd should exit for master(8) to start a new one.
func (s *supervisor) run() (int, error) {
	backoff := 100 * time.Millisecond
	for {
		started := time.Now()
		outcome, clean, err := s.once(sigs)
		if err != nil {
			return died, err
		}
		if outcome == died && clean && s.status >= 0 {
			outcome = stop // max_use, max_idle or master(8) gone
		}
		if outcome == reexec {
			return outcome, nil // the next image takes the running commands over
		}
		if outcome != died || s.status >= 0 {
			s.ex.Drain()
			return outcome, nil
		}
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		s.log.Warning("restarting the listener in %v", backoff)
		select {
		case <-time.After(backoff):
		case sig := <-sigs:
			if sig != unix.SIGHUP {
				s.ex.Drain()
				return stop, nil
			}
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// once runs one listener until it is gone. clean reports that it exited
// with status 0 on its own (Postfix mode: max_use, max_idle, master gone).
func (s *supervisor) once(sigs chan os.Signal) (outcome int, clean bool, err error) {
	mine, theirs, err := ipc.Pair()
	if err != nil {
		return died, false, err
	}
	// Not root's stderr: a terminal there would be the listener's to
	// inject input into (TIOCSTI).
	files := []int{devNull(), devNull(), devNull(), theirs, s.log.Fd()}
	if s.status >= 0 {
		files = append(files, s.status)
	}
	files = append(files, s.sockets...)
	self, err := os.Executable()
	if err != nil {
		return died, false, err
	}
	argv := append([]string{filepath.Join(filepath.Dir(self), "spawnd-listener")}, s.flags...)
	argv = append(argv, "-L", string(s.log.Kind()))
	owner := s.pol.MailOwner
	pid, exited, err := s.ex.StartProcess(argv, nil, files, &syscall.Credential{Uid: owner.Uid, Gid: owner.Gid, Groups: []uint32{}})
	unix.Close(theirs)
	if err != nil {
		unix.Close(mine)
		return died, false, err
	}
	conn := ipc.NewConn(mine)
	served := make(chan error, 1)
	go func() { served <- s.ex.Serve(conn) }()
	outcome = died
	for exited != nil || served != nil {
		select {
		case st := <-exited:
			exited = nil
			clean = st.Exited() && st.ExitStatus() == 0
			if !clean && outcome == died {
				s.log.Warning("listener pid %d %s", pid, describe(st))
			}
		case err := <-served:
			served = nil
			conn.Close()
			if err != nil { // a protocol violation, already logged
				unix.Kill(pid, unix.SIGKILL)
			}
		case sig := <-sigs:
			switch {
			case sig != unix.SIGHUP:
				outcome = stop
				unix.Kill(pid, unix.SIGTERM)
				if s.status >= 0 {
					// postfix stop: master(8) signals its process group,
					// not the commands (own sessions); end them too.
					s.ex.Terminate()
				}
			case outcome == died && s.reload != nil && s.reload():
				// The listener leaves without waiting for the running
				// commands: their results go to the next image's.
				outcome = reexec
				unix.Kill(pid, unix.SIGUSR1)
			}
		}
	}
	return outcome, clean, nil
}

func describe(st syscall.WaitStatus) string {
	if st.Signaled() {
		return "killed by signal " + strconv.Itoa(int(st.Signal()))
	}
	return "exit status " + strconv.Itoa(st.ExitStatus())
}

// sigs receives the signals spawnd acts on. setup installs it before any
// socket is opened: a client can connect as soon as a socket listens, and
// a signal must not find the default action (termination) then.
var sigs = make(chan os.Signal, 4)

var nullFd = -1

// devNull returns a descriptor open on /dev/null, the listener's stdin,
// stdout and stderr, or -1 (the descriptor closed in the listener).
func devNull() int {
	if nullFd < 0 {
		fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1
		}
		nullFd = fd
	}
	return nullFd
}
