package executor

// Each command, and each listener, runs in a cgroup of its own in the
// cgroup v2 hierarchy, wherever that is mounted (/proc/self/mountinfo):
// killing the cgroup (cgroup.kill) reaches every process in it, however it
// left the process tree. The cgroups of one spawnd process are in
// spawnd-PID-START beside it, in its own cgroup (under systemd the
// delegated subtree of spawnd.service, under master(8) master's), PID and
// START its process id and start time: a spawnd that starts kills and
// removes only those whose process is gone, so that two spawnd processes
// never touch each other's. Without cgroup v2 every method does nothing
// and the time limit kills the command's process group only (spawn.go,
// kill): what left the group escapes it.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"spawnd/maillog"
)

// cgroups is this process's cgroup directory; nil when there is none.
// The cgroup of a command that has ended goes back to free, for the next
// command, instead of being removed, when reuse allows: mkdir and rmdir of
// a cgroup cost more than the rest of a spawn's work in the kernel
// (bench/README.md, Performance).
type cgroups struct {
	dir  string
	free []string // at most poolMax
}

const poolMax = 64

var cgroupSeq atomic.Uint64

// newCgroups finds the cgroup v2 hierarchy, creates this process's
// directory in it and kills what a spawnd that is gone left beside it.
func newCgroups(log *maillog.Logger) *cgroups {
	mount := ""
	info, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(info), "\n") {
		// id parent major:minor root mount-point options ... - fstype ...
		if l := strings.Fields(l); len(l) > 7 && l[len(l)-3] == "cgroup2" && l[3] == "/" {
			mount = l[4]
			break
		}
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	_, path, ok := strings.Cut(strings.TrimSpace(string(own)), "0::")
	if mount == "" || !ok {
		return nil
	}
	parent := filepath.Join(mount, strings.SplitN(path, "\n", 2)[0])
	ents, _ := os.ReadDir(parent)
	for _, ent := range ents {
		var pid int // a spawnd-PID-START whose process has gone
		if _, err := fmt.Sscanf(ent.Name(), "spawnd-%d-", &pid); err == nil && ent.Name() != cgroupName(pid) {
			dir, killed := filepath.Join(parent, ent.Name()), 0
			procs, _ := filepath.Glob(dir + "/*/cgroup.procs")
			for _, p := range procs {
				b, _ := os.ReadFile(p)
				killed += strings.Count(string(b), "\n")
			}
			(&cgroups{dir: dir}).close()
			if killed > 0 {
				log.Warning("killed %d processes left in %s by spawnd pid %d, which has gone", killed, dir, pid)
			}
		}
	}
	c := &cgroups{dir: filepath.Join(parent, cgroupName(os.Getpid()))}
	if err := os.Mkdir(c.dir, 0o700); err != nil && !os.IsExist(err) {
		log.Warning("cgroup %s: %v: killing commands by their process group only", c.dir, err)
		return nil
	}
	return c
}

// cgroupName is the name of the cgroup directory of the spawnd process
// pid: spawnd-PID-START, START its start time, the 20th field of
// /proc/PID/stat after the command name, the state first ("" when the
// process has gone). The command name may hold spaces and parentheses.
func cgroupName(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return "spawnd-" + strconv.Itoa(pid) + "-" + append(f, make([]string, 20)...)[19]
}

// make creates a new cgroup and returns its path and a descriptor of its
// directory for CLONE_INTO_CGROUP, or "" and -1.
//
//tcb:request-path
func (c *cgroups) make() (string, int) {
	if c == nil {
		return "", -1
	}
	var dir string
	if n := len(c.free); n > 0 {
		dir, c.free = c.free[n-1], c.free[:n-1]
	} else if dir = filepath.Join(c.dir, strconv.FormatUint(cgroupSeq.Add(1), 10)); unix.Mkdir(dir, 0o700) != nil {
		return "", -1
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Rmdir(dir)
		return "", -1
	}
	return dir, fd
}

// kill kills every process in the cgroup dir; it reports false when
// there is none, or the kernel has no cgroup.kill (before Linux 5.14).
//
//tcb:request-path
func (c *cgroups) kill(dir string) bool {
	return dir != "" && os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) == nil
}

// remove removes the cgroup dir and reports whether it is gone: it is not
// while a process is left in it.
//
//tcb:request-path
func (c *cgroups) remove(dir string) bool {
	return dir == "" || unix.Rmdir(dir) == nil
}

// reuse keeps the cgroup of a command that has ended for the next one
// when it is empty and was never killed (the kernel kills whatever is
// cloned into a cgroup killed before), and reports true; else it removes
// it as remove does.
//
//tcb:request-path
func (c *cgroups) reuse(dir string, killed bool) bool {
	if dir == "" || killed || len(c.free) >= poolMax {
		return c.remove(dir)
	}
	// Not os.ReadFile: it would add the file to the runtime's poller
	// (cgroup.events can be polled), five system calls more.
	var b [64]byte
	if fd, err := unix.Open(dir+"/cgroup.events", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		n, _ := unix.Read(fd, b[:])
		unix.Close(fd)
		if strings.HasPrefix(string(b[:max(n, 0)]), "populated 0\n") {
			c.free = append(c.free, dir)
			return true
		}
	}
	return c.remove(dir)
}

// close kills and removes every cgroup this process made (or, in the
// sweep, a spawnd that is gone; nil: none), retrying for up to a second
// while the killed processes leave.
func (c *cgroups) close() {
	for i := 0; c != nil && i < 100; i++ {
		c.kill(c.dir) // again on a retry: what is left is still leaving
		subs, _ := filepath.Glob(c.dir + "/*/cgroup.procs")
		for _, p := range subs {
			unix.Rmdir(filepath.Dir(p))
		}
		if err := unix.Rmdir(c.dir); err == nil || err == unix.ENOENT {
			return
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
	}
}
