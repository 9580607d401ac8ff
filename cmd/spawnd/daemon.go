package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/maillog"
	"spawnd/policy"
)

// master(8)'s descriptors in a child it forks.
const (
	masterStatusFd = 5
	masterListenFd = 6
)

// runDaemon is Postfix mode: master(8) ran
// `spawnd [generic daemon options] user=NAME[:GROUP] argv=COMMAND...`
// with the status channel at fd 5 and the listening sockets from fd 6.
func runDaemon(args []string) int {
	a, err := policy.ParseDaemonArgs(args)
	if err != nil {
		return daemonFatal("%v", err)
	}
	if a.Unprivileged {
		return daemonFatal("service %s requires privileged operation", a.Service)
	}
	if a.Chroot {
		return daemonFatal("service %s: chroot (master.cf chroot column y) is not supported; set it to n", a.Service)
	}
	gen, err := strconv.ParseUint(os.Getenv("GENERATION"), 8, 32)
	if err != nil && os.Getenv("GENERATION") != "" {
		return daemonFatal("bad generation: %s", os.Getenv("GENERATION"))
	}
	dir := os.Getenv("MAIL_CONFIG")
	if dir == "" {
		dir = "/etc/postfix"
	}
	p, err := policy.LoadDaemon(dir, a, os.Environ())
	if err != nil {
		// Under master(8) stderr is /dev/null: say why in the log the
		// administrator reads, as spawn(8) does.
		if p != nil {
			if log, lerr := maillog.Open(p.MaillogFile, p.SyslogName+"/spawnd", p.SyslogFacility); lerr == nil {
				fatalf("%v", err)
				time.Sleep(time.Second) // as daemonFatal
				log.Fatal("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
		}
		return daemonFatal("%v", err)
	}
	log, flags, err := setup(p, a.Verbose > 0)
	if err != nil {
		return daemonFatal("%v", err)
	}
	var sockets []int
	for fd := 3; fd < masterListenFd+a.Sockets; fd++ {
		unix.CloseOnExec(fd)
		if fd >= masterListenFd {
			sockets = append(sockets, fd)
		}
	}
	chdir(p, log)
	flags = append(flags, "-p", "-P", strconv.Itoa(os.Getpid()), "-g", strconv.FormatUint(gen, 10),
		"-u", strconv.Itoa(p.MaxUse), "-t", strconv.Itoa(int(p.MaxIdle/time.Second)))
	s := newSupervisor(p, log, [][]int{sockets}, masterStatusFd, flags)
	outcome, err := s.run()
	if err != nil {
		log.Error("%v", err)
	}
	if err != nil || outcome == died {
		return 1
	}
	return 0
}

// daemonFatal reports a fatal error before the configured log is open: on
// stderr (/dev/null under master(8)) and to syslog as postfix/spawnd. As
// Postfix's msg_fatal does, it sleeps a second first, so that a daemon
// failing at start-up does not make master(8) spin.
func daemonFatal(format string, a ...any) int {
	fatalf(format, a...)
	time.Sleep(time.Second)
	if log, err := maillog.Open("", "postfix/spawnd", 2); err == nil { // 2: LOG_MAIL
		log.Fatal(format, a...)
	}
	return 1
}
