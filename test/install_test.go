package test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// makeTarget runs make in the module root with the given variables and
// returns its output.
func makeTarget(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s"}, args...)...)
	cmd.Dir = moduleRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// files returns the non-directories under root, relative to it, sorted.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// daemonDirectory is where make install puts the binaries for master(8)
// by default: Postfix's daemon_directory, else Debian's.
func daemonDirectory() string {
	for _, args := range [][]string{{"-h", "daemon_directory"}, {"-dh", "daemon_directory"}} {
		if out, err := exec.Command("postconf", args...).Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	return "/usr/lib/postfix/sbin"
}

func requireMake(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed (apt-get install make)")
	}
}

// TestInstallUninstall stages make install under DESTDIR: the binaries in
// sbin and in daemon_directory, the pages, the example configuration, the
// units, and the master.cf line to add; then make uninstall removes every
// file again.
func TestInstallUninstall(t *testing.T) {
	requireMake(t)
	dest := t.TempDir()
	vars := []string{"DESTDIR=" + dest, "BIN=" + t.TempDir()}
	out := makeTarget(t, append([]string{"install"}, vars...)...)
	dd := strings.TrimPrefix(daemonDirectory(), "/")
	want := []string{
		"etc/spawnd/main.cf", "etc/spawnd/master.cf",
		"lib/systemd/system/spawnd.service", "lib/systemd/system/spawnd.socket",
		dd + "/spawnd", dd + "/spawnd-limits", dd + "/spawnd-listener",
		"usr/local/sbin/spawnd", "usr/local/sbin/spawnd-limits", "usr/local/sbin/spawnd-listener",
		"usr/local/share/doc/spawnd/examples/main.cf", "usr/local/share/doc/spawnd/examples/master.cf",
		"usr/local/share/man/man8/spawnd-listener.8", "usr/local/share/man/man8/spawnd.8",
	}
	slices.Sort(want)
	if got := files(t, dest); !slices.Equal(got, want) {
		t.Fatalf("installed files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// spawnd-listener is not readable by others: not dumpable from its exec
	// (TestListenerNeverDumpable).
	for f, want := range map[string]os.FileMode{"usr/local/sbin/spawnd": 0o755, dd + "/spawnd-listener": 0o711,
		"usr/local/sbin/spawnd-listener": 0o711, dd + "/spawnd-limits": 0o755} {
		if st, _ := os.Stat(filepath.Join(dest, f)); st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", f, st.Mode(), want)
		}
	}
	if v, err := exec.Command(filepath.Join(dest, "usr/local/sbin/spawnd"), "version").Output(); err != nil || !strings.HasPrefix(string(v), "spawnd ") {
		t.Errorf("installed spawnd version: %q, %v", v, err)
	}
	if !strings.Contains(out, "  spawnd\n") || !strings.Contains(out, "user=nobody argv=") {
		t.Errorf("make install does not print the master.cf line to add:\n%s", out)
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "lib/systemd/system/spawnd.service"))
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/sbin/spawnd serve -c /etc/spawnd\n") {
		t.Errorf("installed spawnd.service:\n%s", unit)
	}

	// An administrator's configuration survives install and uninstall.
	mine := filepath.Join(dest, "etc/spawnd/main.cf")
	os.WriteFile(mine, []byte("mail_owner = postfix\n# mine\n"), 0o644)
	makeTarget(t, append([]string{"install"}, vars...)...)
	if b, _ := os.ReadFile(mine); !strings.Contains(string(b), "# mine") {
		t.Fatal("make install overwrote /etc/spawnd/main.cf")
	}
	makeTarget(t, append([]string{"uninstall"}, vars...)...)
	if got := files(t, dest); !slices.Equal(got, []string{"etc/spawnd/main.cf"}) {
		t.Fatalf("after uninstall with a changed main.cf, left: %v, want only etc/spawnd/main.cf", got)
	}
	os.Remove(mine)
	makeTarget(t, append([]string{"uninstall"}, vars...)...)
	if got := files(t, dest); len(got) != 0 {
		t.Fatalf("after uninstall, left: %v", got)
	}
	for _, d := range []string{"etc/spawnd", "usr/local/share/doc/spawnd"} {
		if _, err := os.Stat(filepath.Join(dest, d)); err == nil {
			t.Errorf("after uninstall, directory %s is left", d)
		}
	}
}

// TestInstalledUnitsVerify installs under a private prefix and has
// systemd check the units as installed: every path they name exists, the
// manual pages they cite are found, and no directive is unknown.
func TestInstalledUnitsVerify(t *testing.T) {
	requireMake(t)
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	root := t.TempDir()
	makeTarget(t, "install", "BIN="+t.TempDir(), "PREFIX="+root+"/usr", "CONFDIR="+root+"/etc/spawnd",
		"UNITDIR="+root+"/units", "DAEMON_DIR="+root+"/postfix")
	unit, _ := os.ReadFile(filepath.Join(root, "units/spawnd.service"))
	if !strings.Contains(string(unit), "\nExecStart="+root+"/usr/sbin/spawnd serve -c "+root+"/etc/spawnd\n") {
		t.Fatalf("PREFIX and CONFDIR not written into spawnd.service:\n%s", unit)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=yes",
		filepath.Join(root, "units/spawnd.service"), filepath.Join(root, "units/spawnd.socket"))
	cmd.Env = append(os.Environ(), "MANPATH="+root+"/usr/share/man", "SYSTEMD_LOG_LEVEL=warning")
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
