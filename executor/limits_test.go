package executor

import (
	"slices"
	"testing"

	"spawnd/policy"
)

// TestCommandLine: a service with limits runs spawnd-limits from spawnd's
// own directory with each limit set and -nnp, then the command; one
// without runs its command itself; with no executable known, the path is
// empty, so that the exec fails instead of finding a spawnd-limits
// relative to the working directory. test/limits_test.go runs the program.
func TestCommandLine(t *testing.T) {
	svc := service("/bin/sh", "-c", "ulimit -t")
	svc.Limits = policy.Limits{CPU: 9, AddressSpace: 1 << 30, OpenFiles: 33, Processes: 44, FileSize: 1 << 20, NoNewPrivileges: true}
	want := []string{"/usr/sbin/spawnd-limits", "-cpu", "9", "-as", "1073741824", "-nofile", "33", "-nproc", "44",
		"-fsize", "1048576", "-nnp", "--", "/bin/sh", "-c", "ulimit -t"}
	if got := commandLine("/usr/sbin/spawnd", svc); !slices.Equal(got, want) {
		t.Errorf("with every limit: %q, want %q", got, want)
	}
	svc.Limits = policy.Limits{OpenFiles: 5}
	if got := commandLine("", svc); !slices.Equal(got, []string{"", "-nofile", "5", "--", "/bin/sh", "-c", "ulimit -t"}) {
		t.Errorf("no executable known: %q", got)
	}
	if got := commandLine("/usr/sbin/spawnd", service("/bin/true")); !slices.Equal(got, []string{"/bin/true"}) {
		t.Errorf("without limits: %q, want the command itself", got)
	}
}
