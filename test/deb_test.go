package test

// The Debian package, built with debhelper and installed with apt into
// this machine, the way an administrator does: make deb, apt-get install
// ./spawnd_*.deb, an upgrade to a higher version while the installed
// spawnd serves, apt-get purge. The package owns /usr/sbin/spawnd and
// /etc/spawnd while the test runs; no other test uses them.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// debFiles are the package's files and links, as dpkg-deb -c lists them.
var debFiles = []string{
	"./etc/spawnd/main.cf",
	"./etc/spawnd/master.cf",
	"./lib/systemd/system/spawnd.service",
	"./lib/systemd/system/spawnd.socket",
	"./usr/lib/postfix/sbin/spawnd -> ../../../sbin/spawnd",
	"./usr/lib/postfix/sbin/spawnd-limits -> ../../../sbin/spawnd-limits",
	"./usr/lib/postfix/sbin/spawnd-listener -> ../../../sbin/spawnd-listener",
	"./usr/sbin/spawnd",
	"./usr/sbin/spawnd-limits",
	"./usr/sbin/spawnd-listener",
	"./usr/share/doc/spawnd/README.md.gz",
	"./usr/share/doc/spawnd/SECURITY.md.gz",
	"./usr/share/doc/spawnd/changelog.gz",
	"./usr/share/doc/spawnd/copyright",
	"./usr/share/doc/spawnd/examples/main.cf",
	"./usr/share/doc/spawnd/examples/master.cf",
	"./usr/share/lintian/overrides/spawnd",
	"./usr/share/man/man8/spawnd-listener.8.gz",
	"./usr/share/man/man8/spawnd.8.gz",
}

// debWatched are the directories where a file of the package, or one its
// maintainer scripts create, would be left behind.
var debWatched = []string{"/usr/sbin", "/usr/lib/postfix/sbin", "/etc/spawnd", "/usr/share/doc/spawnd",
	"/usr/share/man/man8", "/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system",
	"/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked", "/var/lib/dpkg/info"}

// TestDebianPackage builds the package (make deb), checks its contents,
// control data, maintainer scripts and lintian's verdict, installs it
// with apt-get, serves connections with the installed binaries,
// standalone (spawnd-limits too) and under a private master(8) through
// /usr/lib/postfix/sbin, upgrades to a second build with a higher version
// while the installed spawnd serves a load (no connection may fail; a
// changed conffile is kept; after SIGHUP spawnd runs the new binaries),
// and purges it: no file of the package, or of its maintainer scripts, is
// left, and /etc/postfix is as it was.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("requires root: installs the package into this machine with apt-get")
	}
	for _, tool := range []string{"dpkg-buildpackage", "dh", "dpkg-deb", "apt-get", "make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the package test needs dpkg-dev, debhelper, apt, make and git (apt-get install dpkg-dev debhelper make git)", tool)
		}
	}
	lockDebTest(t)
	if st := debStatus(); st != "" {
		t.Skipf("package spawnd is already on this machine (%s): this test installs and purges it; apt-get purge spawnd first", st)
	}
	start := time.Now()
	tmp := tempDir(t)
	// Both builds use go's build cache, as bin does: the package build
	// makes its own in the build tree when GOCACHE is not set.
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil || !filepath.IsAbs(strings.TrimSpace(string(gocache))) {
		gocache = []byte(filepath.Join(tmp, "gocache"))
	}
	// No -dbgsym package: nothing here installs it.
	env := append(os.Environ(), "GOCACHE="+strings.TrimSpace(string(gocache)), "DEBIAN_FRONTEND=noninteractive",
		"DEB_BUILD_OPTIONS=noautodbgsym")

	// Version 1 with make deb; version 2 from a copy of the tree with a
	// higher version in its changelog, built while version 1 is checked.
	v1dir := filepath.Join(tmp, "v1")
	if out, err := runIn(10*time.Minute, moduleRoot(), env, "make", "-s", "deb", "DISTDIR="+v1dir); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	built1 := time.Since(start)
	debs, _ := filepath.Glob(filepath.Join(v1dir, "spawnd_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb left %v in %s, want one spawnd_*.deb", debs, v1dir)
	}
	deb1 := debs[0]
	v1 := debField(t, deb1, "Version")
	arch, _ := exec.Command("dpkg", "--print-architecture").Output()
	if want := fmt.Sprintf("spawnd_%s_%s.deb", v1, strings.TrimSpace(string(arch))); filepath.Base(deb1) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb1), want)
	}
	v2 := v1 + "+upgradetest1"
	type built struct {
		deb string
		err error
	}
	var background sync.WaitGroup // ends before the test's directory goes
	t.Cleanup(background.Wait)
	second := make(chan built, 1)
	linted := make(chan lintResult, 1)
	background.Add(2)
	var built2 time.Duration
	go func() {
		defer background.Done()
		deb, err := buildUpgrade(v1dir, env, v2)
		built2 = time.Since(start)
		second <- built{deb, err}
	}()
	go func() { defer background.Done(); linted <- lint(deb1) }()

	// The package's files, control data and maintainer scripts.
	listing := debListing(t, deb1)
	var got []string
	for _, e := range listing {
		if !e.dir {
			got = append(got, e.name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, debFiles) {
		t.Errorf("dpkg-deb -c: files\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(debFiles, "\n"))
	}
	for _, e := range listing {
		want := "-rwxr-xr-x root/root"
		if e.name == "./usr/sbin/spawnd-listener" { // not readable: not dumpable (TestListenerNeverDumpable)
			want = "-rwx--x--x root/root"
		}
		if strings.HasPrefix(e.name, "./usr/sbin/spawnd") && e.perm != want {
			t.Errorf("%s: %s, want %s", e.name, e.perm, want)
		}
	}
	info, err := exec.Command("dpkg-deb", "-I", deb1).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -I: %v\n%s", err, info)
	}
	t.Logf("dpkg-deb -I %s:\n%s", filepath.Base(deb1), info)
	if dep := debField(t, deb1, "Depends") + debField(t, deb1, "Pre-Depends") + debField(t, deb1, "Recommends"); strings.Contains(dep, "postfix") || !strings.Contains(dep, "libc6") {
		t.Errorf("Depends, Pre-Depends and Recommends: %q: want libc6 and no postfix", dep)
	}
	if s := debField(t, deb1, "Suggests"); s != "postfix" {
		t.Errorf("Suggests: %q, want postfix", s)
	}
	control := filepath.Join(tmp, "control")
	if out, err := exec.Command("dpkg-deb", "-e", deb1, control).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	script := func(name string) string { b, _ := os.ReadFile(filepath.Join(control, name)); return string(b) }
	if c := script("conffiles"); c != "/etc/spawnd/main.cf\n/etc/spawnd/master.cf\n" {
		t.Errorf("conffiles:\n%s", c)
	}
	checkScripts(t, control)

	// What the package must leave as it finds it: /etc/postfix, and what
	// exists now where it puts files.
	postfixBefore := treeSums("/etc/postfix")
	before := spawndPaths()
	existed := map[string]bool{}
	for _, e := range listing {
		if _, err := os.Lstat(e.path()); err == nil {
			existed[e.name] = true
		}
	}

	// Install. From here on the package is purged whatever happens.
	t.Cleanup(func() {
		if debStatus() != "" {
			if out, err := apt(env, "purge", "spawnd"); err != nil {
				t.Errorf("cleanup: apt-get purge spawnd: %v\n%s", err, out)
			}
		}
	})
	if out, err := apt(env, "install", deb1); err != nil {
		t.Fatalf("apt-get install ./%s: %v\n%s", filepath.Base(deb1), err, out)
	}
	installed := time.Since(start)
	if out, err := exec.Command("/usr/sbin/spawnd", "check", "-c", "/etc/spawnd").CombinedOutput(); err != nil ||
		!strings.HasPrefix(string(out), "127.0.0.1:10025 inet 127.0.0.1:10025 user=nobody ") {
		t.Errorf("spawnd check -c /etc/spawnd: %v\n%s", err, out)
	}
	for _, b := range []string{"/usr/sbin/spawnd", "/usr/lib/postfix/sbin/spawnd"} {
		if out, err := exec.Command(b, "version").CombinedOutput(); err != nil || string(out) != "spawnd "+v1+"\n" {
			t.Errorf("%s version: %q, %v; want spawnd %s", b, out, err, v1)
		}
	}
	if wants := enabledUnits(); len(wants) > 0 {
		t.Errorf("units enabled by the install: %v", wants)
	}
	if out, _ := exec.Command("dpkg", "-L", "spawnd").Output(); !strings.Contains(string(out), "\n/usr/lib/postfix/sbin/spawnd-listener\n") {
		t.Errorf("dpkg -L spawnd:\n%s", out)
	}
	unit, _ := os.ReadFile("/lib/systemd/system/spawnd.service")
	if !strings.Contains(string(unit), "\nExecStart=/usr/sbin/spawnd serve -c /etc/spawnd\n") || regexp.MustCompile(`(?m)^Exec\w*=.*/usr/local/`).Match(unit) {
		t.Errorf("installed spawnd.service does not run /usr/sbin/spawnd:\n%s", unit)
	}
	t.Run("systemd-analyze", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze not installed (apt-get install systemd): the installed units are not verified")
		}
		out, err := runIn(time.Minute, "/", append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning"), "systemd-analyze", "verify",
			"/lib/systemd/system/spawnd.service", "/lib/systemd/system/spawnd.socket")
		if err != nil || out != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	// The installed binaries serve a connection, standalone, and one of a
	// service with a limit, which runs through spawnd-limits.
	addr, limited := loopback(t), loopback(t)
	want := fmt.Sprintf("deb %d\n", os.Getpid())
	d := StartServe(t, Config{
		Bin: "/usr/sbin",
		Master: fmt.Sprintf("%s inet n n n - 8 spawnd user=nobody argv=/bin/echo deb %d\n", addr, os.Getpid()) +
			fmt.Sprintf("%s inet n n n - 1 spawnd -o command_open_files_limit=42 user=nobody argv=/bin/sh -c { ulimit -n }\n", limited),
		Ready: []string{"tcp " + addr},
	})
	if got, err := Talk("tcp", addr, "", 10*time.Second); err != nil || got != want {
		t.Fatalf("installed spawnd: got %q, %v; want %q", got, err, want)
	}
	if got, err := Talk("tcp", limited, "", 10*time.Second); err != nil || got != "42\n" {
		t.Errorf("installed spawnd, open files limit 42 through spawnd-limits: got %q, %v", got, err)
	}
	var listener int
	if !waitFor(10*time.Second, func() bool { listener = d.Listener(); return listener != 0 }) {
		t.Fatal("no spawnd-listener under the installed spawnd")
	}
	if e, l := exe(d.Pid()), exe(listener); e != "/usr/sbin/spawnd" || l != "/usr/sbin/spawnd-listener" {
		t.Errorf("running %s and %s, want /usr/sbin/spawnd and /usr/sbin/spawnd-listener", e, l)
	}

	// Postfix mode: master(8) runs $daemon_directory/spawnd, here a private
	// instance's daemon_directory of links to /usr/lib/postfix/sbin's
	// files, the package's links among them.
	t.Run("postfix", func(t *testing.T) {
		dd := postfixDaemonDir(t, nil)
		if l, _ := os.Readlink(filepath.Join(dd, "spawnd")); l != "/usr/lib/postfix/sbin/spawnd" {
			t.Fatalf("%s/spawnd links to %q, want the package's /usr/lib/postfix/sbin/spawnd", dd, l)
		}
		inet := loopback(t)
		p := newPostfixInstance(t, fmt.Sprintf("%s inet n n n - 0 spawnd\n    user=nobody argv=/bin/echo ok\n", inet), "daemon_directory = "+dd)
		checkEcho(t, p, []string{inet}, "ok\n")
		spawnds := p.children("spawnd")
		if len(spawnds) == 0 {
			t.Fatal("no spawnd among master(8)'s children")
		}
		for _, pid := range spawnds {
			var l int
			for _, c := range Children(pid) {
				if comm(c) == "spawnd-listener" {
					l = c
				}
			}
			if exe(pid) != "/usr/sbin/spawnd" || exe(l) != "/usr/sbin/spawnd-listener" {
				t.Errorf("master(8) runs %s with listener %s, want /usr/sbin/spawnd and /usr/sbin/spawnd-listener", exe(pid), exe(l))
			}
		}
	})

	// An administrator's change to a conffile.
	mainCF, _ := os.ReadFile("/etc/spawnd/main.cf")
	changed := string(mainCF) + "# changed by the administrator\n"
	if err := os.WriteFile("/etc/spawnd/main.cf", []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}

	b := <-second
	deb2 := b.deb
	if b.err != nil {
		t.Fatal(b.err)
	}
	if names := func() (n []string) {
		for _, e := range debListing(t, deb2) {
			n = append(n, e.name)
		}
		return
	}(); !slices.Equal(names, entryNames(listing)) {
		t.Errorf("version %s has other files than %s:\n%s", v2, v1, strings.Join(names, "\n"))
	}

	// The upgrade, under load (four clients, each pausing 20 ms after every
	// connection): apt-get install of version 2, then SIGHUP (what
	// systemctl reload sends), after which spawnd runs the new binaries. No
	// connection may fail.
	var stopped atomic.Bool
	var served atomic.Int64
	t.Cleanup(func() { stopped.Store(true) })
	loaded := make(chan loadResult, 1)
	go func() {
		loaded <- load(1<<20, 4, 2*time.Minute, func(int) error {
			if stopped.Load() {
				return nil
			}
			got, err := Talk("tcp", addr, "", 10*time.Second)
			if err == nil && got != want {
				err = fmt.Errorf("got %q", got)
			}
			if err == nil {
				served.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
			return err
		})
	}()
	waitFor(10*time.Second, func() bool { return served.Load() >= 20 })
	upStart := time.Now()
	servedBefore := served.Load()
	out, err := apt(env, "install", deb2)
	upgraded := time.Since(upStart)
	okDuring := served.Load() - servedBefore
	if err != nil {
		t.Fatalf("apt-get install ./%s: %v\n%s", filepath.Base(deb2), err, out)
	}
	t.Logf("apt-get install ./%s:\n%s", filepath.Base(deb2), out)
	// SIGHUP reloads in process: the executor starts a new listener, from
	// the new file; the executor itself runs the old one until a restart.
	d.Signal(syscall.SIGHUP)
	reexecuted := waitFor(20*time.Second, func() bool {
		l := d.Listener()
		return l != 0 && l != listener && exe(l) == "/usr/sbin/spawnd-listener"
	})
	waitFor(5*time.Second, func() bool { return served.Load() >= servedBefore+okDuring+20 })
	stopped.Store(true)
	r := <-loaded
	window := time.Since(upStart)
	t.Logf("upgrade %s -> %s under load (4 clients, each pausing 20 ms after every connection): %d connections served while apt-get ran (%v), %d from its start to after the SIGHUP (%v); %d connections in all, %d failed",
		v1, v2, okDuring, upgraded.Round(time.Millisecond), served.Load()-servedBefore, window.Round(time.Millisecond), served.Load()+int64(r.failed), r.failed)
	if r.failed > 0 {
		t.Errorf("%d connections failed during the upgrade, first: %v", r.failed, r.first)
	}
	if okDuring == 0 {
		t.Errorf("no connection served while apt-get ran")
	}
	if !reexecuted {
		t.Errorf("after the upgrade and SIGHUP, spawnd's listener runs %s, want the new /usr/sbin/spawnd-listener", exe(d.Listener()))
	}
	if out, err := exec.Command("/usr/sbin/spawnd", "version").CombinedOutput(); err != nil || string(out) != "spawnd "+v2+"\n" {
		t.Errorf("after the upgrade, spawnd version: %q, %v; want spawnd %s", out, err, v2)
	}
	if got, _ := os.ReadFile("/etc/spawnd/main.cf"); string(got) != changed {
		t.Errorf("the upgrade did not keep the changed /etc/spawnd/main.cf:\n%s", got)
	}
	if extra, _ := filepath.Glob("/etc/spawnd/*.dpkg-*"); len(extra) > 0 {
		t.Errorf("the upgrade left %v", extra)
	}
	if wants := enabledUnits(); len(wants) > 0 {
		t.Errorf("units enabled by the upgrade: %v", wants)
	}
	d.Stop()

	// Purge: nothing of the package is left, nothing else went.
	if out, err := apt(env, "purge", "spawnd"); err != nil {
		t.Fatalf("apt-get purge spawnd: %v\n%s", err, out)
	}
	if st := debStatus(); st != "" {
		t.Errorf("after purge, dpkg-query says spawnd is %s", st)
	}
	for _, e := range listing {
		if _, err := os.Lstat(e.path()); err == nil && !existed[e.name] {
			t.Errorf("after purge, %s is left", e.path())
		}
	}
	if after := spawndPaths(); !slices.Equal(after, before) {
		t.Errorf("files named spawnd* before install:\n%s\nafter purge:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if after := treeSums("/etc/postfix"); after != postfixBefore {
		t.Errorf("/etc/postfix changed between install and purge")
	}

	l := <-linted
	t.Logf("times: version 1 built at %v, installed at %v, version 2 built at %v, in all %v", built1.Round(time.Second),
		installed.Round(time.Second), built2.Round(time.Second), time.Since(start).Round(time.Second))
	t.Run("lintian", func(t *testing.T) {
		if l.missing {
			t.Skip("lintian not installed (apt-get install lintian): the package is not linted")
		}
		t.Logf("lintian %s:\n%s", filepath.Base(deb1), l.out)
		if l.err != nil || strings.Contains(l.out, "\nE: ") || strings.Contains(l.out, "\nW: ") {
			t.Errorf("lintian: %v: errors or warnings not overridden:\n%s", l.err, l.out)
		}
	})
}

// checkScripts runs the maintainer scripts debhelper generated as dpkg
// would under systemd, with deb-systemd-invoke, deb-systemd-helper and
// systemctl replaced by stubs that log their arguments (and with a
// directory of the test's for /run/systemd/system, which this machine may
// not have), for a first install, an upgrade, a removal and a purge. On
// install no unit is enabled, and deb-systemd-invoke is asked to start
// them (it starts only enabled ones); on upgrade spawnd.service is
// restarted and spawnd.socket is not (it keeps its listening socket);
// both are stopped on removal only; nothing runs before unpacking; no
// script touches Postfix's configuration or /etc/spawnd.
func checkScripts(t *testing.T, control string) {
	t.Helper()
	dir := t.TempDir()
	stubs, run := filepath.Join(dir, "bin"), filepath.Join(dir, "run-systemd-system")
	os.MkdirAll(stubs, 0o755)
	os.MkdirAll(run, 0o755)
	calls := filepath.Join(dir, "calls")
	for _, name := range []string{"deb-systemd-invoke", "deb-systemd-helper", "systemctl"} {
		// A unit nobody enabled: was-enabled and debian-installed fail.
		body := fmt.Sprintf("echo \"${0##*/} $*\" >> %s\ncase \"$1\" in was-enabled|debian-installed|--quiet) exit 1;; esac\n", calls)
		writeScript(t, stubs, name, body)
	}
	runScript := func(name string, args ...string) string {
		t.Helper()
		os.Remove(calls)
		b, err := os.ReadFile(filepath.Join(control, name))
		if err != nil {
			return ""
		}
		if strings.Contains(string(b), "postfix") || strings.Contains(string(b), "/etc/spawnd") {
			t.Errorf("%s names postfix or /etc/spawnd:\n%s", name, b)
		}
		script := filepath.Join(dir, name)
		os.WriteFile(script, []byte(strings.ReplaceAll(string(b), "/run/systemd/system", run)), 0o755)
		cmd := exec.Command(script, args...)
		cmd.Env = []string{"PATH=" + stubs + ":/usr/sbin:/usr/bin:/sbin:/bin"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		c, _ := os.ReadFile(calls)
		return string(c)
	}
	for _, c := range []struct{ script, args, want string }{
		{"postinst", "configure", `deb-systemd-helper debian-installed spawnd.service
deb-systemd-helper update-state spawnd.service
systemctl --system daemon-reload
deb-systemd-invoke start spawnd.service
deb-systemd-helper debian-installed spawnd.socket
deb-systemd-helper update-state spawnd.socket
systemctl --system daemon-reload
deb-systemd-invoke start spawnd.socket
`},
		{"postinst", "configure 0.0.1", `deb-systemd-helper debian-installed spawnd.service
deb-systemd-helper update-state spawnd.service
systemctl --system daemon-reload
deb-systemd-invoke restart spawnd.service
deb-systemd-helper debian-installed spawnd.socket
deb-systemd-helper update-state spawnd.socket
systemctl --system daemon-reload
deb-systemd-invoke start spawnd.socket
`},
		{"prerm", "upgrade 9.9", ""},
		{"prerm", "remove", "deb-systemd-invoke stop spawnd.socket\ndeb-systemd-invoke stop spawnd.service\n"},
		{"postrm", "upgrade 9.9", ""},
		{"postrm", "remove", "systemctl --system daemon-reload\nsystemctl --system daemon-reload\n"},
		{"postrm", "purge", "deb-systemd-helper purge spawnd.socket\ndeb-systemd-helper purge spawnd.service\n"},
	} {
		if got := runScript(c.script, strings.Fields(c.args)...); got != c.want {
			t.Errorf("%s %s under systemd runs\n%swant\n%s", c.script, c.args, got, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(control, "preinst")); err == nil {
		t.Errorf("a preinst: nothing is to happen before unpacking")
	}
}

// lockDebTest makes a second run of this test, by another user of the
// machine, wait: both would install and purge the one package.
func lockDebTest(t *testing.T) {
	f, err := os.OpenFile("/run/lock/spawnd-deb-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	deadline := time.Now().Add(10 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			t.Fatal("another run of TestDebianPackage held /run/lock/spawnd-deb-test.lock for 10 minutes")
		}
		time.Sleep(time.Second)
	}
}

// debStatus is dpkg's status of the package spawnd, or "" when dpkg
// knows no trace of it.
func debStatus() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "spawnd").Output()
	if st := strings.TrimSpace(string(out)); err == nil && st != "" && st != "un" {
		return st
	}
	return ""
}

// runIn runs a program in dir with env and a time limit, and returns its
// combined output; on the limit its whole process group is killed.
func runIn(limit time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: still running after %v", name, limit)
	}
	return string(out), err
}

// apt runs apt-get install ./FILE or apt-get purge PACKAGE, waiting for
// the dpkg lock another user of the machine may hold.
func apt(env []string, verb, what string) (string, error) {
	args := []string{"-y", "-q", "-o", "DPkg::Lock::Timeout=300", verb}
	dir := "/"
	if strings.HasSuffix(what, ".deb") {
		dir, what = filepath.Dir(what), "./"+filepath.Base(what)
	}
	return runIn(8*time.Minute, dir, env, "apt-get", append(args, what)...)
}

// buildUpgrade builds the package again, as version, from a copy of the
// tree whose changelog has an entry for it, with dpkg-buildpackage, and
// returns the .deb. The copy is where make deb DISTDIR=dist built, so
// that the C flags, which name the build directory
// (-ffile-prefix-map=DIR=.), and thus go's build cache entries match.
func buildUpgrade(dist string, env []string, version string) (string, error) {
	src := filepath.Join(dist, "build", "spawnd")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	list, err := runIn(time.Minute, moduleRoot(), env, "sh", "-c",
		"git ls-files -z -c -o --exclude-standard | tar -c --null --ignore-failed-read -T - -f - | tar -x -C "+src)
	if err != nil {
		return "", fmt.Errorf("copying the tree: %v\n%s", err, list)
	}
	changelog := filepath.Join(src, "debian/changelog")
	old, err := os.ReadFile(changelog)
	if err != nil {
		return "", err
	}
	entry := fmt.Sprintf("spawnd (%s) unstable; urgency=medium\n\n  * Upgrade test build.\n\n -- spawnd tests <root@localhost>  %s\n\n",
		version, time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	if err := os.WriteFile(changelog, append([]byte(entry), old...), 0o644); err != nil {
		return "", err
	}
	if out, err := runIn(10*time.Minute, src, env, "dpkg-buildpackage", "-us", "-uc", "-b"); err != nil {
		return "", fmt.Errorf("dpkg-buildpackage -us -uc -b (version %s): %v\n%s", version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "build", "spawnd_"+version+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("dpkg-buildpackage made %v, want one spawnd_%s_*.deb", debs, version)
	}
	return debs[0], nil
}

type lintResult struct {
	out     string
	err     error
	missing bool
}

// lint runs lintian on a package: its errors and warnings (E:, W:), each
// override used with its reason (O:), and the informational tags (I:).
func lint(deb string) lintResult {
	if _, err := exec.LookPath("lintian"); err != nil {
		return lintResult{missing: true}
	}
	out, err := runIn(5*time.Minute, "/", os.Environ(), "lintian", "--display-info", "--show-overrides", "--fail-on", "none", deb)
	return lintResult{out: "\n" + out, err: err}
}

// debField is a control field of a package file.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f %s %s: %v", deb, field, err)
	}
	return strings.TrimSpace(string(out))
}

type debEntry struct {
	perm, name string // "-rwxr-xr-x root/root"; "./usr/sbin/spawnd" or "./a -> b"
	dir        bool
}

// debListing is dpkg-deb -c's listing of a package, the top directory
// left out.
func debListing(t *testing.T, deb string) []debEntry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c %s: %v", deb, err)
	}
	t.Logf("dpkg-deb -c %s:\n%s", filepath.Base(deb), out)
	var l []debEntry
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] == "./" {
			continue
		}
		l = append(l, debEntry{perm: f[0] + " " + f[1], name: strings.TrimSuffix(strings.Join(f[5:], " "), "/"), dir: f[0][0] == 'd'})
	}
	return l
}

// path is where the entry is installed.
func (e debEntry) path() string {
	p, _, _ := strings.Cut(strings.TrimPrefix(e.name, "."), " -> ")
	return p
}

func entryNames(l []debEntry) (n []string) {
	for _, e := range l {
		n = append(n, e.name)
	}
	return n
}

// spawndPaths lists the files and directories named spawnd* in the
// directories the package or its maintainer scripts write to.
func spawndPaths() []string {
	var out []string
	for _, root := range debWatched {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), "spawnd") {
				out = append(out, path)
			}
			return nil
		})
	}
	slices.Sort(out)
	return out
}

// enabledUnits lists the links to spawnd's units under
// /etc/systemd/system: what systemctl enable creates.
func enabledUnits() []string {
	var out []string
	filepath.WalkDir("/etc/systemd/system", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 && strings.HasPrefix(d.Name(), "spawnd") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// treeSums is a digest of every file's name and content under root.
func treeSums(root string) string {
	h := sha256.New()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			fmt.Fprintf(h, "%s %x\n", path, sha256.Sum256(b))
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// exe is the file a process runs, " (deleted)" when it was replaced.
func exe(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return s
}
