package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"spawnd/ipc"
	"spawnd/listener"
	"spawnd/maillog"
)

// The descriptors spawnd hands its listener.
const (
	pairFd   = 3
	logFd    = 4
	statusFd = 5
)

func main() {
	verbose := flag.Bool("v", false, "log one line per connection")
	kind := flag.String("L", string(maillog.File), "log destination `kind`: syslog, stream or file")
	ident := flag.String("i", "postfix/spawnd", "log `ident`")
	facility := flag.Int("F", 2, "syslog `facility` number")
	postfix := flag.Bool("p", false, "Postfix mode: master(8)'s status channel is fd 5")
	pid := flag.Int("P", 0, "`pid` to report to master(8)")
	gen := flag.Uint("g", 0, "master(8)'s `generation`")
	maxUse := flag.Int("u", 0, "stop after `n` connections (0: never)")
	maxIdle := flag.Int("t", 0, "stop after `seconds` idle (0: never)")
	flag.Parse()
	log := maillog.New(logFd, maillog.Kind(*kind), *ident, *facility)
	if flag.NArg() > 0 {
		log.Fatal("usage: spawnd-listener [options]: unexpected argument %q", flag.Arg(0))
	}
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; close(stop) }()
	cfg := listener.Config{Conn: ipc.NewConn(pairFd), Log: log, Verbose: *verbose, Status: -1, Stop: stop}
	if *postfix {
		cfg.Status, cfg.Pid, cfg.Gen = statusFd, int32(*pid), uint32(*gen)
		cfg.MaxUse, cfg.MaxIdle = *maxUse, time.Duration(*maxIdle)*time.Second
	}
	if err := listener.Run(cfg, pairFd); err != nil {
		log.Fatal("%v", err)
	}
	fmt.Fprint(os.Stderr)
}
