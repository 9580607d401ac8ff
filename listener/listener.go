// Package listener is spawnd's unprivileged half: it accepts connections on
// the listening sockets the executor handed it, keeps every service within
// its concurrency limit and all of them within the executor's hard cap,
// passes each client descriptor to the executor with the service's index,
// logs how each command ended as spawn(8) does, and in Postfix mode speaks
// master(8)'s status protocol. It runs as mail_owner, never runs a command
// and never changes its privileges.
//
// Invariants, and why they hold:
//
//   - A command is in flight from the Run that asks for it until its
//     Exited or Refused arrives; commands the executor announced as
//     Running at start-up are in flight until their results with sequence
//     number 0 arrive. A Run is sent only while its service is below its
//     limit and the total below the cap, so the listener never asks for
//     more than the executor's cap: the executor treats that as an attack.
//   - A service's sockets are in the epoll set exactly when it may accept
//     (reconcile): connections beyond its limit wait in the kernel's listen
//     backlog, and none is accepted only to be dropped.
//   - Every accepted descriptor is closed right after the Run that carries
//     it, sent or not, or at once when its service's client rules refuse
//     it (access.go): the listener keeps no client.
//   - One goroutine does all the work, so no state is shared; the only
//     other goroutine turns Config.Stop into an eventfd wake-up.
package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/maillog"
)

// Config is what Run needs. Run closes none of the descriptors it names.
type Config struct {
	// Pair is the listener's end of the executor's SOCK_SEQPACKET socket
	// pair, blocking (descriptor 3 in spawnd-listener).
	Pair int
	// Log receives outcome warnings and, with Verbose, one info line per
	// connection.
	Log *maillog.Logger
	// Verbose logs one info line per connection.
	Verbose bool
	// Postfix, when not nil, turns on Postfix mode.
	Postfix *Postfix
	// Stop, when it is closed or receives, makes Run stop accepting and
	// return once every command in flight has reported (SIGTERM).
	Stop <-chan struct{}
	// Leave, when it is closed or receives, makes Run stop accepting and
	// half-close the pair, without waiting for the commands in flight:
	// the executor answers with end of file after the results it has
	// sent, which Run logs, and keeps the later ones for the next
	// listener (spawnd's reload).
	Leave <-chan struct{}
	// Sandbox, when not nil, is called once every descriptor is open and
	// before the first accept (spawnd-listener: the seccomp filter).
	Sandbox func() error
}

// Postfix holds what Postfix mode adds: master(8)'s status channel and the
// process's limits.
type Postfix struct {
	// Status is master(8)'s status channel (descriptor 5). Its becoming
	// readable or reaching end of file means master(8) went away.
	Status int
	// Pid is the process id status messages carry: the process master(8)
	// forked, which is the executor, not the listener.
	Pid int32
	// Generation is master(8)'s GENERATION, already converted from octal.
	Generation uint32
	// MaxUse stops accepting after this many connections; 0: never.
	MaxUse int
	// MaxIdle stops after this long with nothing in flight; 0: never.
	MaxIdle time.Duration
}

// Tuning. None of these changes what the listener does, only how often.
const (
	acceptBatch  = 64                     // accepts per socket per wake-up, so that results interleave
	resultBatch  = 64                     // results per wake-up, likewise
	acceptPause  = 100 * time.Millisecond // no accepts on a socket after a resource error
	warnInterval = 10 * time.Second       // at most one accept warning this often
)

// Epoll tokens: the event's data names what became ready.
const (
	tokPair   = 0
	tokStatus = 1
	tokWake   = 2
	tokSocket = 3 // + index into listener.socks
)

// errGone says the executor went away: Run returns nil for it.
var errGone = errors.New("executor went away")

type service struct {
	name, command string
	limit         int // 0: only the cap
	inflight      int // Runs without a result, plus earlier
	earlier       int // results still due with seq 0 (commands of an earlier listener)
	clients       clients
}

type socket struct {
	fd      int
	svc     int
	tcp     bool      // inet or inet6: accepted sockets get SO_KEEPALIVE, as in Postfix
	polling bool      // in the epoll set
	paused  time.Time // not before this (after EMFILE and the like); zero: not paused
}

// pending is one Run without a result yet.
type pending struct {
	svc    int
	client *tally    // the client it counts against (access.go), or nil
	peer   string    // with Verbose only
	start  time.Time // with Verbose only
}

type listener struct {
	cfg      Config
	pf       *Postfix
	log      *maillog.Logger
	buf      [ipc.MaxMessage]byte // a message from the executor (pair.go)
	oob      [64]byte
	ep       int
	epf      *os.File        // ep in the runtime's poller
	epRaw    syscall.RawConn // of epf
	svcs     []*service
	socks    []*socket
	cap      int
	inflight int
	seq      uint64
	pending  map[uint64]pending
	used     int // connections accepted
	stopping bool
	run      ipc.Message // reused for every Run

	idleSince   time.Time // Postfix max_idle: when in flight last became 0
	lastWarn    time.Time // last accept warning
	lastCapWarn time.Time // last warning that the executor's cap is reached
	masterGone  bool      // the status channel is closed: write no more
	taken       bool      // the last status master(8) has from us is TAKEN
	anyPaused   bool
	wake        int // eventfd for Config.Stop and Leave; -1: none
	leave       atomic.Bool

	refusedSince  time.Time // start of the refusal warnings' interval (access.go)
	refusedLogged int       // refusals logged in it
	refusedMuted  int       // and not logged
}

// Run serves connections until the executor goes away (it returns nil at
// once), until a stop asked for by Config.Stop, by master(8) going away,
// by max_use or by max_idle has waited for every command in flight (nil),
// or until an error: a broken protocol or a failed system call.
func Run(cfg Config) error {
	if cfg.Log == nil || cfg.Pair < 0 {
		return errors.New("listener: Config needs Log and Pair")
	}
	l := &listener{cfg: cfg, pf: cfg.Postfix, log: cfg.Log, ep: -1, wake: -1}
	// The Go runtime opens its poller (an epoll fd and an eventfd) with
	// the first timer, which the garbage collector's scavenger may be the
	// first to set, under load. Open it now, so that the listener's
	// descriptors are the same after start-up as after any load.
	time.AfterFunc(time.Hour, func() {}).Stop()
	err := l.serve()
	if l.epf != nil {
		l.epf.Close()
	} else if l.ep >= 0 {
		unix.Close(l.ep)
	}
	if err == errGone {
		return nil
	}
	return err
}

func (l *listener) serve() error {
	unix.CloseOnExec(l.cfg.Pair)
	if err := l.handshake(); err != nil {
		return err
	}
	if l.pf != nil { // from Config or Welcome
		unix.CloseOnExec(l.pf.Status)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	l.ep = ep
	// The loop waits in the runtime's poller, which watches this epoll
	// set like any descriptor, not in a blocking epoll_wait: a thread in
	// a blocking system call makes the runtime's monitor take its P back
	// and poll every 20 µs, which cost more CPU than the rest of the
	// listener (bench/README.md, Performance).
	if err := unix.SetNonblock(ep, true); err != nil {
		return fmt.Errorf("epoll fd: %w", err)
	}
	l.epf = os.NewFile(uintptr(ep), "epoll")
	if l.epRaw, err = l.epf.SyscallConn(); err != nil {
		return fmt.Errorf("epoll fd: %w", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.cfg.Pair, tokPair); err != nil {
		return err
	}
	if l.pf != nil {
		if err := l.ctl(unix.EPOLL_CTL_ADD, l.pf.Status, tokStatus); err != nil {
			return err
		}
		l.idleSince = time.Now()
	}
	if l.cfg.Stop != nil || l.cfg.Leave != nil {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return fmt.Errorf("eventfd: %w", err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-l.cfg.Stop:
			case <-l.cfg.Leave:
				l.leave.Store(true)
			case <-done:
				return
			}
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			unix.Write(efd, one[:])
		}()
		// The goroutine may be writing to efd: close it only after it ended.
		defer func() { close(done); wg.Wait(); unix.Close(efd) }()
		l.wake = efd
		if err := l.ctl(unix.EPOLL_CTL_ADD, efd, tokWake); err != nil {
			return err
		}
	}
	if err := l.reconcile(); err != nil {
		return err
	}
	if l.cfg.Sandbox != nil {
		if err := l.cfg.Sandbox(); err != nil {
			return err
		}
	}
	err = l.loop()
	if err == nil {
		l.served()
	}
	return err
}
