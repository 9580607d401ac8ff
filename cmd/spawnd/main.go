package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/executor"
	"spawnd/maillog"
	"spawnd/policy"
)

// version is set at build time by the Makefile.
var version = "dev"

func main() {
	// The live heap is a few hundred KiB; with the default GOGC of 100 the
	// heap grows to the runtime's 4 MiB floor before it is collected,
	// which showed as 4 MiB more RSS after the first few thousand
	// connections. 25 puts the floor at 1 MiB, at no CPU cost that the
	// benchmark can see (bench/README.md, Performance). GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	args := os.Args[1:]
	switch append(args, "")[0] { // the first argument, or ""
	case "serve":
		os.Exit(runServe(args[1:]))
	case "check":
		os.Exit(runCheck(args[1:]))
	case "version":
		fmt.Println("spawnd", version)
		return
	}
	// Anything else is a Postfix master(8) command line:
	// spawnd [generic daemon options] user=NAME[:GROUP] argv=COMMAND...
	os.Exit(runDaemon(args))
}

// The main goroutine stays on the main thread, where the executor's loop
// forks every child (executor's invariant 7).
func init() { runtime.LockOSThread() }

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

// runCheck is `spawnd check [-c DIR]`: load and validate everything serve
// would, print the resolved services on stdout and warnings and errors on
// stderr. It opens no socket and starts nothing.
func runCheck(args []string) int {
	fs := flag.NewFlagSet("spawnd check", flag.ContinueOnError)
	dir := fs.String("c", "/etc/spawnd", "configuration `directory`")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: spawnd check [-c directory]")
		return 2
	}
	p, err := policy.Load(*dir, os.Environ())
	for _, w := range p.Warnings {
		fmt.Fprintln(os.Stderr, "warning: "+w)
	}
	if err != nil {
		return fatalf("%v", err)
	}
	for _, s := range p.Services {
		argv := make([]string, len(s.Argv))
		for i, a := range s.Argv { // master.cf's { } grouping where needed
			if argv[i] = a; a == "" || strings.ContainsAny(a, " \t") {
				argv[i] = "{ " + a + " }"
			}
		}
		line := fmt.Sprintf("%s %s %s user=%s group=%s time_limit=%ds process_limit=%d",
			s.Name, s.Endpoint.Type, s.Endpoint.Address, s.User, s.Group, int64(s.TimeLimit.Seconds()), s.ProcessLimit)
		// the limits set, in main.cf's names (the command's without command_)
		for _, l := range [][2]any{{"cpu_limit", s.Limits.CPU}, {"address_space_limit", s.Limits.AddressSpace},
			{"open_files_limit", s.Limits.OpenFiles}, {"nproc_limit", s.Limits.Processes}, {"file_size_limit", s.Limits.FileSize},
			{"client_connection_limit", s.ClientLimit}, {"client_connection_rate_limit", s.RateLimit}} {
			if v := fmt.Sprint(l[1]); v != "0" {
				line += fmt.Sprintf(" %s=%s", l[0], v)
			}
		}
		if s.Limits.NoNewPrivileges {
			line += " no_new_privileges=yes"
		}
		if s.RateLimit > 0 {
			line += fmt.Sprintf(" client_rate_time_unit=%ds", int64(s.RateUnit.Seconds()))
		}
		if len(s.Access) > 0 {
			line += " client_access={ " + s.Access.String() + " }"
		}
		fmt.Println(line + " argv=" + strings.Join(argv, " "))
	}
	return 0
}

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
	cfg.Sockets = [][]int{make([]int, a.Sockets)} // close-on-exec, as every inherited descriptor (Setup)
	for i := range cfg.Sockets[0] {
		cfg.Sockets[0][i] = masterListenFd + i
	}
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
