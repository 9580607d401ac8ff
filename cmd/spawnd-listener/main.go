package main

import (
	"errors"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/listener"
	"spawnd/maillog"
)

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
	for _, fd := range []int{ipc.PairFd, ipc.LogFd, ipc.StatusFd} {
		unix.CloseOnExec(fd) // it never execs; hygiene all the same
	}
	// Until Welcome names the ident and facility, and for a fatal error.
	log := logger()
	if len(os.Args) > 1 {
		log.Fatal("usage: spawnd-listener (no arguments: its settings come from the executor)")
	}
	if typ, err := unix.GetsockoptInt(ipc.PairFd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		log.Fatal("no socket pair to the executor on fd %d", ipc.PairFd)
	}
	if hardened != nil {
		log.Fatal("%v", hardened)
	}
	cfg := listener.Config{Pair: ipc.PairFd, Log: log,
		Stop: onSignal(syscall.SIGTERM, syscall.SIGINT), Leave: onSignal(syscall.SIGUSR1)}
	// Once Welcome has named the log's kind: a socket may need a redial.
	cfg.Sandbox = func() error {
		err := listener.Sandbox(log.Kind() != maillog.File)
		if errors.Is(err, listener.ErrNoFilter) {
			log.Warning("%v: running without one", err)
			return nil
		}
		return err
	}
	if err := listener.Run(cfg); err != nil {
		log.Fatal("%v", err)
	}
}

// logger logs to the destination the executor opened on fd 4, of the
// kind the descriptor is (a syslog socket, datagram or stream, or a
// file), or, when the listener was started by hand without one, to
// standard error.
func logger() *maillog.Logger {
	if !writable(ipc.LogFd) {
		return maillog.New(2, maillog.File, "postfix/spawnd", 2)
	}
	kind := maillog.File
	switch typ, err := unix.GetsockoptInt(ipc.LogFd, unix.SOL_SOCKET, unix.SO_TYPE); {
	case err == nil && typ == unix.SOCK_DGRAM:
		kind = maillog.Syslog
	case err == nil:
		kind = maillog.SyslogStream
	}
	return listener.NewLog(ipc.LogFd, kind, "postfix/spawnd", 2)
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
