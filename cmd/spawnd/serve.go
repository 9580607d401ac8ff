package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"spawnd/executor"
	"spawnd/maillog"
	"spawnd/policy"
)

// runServe is `spawnd serve [-c DIR] [-v]`: every spawn service of
// DIR/master.cf, in the foreground, until SIGTERM or SIGINT.
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
	log, flags, err := setup(p, *verbose, "")
	if err != nil {
		return fatalf("%v", err)
	}
	own := map[string]bool{}
	for _, name := range strings.Split(os.Getenv("SPAWND_OWN_SOCKETS"), ":") {
		own[name] = true
	}
	os.Unsetenv("SPAWND_OWN_SOCKETS")
	sockets, paths, unused, err := openSockets(p, inherited(), own)
	if err != nil {
		removeAll(paths)
		log.Error("%v", err)
		return fatalf("%v", err)
	}
	for _, name := range unused {
		log.Warning("inherited socket %s (LISTEN_FDNAMES) is no service's: closed", name)
	}
	chdir(p, log)
	s := newSupervisor(p, log, sockets, -1, flags)
	// Before the listener starts the reaper: see executor.Adopt.
	var handed []string
	for _, kv := range os.Environ() {
		if name, v, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SPAWND_RUNNING_") {
			handed = append(handed, v)
			os.Unsetenv(name)
		}
	}
	s.ex.Adopt(strings.Join(handed, " "))
	s.reload = func() bool {
		if _, err := policy.Load(*dir, os.Environ()); err != nil {
			log.Warning("reload: keeping the old configuration: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
			return false
		}
		log.Info("reload: configuration is valid, restarting with it")
		return true
	}
	outcome, err := s.run()
	if outcome == reexec {
		err = reexecute(p, sockets, paths, s.ex)
	}
	removeAll(paths)
	if err != nil {
		log.Error("%v", err)
		return 1
	}
	return 0
}

// setup makes the process-wide settings both modes share and opens the
// log (postlogd(8) at postlog, when not empty). It returns the listener's
// logging flags.
func setup(p *policy.Policy, verbose bool, postlog string) (*maillog.Logger, []string, error) {
	executor.Setup()
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	ident := p.SyslogName + "/spawnd"
	log, err := maillog.Open(p.MaillogFile, postlog, ident, p.SyslogFacility)
	if err != nil {
		return nil, nil, err
	}
	flags := []string{"-i", ident, "-F", strconv.Itoa(p.SyslogFacility), "-H", cmp.Or(os.Getenv("POSTLOG_HOSTNAME"), "-")}
	if verbose {
		flags = append(flags, "-v")
	}
	return log, flags, nil
}

// reexecute replaces this process with a new spawnd serve (same pid, so
// the commands still running stay its children), handing it the listening
// sockets the way systemd does, so that queued connections survive, and
// the running commands in SPAWND_RUNNING (executor.Handover).
func reexecute(p *policy.Policy, sockets [][]int, paths []string, ex *executor.Executor) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var names, own []string
	var fds []int
	for i, s := range p.Services {
		if slices.Contains(paths, s.Endpoint.Address) {
			own = append(own, s.Name)
		}
		for _, fd := range sockets[i] {
			// LISTEN_FDNAMES is ":"-separated; inet names hold ":".
			names = append(names, strings.NewReplacer("%", "%25", ":", "%3A").Replace(s.Name))
			moved, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 1000)
			if err != nil {
				return fmt.Errorf("reload: %w", err)
			}
			fds = append(fds, moved)
		}
	}
	// The commands' sockets leave 3 onwards to the listening ones.
	running, err := ex.Handover(3 + len(fds))
	if err != nil {
		return err
	}
	for i, fd := range fds {
		if err := unix.Dup3(fd, 3+i, 0); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
	}
	env := append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid()),
		"LISTEN_FDS="+strconv.Itoa(len(fds)), "LISTEN_FDNAMES="+strings.Join(names, ":"),
		"SPAWND_OWN_SOCKETS="+strings.Join(own, ":"))
	// SPAWND_RUNNING_0, _1...: exec refuses a variable over 128 KiB.
	for i := 0; len(running) > 0; i++ {
		var v strings.Builder
		for v.Len() < 64<<10 && len(running) > 0 {
			v.WriteString(" " + running[0])
			running = running[1:]
		}
		env = append(env, fmt.Sprintf("SPAWND_RUNNING_%d=%s", i, v.String()))
	}
	return executor.Exec(self, os.Args, env)
}

// chdir enters the commands' working directory as root, once, so that
// they inherit it (see executor.spawn).
func chdir(p *policy.Policy, log *maillog.Logger) {
	for _, s := range p.Services {
		if err := os.Chdir(s.Dir); err != nil {
			log.Warning("chdir %s: %v", s.Dir, err)
		}
		return
	}
}

func removeAll(paths []string) {
	for _, p := range paths {
		removeSocket(p)
	}
}

// fatalf prints a fatal error in Postfix's shape, one line per error.
func fatalf(format string, a ...any) int {
	for _, line := range strings.Split(fmt.Sprintf(format, a...), "\n") {
		fmt.Fprintln(os.Stderr, "fatal: "+line)
	}
	return 1
}
