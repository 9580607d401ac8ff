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

// commandLine returns the argv a child of svc execs, argv[0] its path:
// its command, or spawnd-limits, found beside spawnd's executable self,
// in front of it.
func commandLine(self string, svc *policy.Service) []string {
	l := svc.Limits
	if l == (policy.Limits{}) {
		return svc.Argv
	}
	argv := []string{""} // no executable known: the exec fails
	if self != "" {
		argv[0] = filepath.Join(filepath.Dir(self), "spawnd-limits")
	}
	opts := []string{"-cpu", "-as", "-nofile", "-nproc", "-fsize"} // in the order it applies them
	for i, v := range []uint64{l.CPU, l.AddressSpace, l.OpenFiles, l.Processes, l.FileSize} {
		if v > 0 {
			argv = append(argv, opts[i], strconv.FormatUint(v, 10))
		}
	}
	if l.NoNewPrivileges {
		argv = append(argv, "-nnp")
	}
	return append(append(argv, "--"), svc.Argv...)
}
