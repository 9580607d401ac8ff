package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/listener"
	"spawnd/maillog"
)

// The descriptors spawnd hands its listener; the listening sockets follow,
// at the numbers the executor's Service messages give.
const (
	pairFd   = 3
	logFd    = 4
	statusFd = 5 // with -p only
)

const usage = "usage: spawnd-listener [-v] [-L syslog|stream|file|postlog] [-i ident] [-F facility] [-H host] " +
	"[-p -P pid -g generation -u max_use -t max_idle]"

func main() {
	// One goroutine does all the work, in an epoll loop; a second P only
	// lets the runtime hand the P of the goroutine in epoll_wait to other
	// threads. With one P, and the heap's collection floor at 1 MiB
	// instead of 4 (see spawnd's main), the listener used less CPU per
	// connection and 2 MiB less memory (bench/README.md, Performance).
	// Before anything else: other processes of mail_owner may not trace
	// or dump it from here on.
	hardened := listener.Harden()
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(25)
	for _, fd := range []int{pairFd, logFd, statusFd} {
		unix.CloseOnExec(fd) // it never execs; hygiene all the same
	}
	fs := flag.NewFlagSet("spawnd-listener", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	verbose := fs.Bool("v", false, "")
	kind := fs.String("L", string(maillog.File), "")
	ident := fs.String("i", "postfix/spawnd", "")
	facility := fs.Int("F", 2, "")
	host := fs.String("H", "-", "")
	postfix := fs.Bool("p", false, "")
	pid := fs.Int("P", 0, "")
	gen := fs.Uint64("g", 0, "")
	maxUse := fs.Int("u", 0, "")
	maxIdle := fs.Int("t", 0, "")
	err := fs.Parse(os.Args[1:])

	if *host != "-" { // the host field of file and postlog records
		os.Setenv("POSTLOG_HOSTNAME", *host)
	}
	log := logger(maillog.Kind(*kind), *ident, *facility)
	if *postfix && *pid > 0 {
		log.SetPid(*pid) // master(8) knows the executor, not the listener
	}
	switch k := maillog.Kind(*kind); {
	case err != nil:
	case k != maillog.Syslog && k != maillog.SyslogStream && k != maillog.File && k != maillog.Postlog:
		err = fmt.Errorf("-L %s: want syslog, stream, file or postlog", *kind)
	case *facility < 0 || *facility > 23:
		err = fmt.Errorf("-F %d: want a syslog facility number, 0 to 23", *facility)
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case !*postfix && (*pid != 0 || *gen != 0 || *maxUse != 0 || *maxIdle != 0):
		err = fmt.Errorf("-P, -g, -u and -t need -p")
	case *postfix && (*pid <= 0 || *pid > math.MaxInt32):
		err = fmt.Errorf("-P %d: want the pid master(8) forked", *pid)
	case *gen > math.MaxUint32 || *maxUse < 0 || *maxIdle < 0:
		err = fmt.Errorf("-g %d, -u %d, -t %d: out of range", *gen, *maxUse, *maxIdle)
	}
	if err != nil {
		log.Fatal("%s: %v", usage, err)
	}
	if hardened != nil {
		log.Fatal("%v", hardened)
	}
	if typ, err := unix.GetsockoptInt(pairFd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		log.Fatal("no socket pair to the executor on fd %d", pairFd)
	}
	cfg := listener.Config{Pair: pairFd, Log: log, Verbose: *verbose,
		Stop: onSignal(syscall.SIGTERM, syscall.SIGINT), Leave: onSignal(syscall.SIGUSR1)}
	cfg.Sandbox = func() error {
		err := listener.Sandbox(log.Kind() != maillog.File)
		if errors.Is(err, listener.ErrNoFilter) {
			log.Warning("%v: running without one", err)
			return nil
		}
		return err
	}
	if *postfix {
		if !writable(statusFd) {
			log.Fatal("-p: no master(8) status channel on fd %d", statusFd)
		}
		cfg.Postfix = &listener.Postfix{Status: statusFd, Pid: int32(*pid), Generation: uint32(*gen),
			MaxUse: *maxUse, MaxIdle: time.Duration(*maxIdle) * time.Second}
	}
	if err := listener.Run(cfg); err != nil {
		log.Fatal("%v", err)
	}
}

// logger logs to the destination the executor opened on fd 4 or, when the
// listener was started by hand without one, to standard error.
func logger(kind maillog.Kind, ident string, facility int) *maillog.Logger {
	if !writable(logFd) {
		return maillog.New(2, maillog.File, ident, facility)
	}
	if kind != maillog.Syslog && kind != maillog.SyslogStream && kind != maillog.Postlog {
		kind = maillog.File
	}
	return maillog.New(logFd, kind, ident, facility)
}

// onSignal returns a channel closed at the first of the signals: SIGTERM
// or SIGINT, stop accepting, let the commands in flight report, exit 0;
// SIGUSR1 (spawnd's reload), stop accepting and exit without waiting for
// them.
func onSignal(which ...os.Signal) <-chan struct{} {
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, which...)
	go func() {
		<-sigs
		close(stop)
	}()
	return stop
}

// writable reports whether fd is open for writing. Open alone would not
// do: when the executor's descriptors are missing (a start by hand), the
// Go runtime may have taken their numbers for files it reads.
func writable(fd int) bool {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE != unix.O_RDONLY
}
