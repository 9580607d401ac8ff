package main

import (
	"cmp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/executor"
	"spawnd/maillog"
	"spawnd/policy"
)

// masterListenFd is the first of the listening sockets master(8) passes
// a child it forks; its status channel is at 5 (ipc.StatusFd).
const masterListenFd = 6

// runDaemon is Postfix mode: master(8) ran
// `spawnd [generic daemon options] user=NAME[:GROUP] argv=COMMAND...`
// with the status channel at fd 5 and the listening sockets from fd 6.
func runDaemon(args []string) int {
	a, err := policy.ParseDaemonArgs(args)
	if err != nil {
		return daemonFatal(nil, "%v", err)
	}
	if _, ok := os.LookupEnv("MAIL_VERBOSE"); ok { // as the skeleton
		a.Verbose++
	}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil && !a.Debug {
		return daemonFatal(nil, "do not run this command by hand")
	}
	gen, err := strconv.ParseUint(os.Getenv("GENERATION"), 8, 32)
	if err != nil && os.Getenv("GENERATION") != "" {
		return daemonFatal(nil, "bad generation: %s", os.Getenv("GENERATION"))
	}
	dir := cmp.Or(os.Getenv("MAIL_CONFIG"), "/etc/postfix")
	p, err := policy.LoadDaemon(dir, a, os.Environ())
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "main.cf")); serr != nil {
			p = nil // main.cf unread: log as before it
		}
		return daemonFatal(p, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	cfg, err := executor.Configure(p, a.Verbose > 0, postlog(p), int64(gen))
	if err != nil {
		return daemonFatal(p, "%v", err)
	}
	if _, ok := os.LookupEnv("MAIL_DEBUG"); ok || a.DebugSelf {
		cfg.Log.Warning("-D or MAIL_DEBUG: spawnd runs no debugger_command; attach to pid %d by hand", os.Getpid())
	}
	var sockets []int // close-on-exec, as every inherited descriptor (Setup)
	for fd := masterListenFd; fd < masterListenFd+a.Sockets; fd++ {
		sockets = append(sockets, fd)
	}
	cfg.Sockets = [][]int{sockets}
	if executor.Run(cfg) != nil { // logged
		return 1
	}
	return 0
}

// daemonFatal reports a fatal error before the configured log is open: on
// stderr (/dev/null under master(8)) and where every Postfix daemon logs,
// as $MAIL_LOGTAG/spawnd, or with p (main.cf read) as $syslog_name/spawnd:
// to postlogd(8) at POSTLOG_SERVICE, which master(8) sets when
// maillog_file is, else to syslog. As Postfix's msg_fatal does, it sleeps
// a second first, so that a daemon failing at start-up does not make
// master(8) spin.
func daemonFatal(p *policy.Policy, format string, a ...any) int {
	fatalf(format, a...)
	time.Sleep(time.Second)
	ident, to := cmp.Or(os.Getenv("MAIL_LOGTAG"), "postfix"), os.Getenv("POSTLOG_SERVICE")
	if p != nil {
		ident, to = p.SyslogName, postlog(p)
	}
	if log, err := maillog.Open("", to, ident+"/spawnd", 2); err == nil { // 2: LOG_MAIL
		log.Fatal(format, a...)
	}
	return 1
}

// postlog is postlogd(8)'s socket when main.cf sets maillog_file: the one
// master(8) names in POSTLOG_SERVICE, else $queue_directory/public/postlog.
// Postfix mode never writes the file itself.
func postlog(p *policy.Policy) string {
	if p.MaillogFile == "" {
		return ""
	}
	return cmp.Or(os.Getenv("POSTLOG_SERVICE"), filepath.Join(p.QueueDirectory, "public", "postlog"))
}
