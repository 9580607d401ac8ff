package test

// Issue 12.1: root follows no name that mail_owner controls. A process of
// mail_owner watches private/ (mail_owner's, as in Postfix) with inotify
// and renames a symlink to a root-owned file over every name the moment
// spawnd binds it, through 200 starts and reloads that each bind new unix
// services. No file it pointed at changes owner or mode.

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

func TestSocketDirSymlinkRace(t *testing.T) {
	requireRoot(t)
	racerBin := hostileBuild(t)
	queue := tempDir(t)
	priv := filepath.Join(queue, "private")
	mustMailOwnerDir(t, priv)
	victimDir := tempDir(t)
	var victims []string
	for i := 0; i < 4; i++ {
		v := filepath.Join(victimDir, fmt.Sprintf("victim%d", i))
		if err := os.WriteFile(v, []byte("root's alone\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		victims = append(victims, v)
	}
	watched := append([]string{victimDir, queue, priv}, victims...)
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, p := range watched {
			st, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			sys := st.Sys().(*syscall.Stat_t)
			m[p] = fmt.Sprintf("%v %d:%d", st.Mode(), sys.Uid, sys.Gid)
		}
		return m
	}
	before := snapshot()

	owner := lookupIDs(t, mailOwner())
	racer := exec.Command(racerBin, append([]string{"symlink-racer", priv}, victims...)...)
	racer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: owner.uid, Gid: owner.gid, Groups: []uint32{}}}
	if err := racer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { racer.Process.Kill(); racer.Wait() }()
	time.Sleep(100 * time.Millisecond) // its inotify watch

	const starts, reloads = 40, 4 // 40 starts + 160 reloads
	for s := 0; s < starts; s++ {
		var names []string
		master := func() string {
			names = append(names, fmt.Sprintf("race%d-%d", s, len(names)))
			var b strings.Builder
			for _, n := range names {
				fmt.Fprintf(&b, "%s unix - n n - - spawnd user=nobody argv=/bin/true\n", n)
			}
			return b.String()
		}
		d := StartServe(t, Config{Main: "queue_directory = " + queue, Master: master()})
		prev := waitListener(t, d, 0)
		for r := 0; r < reloads; r++ {
			if err := os.WriteFile(filepath.Join(d.Dir, "master.cf"), []byte(master()), 0o644); err != nil {
				t.Fatal(err)
			}
			d.Signal(syscall.SIGHUP)
			prev = waitListener(t, d, prev)
		}
		d.Stop()
	}
	after := snapshot()
	for _, p := range watched {
		if before[p] != after[p] {
			t.Errorf("%s: %s before, %s after", p, before[p], after[p])
		}
	}
	swapped := 0
	ents, _ := os.ReadDir(priv)
	for _, e := range ents {
		if e.Type()&os.ModeSymlink != 0 {
			swapped++
		}
	}
	t.Logf("%d starts and reloads, each binding a new socket; the racer put a symlink over %d of them", starts*(1+reloads), swapped)
	if swapped == 0 {
		t.Errorf("the racer replaced no socket: the race was not run")
	}
}

// waitListener waits for a listener of d other than prev to be past its
// start-up, which it shows by its seccomp filter, and returns its pid: the
// executor has bound its sockets by then, and the listener takes SIGUSR1
// (a reload) instead of ignoring it as the Go runtime does before
// signal.Notify.
func waitListener(t *testing.T, d *Daemon, prev int) int {
	t.Helper()
	var pid int
	if !waitFor(20*time.Second, func() bool {
		pid = d.Listener()
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		return pid != 0 && pid != prev && regexp.MustCompile(`(?m)^Seccomp:\s+2$`).Match(st)
	}) {
		t.Fatalf("no new listener after 20s (previous %d):\n%s", prev, d.ReadLog())
	}
	return pid
}
