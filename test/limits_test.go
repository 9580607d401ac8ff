package test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLimitsProgram: spawnd-limits, run as nobody the way the executor's
// child runs it, sets each limit and no_new_privileges and executes the
// command; it exits 126 on a bad command line and 127 when the command
// cannot be executed, writing nothing.
func TestLimitsProgram(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	prog := filepath.Join(bin(t), "spawnd-limits")
	run := func(args ...string) (string, int) {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		null, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		argv := append([]string{prog}, args...)
		pid, err := syscall.ForkExec(prog, argv, &syscall.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"},
			Files: []uintptr{null.Fd(), w.Fd(), w.Fd()},
			Sys:   &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}})
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		r.SetReadDeadline(time.Now().Add(20 * time.Second))
		out, err := io.ReadAll(r)
		if err != nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
		return string(out), ws.ExitStatus()
	}
	// -nproc is high for the reason TestServeLimits gives.
	show := []string{"/bin/sh", "-c", "id -u; ulimit -t; ulimit -Ht; ulimit -v; ulimit -n; ulimit -p; ulimit -f; grep NoNewPrivs /proc/self/status"}
	// ulimit -v and -f count KiB and 512-byte blocks; CPU's hard limit is a second later.
	if out, code := run(append([]string{"-cpu", "9", "-as", "1073741824", "-nofile", "33", "-nproc", "4444",
		"-fsize", "1048576", "-nnp", "--"}, show...)...); code != 0 || out != "65534\n9\n10\n1048576\n33\n4444\n2048\nNoNewPrivs:\t1\n" {
		t.Errorf("every limit: exit %d, output %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-cpu", "x", "--", "/bin/true"}, 126},
		{[]string{"-cpu", "-1", "--", "/bin/true"}, 126},
		{[]string{"-cpu", "", "--", "/bin/true"}, 126},
		{[]string{"-cpu", "0", "--", "/bin/true"}, 126},
		{[]string{"-cpu", "1x", "--", "/bin/true"}, 126},
		{[]string{"-cpu", "18446744073709551614", "--", "/bin/true"}, 126},
		{[]string{"-cpu", "99999999999999999999", "--", "/bin/true"}, 126},
		{[]string{"-bogus", "1", "--", "/bin/true"}, 126},
		{[]string{"-cpu"}, 126},
		{[]string{"-nnp", "--"}, 126},
		{[]string{"-nnp", "/bin/true"}, 126},
		{[]string{}, 126},
		{[]string{"--", "/nonexistent"}, 127},
		{[]string{"--", "/bin/true"}, 0},
		{[]string{"-cpu", "18446744073709551613", "-nofile", "5", "--", "/bin/true"}, 0},
	} {
		if out, code := run(tc.args...); code != tc.code || out != "" {
			t.Errorf("spawnd-limits %q: exit %d, output %q; want exit %d and nothing written", tc.args, code, out, tc.code)
		}
	}
}

// TestServeLimits: each resource limit and no_new_privileges, set with -o
// on one service, is what its command sees in /proc/self/limits and
// /proc/self/status, with the signals spawn(8) leaves ignored still
// ignored and none blocked; a service without them gets the limits spawnd has; the CPU and
// file size limits act.
func TestServeLimits(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	dir := tempDir(t)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, 0o777)
	show := writeScript(t, dir, "show", "cat /proc/self/limits; grep -E '^(NoNewPrivs|SigIgn|SigBlk):' /proc/self/status\n")
	burn := writeScript(t, dir, "burn", "while :; do :; done\n")
	big := writeScript(t, dir, "big", "head -c 10000 /dev/zero > "+out+"/big; echo $?; wc -c < "+out+"/big\n")
	limited, plain, cpu, fsize := freePort(t), freePort(t), freePort(t), freePort(t)
	// RLIMIT_NPROC counts every process of nobody, which every test running
	// beside this one uses too: a low limit would fail show's own forks.
	all := "-o command_cpu_limit=7 -o command_address_space_limit=1073741824 -o command_open_files_limit=64 " +
		"-o command_nproc_limit=5000 -o command_file_size_limit=1048576 -o command_no_new_privileges=yes"
	probe, ready := probeService(t) // a probe of show or big would fail it
	d := StartServe(t, Config{
		Master: fmt.Sprintf("127.0.0.1:%d inet n n n - - spawnd %s user=nobody argv=%s\n", limited, all, show) +
			fmt.Sprintf("127.0.0.1:%d inet n n n - - spawnd user=nobody argv=%s\n", plain, show) +
			fmt.Sprintf("127.0.0.1:%d inet n n n - - spawnd -o command_cpu_limit=1 user=nobody argv=%s\n", cpu, burn) +
			fmt.Sprintf("127.0.0.1:%d inet n n n - - spawnd -o command_file_size_limit=4096 user=nobody argv=%s\n", fsize, big) + probe,
		Ready: []string{ready},
	})
	talk := func(port int) string {
		t.Helper()
		got, err := Talk("tcp", fmt.Sprintf("127.0.0.1:%d", port), "", 20*time.Second)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		return got
	}
	// field returns the soft and hard limit of a /proc/self/limits line,
	// or NoNewPrivs's and SigIgn's value twice.
	field := func(text, name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:?[ \t]+(\S+)(?:[ \t]+(\S+))?`).FindStringSubmatch(text)
		if m == nil {
			return "missing"
		}
		return strings.TrimSpace(m[1] + " " + m[2])
	}
	lim, def := talk(limited), talk(plain)
	for name, want := range map[string]string{
		"Max cpu time":      "7 8", // SIGXCPU at the soft limit, SIGKILL a second later
		"Max address space": "1073741824 1073741824",
		"Max open files":    "64 64",
		"Max processes":     "5000 5000",
		"Max file size":     "1048576 1048576",
		"NoNewPrivs":        "1",
	} {
		if got := field(lim, name); got != want {
			t.Errorf("limited command: %s %q, want %q; it saw:\n%s", name, got, want, lim)
		}
	}
	for name, want := range map[string]string{
		"Max cpu time":      "unlimited unlimited",
		"Max address space": "unlimited unlimited",
		"Max file size":     "unlimited unlimited",
		"NoNewPrivs":        "0",
	} {
		if got := field(def, name); got != want {
			t.Errorf("command without limits: %s %q, want %q; it saw:\n%s", name, got, want, def)
		}
	}
	if got := field(def, "Max open files"); got == "64 64" {
		t.Errorf("command without limits has the other service's open files limit")
	}
	if a, b := field(lim, "SigBlk"), field(def, "SigBlk"); a != b || a != "0000000000000000" {
		t.Errorf("blocked signals %s with limits, %s without, want none", a, b)
	}
	// SIGPIPE and SIGXFSZ: 1<<12 | 1<<24, as the executor leaves them.
	if a, b := field(lim, "SigIgn"), field(def, "SigIgn"); a != b || a != "0000000001001000" {
		t.Errorf("ignored signals %s with limits, %s without, want 0000000001001000 for both:\n%s\n%s", a, b, lim, def)
	}

	start := time.Now()
	if got := talk(cpu); got != "" {
		t.Errorf("CPU-bound command wrote %q", got)
	}
	if _, ok := d.WaitLog(`warning: command \S+/burn killed by signal 24`, 10*time.Second); !ok {
		t.Errorf("no SIGXCPU logged for the CPU limit of 1s; log:\n%s", d.ReadLog())
	} else if took := time.Since(start); took > 8*time.Second {
		t.Errorf("the CPU limit of 1s took %v", took)
	}
	if strings.Contains(d.ReadLog(), "/show ") {
		t.Errorf("a command that showed its limits did not exit 0:\n%s", d.ReadLog())
	}
	// head gets EFBIG, not a SIGXFSZ that would kill it (status 153).
	if got := talk(fsize); !strings.HasSuffix(got, "\n1\n4096\n") || !strings.Contains(got, "File too large") {
		t.Errorf("file size limit 4096: command said %q, want head's status 1 and a 4096-byte file", got)
	}
}
