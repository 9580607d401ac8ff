package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"spawnd/executor"
	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// runServe is `spawnd serve [-c DIR] [-v]`: every spawn service of
// DIR/master.cf, in the foreground, until SIGTERM or SIGINT; SIGHUP
// reloads DIR in process.
func runServe(args []string) int {
	fs := flag.NewFlagSet("spawnd serve", flag.ContinueOnError)
	dir := fs.String("c", "/etc/spawnd", "configuration `directory`")
	verbose := fs.Bool("v", false, "log one line per connection")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: spawnd serve [-c directory] [-v]")
		return 2
	}
	p, err := policy.Load(*dir, os.Environ())
	if err != nil {
		return fatalf("%v", err)
	}
	cfg, err := setup(p, *verbose, "")
	if err != nil {
		return fatalf("%v", err)
	}
	if err := executor.OpenSockets(&cfg); err != nil {
		cfg.Log.Error("%v", err)
		return fatalf("%v", err)
	}
	cfg.Reload = func() (*policy.Policy, error) { return policy.Load(*dir, os.Environ()) }
	return start(cfg)
}

// setup makes the process-wide settings both modes share, opens the log
// (postlogd(8) at postlog, when not empty) and returns the executor's
// configuration without the sockets.
func setup(p *policy.Policy, verbose bool, postlog string) (executor.Config, error) {
	executor.Setup()
	ident := p.SyslogName + "/spawnd"
	log, err := maillog.Open(p.MaillogFile, postlog, ident, p.SyslogFacility)
	if err != nil {
		return executor.Config{}, err
	}
	self, _ := os.Executable() // empty: services with limits are refused
	return executor.Config{Policy: p, Log: log, Verbose: verbose, Self: self, Status: -1,
		Welcome: ipc.Message{Ident: ident, Facility: uint8(p.SyslogFacility), Verbose: verbose,
			LogKind: string(log.Kind()), Host: os.Getenv("POSTLOG_HOSTNAME")},
		Listener: filepath.Join(filepath.Dir(self), "spawnd-listener")}, nil
}

// start runs the executor and returns the exit status: 1 when it could
// not start, or its listener failed in Postfix mode (both logged).
func start(cfg executor.Config) int {
	if executor.Run(cfg) != nil {
		return 1
	}
	return 0
}

// fatalf prints a fatal error in Postfix's shape, one line per error.
func fatalf(format string, a ...any) int {
	for _, line := range strings.Split(fmt.Sprintf(format, a...), "\n") {
		fmt.Fprintln(os.Stderr, "fatal: "+line)
	}
	return 1
}
