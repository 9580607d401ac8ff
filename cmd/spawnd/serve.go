package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"spawnd/executor"
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
	cfg, err := executor.Configure(p, *verbose, "", -1)
	if err != nil {
		return fatalf("%v", err)
	}
	cfg.Reload = func() (*policy.Policy, error) { return policy.Load(*dir, os.Environ()) }
	if err := executor.Run(cfg); err != nil { // logged
		return fatalf("%v", err)
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
