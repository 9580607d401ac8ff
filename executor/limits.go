package executor

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"spawnd/policy"
)

// A service that sets resource limits or no_new_privileges does not exec
// its command directly: the child execs spawnd's own executable as
// `spawnd limits [-cpu N] [-as N] [-nofile N] [-nproc N] [-fsize N]
// [-nnp] -- COMMAND ARG...`, already as the service's user with its
// groups, and that sets the limits on itself and execs the command, which
// keeps the pid, the session, the descriptors and the parent-death signal.
// The standard library's fork path has no hook between the credentials
// and exec, and limits set in the executor would bind the executor too.
// The verb runs with no privilege to lose: its only input is the argv the
// executor built from the policy.

// rlimits are the limits verb's options, in the order it applies them.
var rlimits = []struct {
	opt string
	res int
	get func(*policy.Limits) uint64
}{
	{"-cpu", unix.RLIMIT_CPU, func(l *policy.Limits) uint64 { return l.CPU }},
	{"-as", unix.RLIMIT_AS, func(l *policy.Limits) uint64 { return l.AddressSpace }},
	{"-nofile", unix.RLIMIT_NOFILE, func(l *policy.Limits) uint64 { return l.OpenFiles }},
	{"-nproc", unix.RLIMIT_NPROC, func(l *policy.Limits) uint64 { return l.Processes }},
	{"-fsize", unix.RLIMIT_FSIZE, func(l *policy.Limits) uint64 { return l.FileSize }},
}

// commandLine returns the path and argv a child of svc execs: its command, or
// the limits verb of the executable self in front of it.
func commandLine(self string, svc *policy.Service) (string, []string) {
	if svc.Limits == (policy.Limits{}) {
		return svc.Argv[0], svc.Argv
	}
	argv := []string{self, "limits"}
	for _, r := range rlimits {
		if v := r.get(&svc.Limits); v > 0 {
			argv = append(argv, r.opt, strconv.FormatUint(v, 10))
		}
	}
	if svc.Limits.NoNewPrivileges {
		argv = append(argv, "-nnp")
	}
	return self, append(append(argv, "--"), svc.Argv...)
}

// Limits is the limits verb. Its descriptors 0 to 2 are the client's, so
// it writes nothing: it exits 126 when an option is bad or a limit cannot
// be set, and 127 when the command cannot be executed. Each limit becomes
// the soft and the hard limit, or the inherited hard limit where that is
// lower; the CPU limit's hard limit is a second above its soft one, so
// that the command gets SIGXCPU before SIGKILL. It must run on the main
// thread: the parent-death signal belongs to the thread that execs.
func Limits(args []string) int {
	nnp := false
	for len(args) > 0 && args[0] != "--" {
		if args[0] == "-nnp" {
			nnp, args = true, args[1:]
			continue
		}
		i := 0
		for i < len(rlimits) && rlimits[i].opt != args[0] {
			i++
		}
		if i == len(rlimits) || len(args) < 2 {
			return 126
		}
		v, err := strconv.ParseUint(args[1], 10, 63)
		var lim syscall.Rlimit
		if err != nil || v == 0 || syscall.Getrlimit(rlimits[i].res, &lim) != nil {
			return 126
		}
		hard := v
		if rlimits[i].res == unix.RLIMIT_CPU {
			hard++
		}
		// syscall's Setrlimit, so that exec keeps RLIMIT_NOFILE as set
		// here instead of restoring the one the runtime started with.
		lim = syscall.Rlimit{Cur: min(v, lim.Max), Max: min(hard, lim.Max)}
		if syscall.Setrlimit(rlimits[i].res, &lim) != nil {
			return 126
		}
		args = args[2:]
	}
	if len(args) < 2 {
		return 126
	}
	if nnp && unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != nil {
		return 126
	}
	// As the executor leaves them (Setup): the runtime caught both, and
	// exec would reset them to their default.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGXFSZ)
	syscall.Exec(args[1], args[1:], os.Environ())
	return 127
}
