package test

// Logging to a real syslog daemon: Debian's rsyslog runs as a private
// instance (own configuration, own socket in a test directory, no
// /dev/log, nothing of the system's rsyslog touched) and writes each
// record as "facility.severity tag: text". spawnd finds the socket at
// /dev/log, in a mount namespace of its own with a private /dev
// (privateDevLog).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rsyslog is a private rsyslogd.
type rsyslog struct {
	t      *testing.T
	dir    string
	Socket string // the socket spawnd logs to
	Out    string // the file rsyslog writes records to
	cmd    *exec.Cmd
	done   chan struct{}
}

func rsyslogd(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("rsyslogd not installed (apt-get install rsyslog)")
	return ""
}

// startRsyslog starts a private rsyslogd writing to out, listening on
// dir/log; dir must be searchable by mail_owner, who reconnects to it.
func startRsyslog(t *testing.T, dir, out string) *rsyslog {
	t.Helper()
	r := &rsyslog{t: t, dir: dir, Socket: filepath.Join(dir, "log"), Out: out, done: make(chan struct{})}
	conf := filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`global(workDirectory=%q)
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket=%q RateLimit.Interval="0")
template(name="test" type="string" string="%%syslogfacility-text%%.%%syslogseverity-text%% %%syslogtag%%%%msg%%\n")
*.* action(type="omfile" file=%q template="test")
`, dir, r.Socket, out)), 0o644)
	r.cmd = exec.Command(rsyslogd(t), "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = os.Stderr, os.Stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(r.Socket); err == nil {
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("rsyslogd exited at start-up: %v", r.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("rsyslogd: no socket after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends rsyslogd by its pid and removes its socket, as a restart
// leaves it.
func (r *rsyslog) Stop() {
	select {
	case <-r.done:
	default:
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	}
	os.Remove(r.Socket)
}

// privateDevLog returns a Config.Wrap that runs spawnd in a mount
// namespace of its own whose /dev is a tmpfs with the devices a daemon
// uses, bound from the real /dev, and log, a symbolic link to socket:
// spawnd logs to /dev/log, and nothing outside the namespace changes.
func privateDevLog(t *testing.T, socket string) []string {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare(1) not installed (apt-get install util-linux)")
	}
	dev := filepath.Join(tempDir(t), "dev")
	if err := os.Mkdir(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -e; d=$1 s=$2; shift 2
mount -t tmpfs -o mode=755 tmpfs "$d"
for f in null zero full random urandom; do touch "$d/$f"; mount --bind "/dev/$f" "$d/$f"; done
ln -s /proc/self/fd "$d/fd"; ln -s "$s" "$d/log"
mount --rbind "$d" /dev
exec "$@"`
	return []string{"unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh", dev, socket}
}

// waitLine waits for a line of file matching re and returns it.
func waitLine(t *testing.T, file, re string) string {
	t.Helper()
	rx := regexp.MustCompile("(?m)" + re)
	var b []byte
	var m string
	if !waitFor(10*time.Second, func() bool { b, _ = os.ReadFile(file); m = rx.FindString(string(b)); return m != "" }) {
		t.Fatalf("no line matching %s in %s after 10s; it has:\n%s", re, file, b)
	}
	return m
}

// exitService returns a master.cf line for a TCP service on a free port
// whose command exits with status 3, and its address and command path.
func exitService(t *testing.T, dir string) (master, addr, script string) {
	script = writeScript(t, dir, "exit3", "exit 3\n")
	addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	return fmt.Sprintf("%s inet n n n - - spawnd\n    user=nobody argv=%s\n", addr, script), addr, script
}

// TestSyslog: records reach a real syslog daemon with spawnd's ident,
// facility and severities; after the syslog daemon restarts (socket gone,
// then back) they reach it again, from the same listener.
func TestSyslog(t *testing.T) {
	rsyslogd(t)
	requireRoot(t)
	for _, tc := range []struct {
		name, main, ident, facility string
	}{
		{"defaults", "", "postfix/spawnd", "mail"},
		{"syslog_name and syslog_facility", "syslog_name = mytest\nsyslog_facility = local3\n", "mytest/spawnd", "local3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tempDir(t)
			sys := startRsyslog(t, dir, filepath.Join(dir, "syslog.1"))
			master, addr, script := exitService(t, dir)
			d := StartServe(t, Config{
				Main:   "maillog_file =\n" + tc.main,
				Master: master,
				Args:   []string{"-v"},
				Wrap:   privateDevLog(t, sys.Socket),
				Ready:  []string{"tcp " + addr},
			})
			t.Cleanup(func() {
				if t.Failed() {
					for _, f := range []string{"syslog.1", "syslog.2"} {
						b, _ := os.ReadFile(filepath.Join(dir, f))
						t.Logf("%s:\n%s", f, b)
					}
				}
			})
			tag := regexp.QuoteMeta(tc.ident) + `\[\d+\]: `
			warning := "^" + regexp.QuoteMeta(tc.facility) + `\.warning ` + tag +
				regexp.QuoteMeta("warning: command "+script+" exit status 3") + "$"
			// -v: one info line for the connection, naming its service.
			info := "^" + regexp.QuoteMeta(tc.facility) + `\.info ` + tag + ".*" + regexp.QuoteMeta(addr)

			Talk("tcp", addr, "", 10*time.Second)
			waitLine(t, sys.Out, warning)
			waitLine(t, sys.Out, info)
			if b, _ := os.ReadFile(d.Log); len(b) != 0 {
				t.Errorf("maillog_file is empty in main.cf, but %s has:\n%s", d.Log, b)
			}

			listener := d.Listener()
			sys.Stop()
			sys = startRsyslog(t, dir, filepath.Join(dir, "syslog.2"))
			Talk("tcp", addr, "", 10*time.Second)
			waitLine(t, sys.Out, warning)
			waitLine(t, sys.Out, info)
			if now := d.Listener(); now != listener || listener == 0 {
				t.Errorf("listener pid %d before the syslog restart, %d after: want the same", listener, now)
			}
		})
	}
}

// TestMaillogFile: with maillog_file set, records go to the file in
// Postfix's format, "Mon DD HH:MM:SS host ident[pid]: text", the file is
// private to root, and a rotation by truncation (logrotate's
// copytruncate) leaves no hole: writes append.
func TestMaillogFile(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	master, addr, script := exitService(t, dir)
	d := StartServe(t, Config{
		Main:   "syslog_name = mytest\n",
		Master: master,
		Args:   []string{"-v"},
		Ready:  []string{"tcp " + addr},
	})
	stamp := `^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ mytest/spawnd\[\d+\]: `
	warning := stamp + regexp.QuoteMeta("warning: command "+script+" exit status 3") + "$"
	info := stamp + ".*" + regexp.QuoteMeta(addr)
	Talk("tcp", addr, "", 10*time.Second)
	waitLine(t, d.Log, warning)
	waitLine(t, d.Log, info)
	st, err := os.Stat(d.Log)
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; st.Mode().Perm() != 0o600 || uid != 0 {
		t.Errorf("maillog_file: mode %v owner %d, want 0600 root", st.Mode().Perm(), uid)
	}

	if err := os.Truncate(d.Log, 0); err != nil {
		t.Fatal(err)
	}
	Talk("tcp", addr, "", 10*time.Second)
	waitLine(t, d.Log, warning)
	if b, _ := os.ReadFile(d.Log); strings.IndexByte(string(b), 0) >= 0 {
		t.Errorf("maillog_file after truncation starts with a hole of %d NUL bytes", strings.Count(string(b), "\x00"))
	}
}
