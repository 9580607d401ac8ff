package executor

// A service that sets resource limits or no_new_privileges does not exec
// its command directly: the child execs spawnd-limits, the small C
// program beside spawnd's own executable (cmd/spawnd-limits), as
// `spawnd-limits [-cpu N] [-as N] [-nofile N] [-nproc N] [-fsize N] [-nnp]
// -- COMMAND ARG...`, already as the service's user with its groups. It
// sets the limits on itself and execs the command, which keeps the pid,
// the session, the descriptors and the parent-death signal. The standard
// library's fork path has no hook between the credentials and exec, and
// limits set in the executor would bind the executor too. spawnd-limits
// runs with no privilege to lose: its only input is the argv built here
// from the policy.

import (
	"path/filepath"
	"strconv"

	"spawnd/policy"
)

// rlimits are spawnd-limits' options, in the order it applies them.
var rlimits = []struct {
	opt string
	get func(*policy.Limits) uint64
}{
	{"-cpu", func(l *policy.Limits) uint64 { return l.CPU }},
	{"-as", func(l *policy.Limits) uint64 { return l.AddressSpace }},
	{"-nofile", func(l *policy.Limits) uint64 { return l.OpenFiles }},
	{"-nproc", func(l *policy.Limits) uint64 { return l.Processes }},
	{"-fsize", func(l *policy.Limits) uint64 { return l.FileSize }},
}

// commandLine returns the argv a child of svc execs, argv[0] its path:
// its command, or spawnd-limits, found beside spawnd's executable self,
// in front of it.
func commandLine(self string, svc *policy.Service) []string {
	if svc.Limits == (policy.Limits{}) {
		return svc.Argv
	}
	argv := []string{""} // no executable known: the exec fails
	if self != "" {
		argv[0] = filepath.Join(filepath.Dir(self), "spawnd-limits")
	}
	for _, r := range rlimits {
		if v := r.get(&svc.Limits); v > 0 {
			argv = append(argv, r.opt, strconv.FormatUint(v, 10))
		}
	}
	if svc.Limits.NoNewPrivileges {
		argv = append(argv, "-nnp")
	}
	return append(append(argv, "--"), svc.Argv...)
}
