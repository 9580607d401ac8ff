package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture the project runs on).
const clockTick = 10e-3 // seconds

// pstat is what the runner reads from /proc/PID/stat.
type pstat struct {
	pid   int
	ppid  int
	comm  string
	ticks uint64 // utime + stime of the whole process, in clock ticks; children excluded
	start uint64 // start time since boot, in clock ticks: with pid, the identity of a process
}

func (p pstat) key() string { return fmt.Sprintf("%d/%d", p.pid, p.start) }

// readStat parses /proc/PID/stat. The command name is in parentheses and
// may itself contain spaces and parentheses, so fields are counted from the
// last ')'.
func readStat(pid int) (pstat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pstat{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return pstat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22.
	if len(f) < 20 {
		return pstat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	num := func(i int) uint64 { n, _ := strconv.ParseUint(f[i], 10, 64); return n }
	return pstat{
		pid:   pid,
		ppid:  int(num(1)),
		comm:  s[open+1 : end],
		ticks: num(11) + num(12),
		start: num(19),
	}, nil
}

// childrenOf returns the live children of parent whose command name is one
// of comms.
func childrenOf(parent int, comms ...string) []pstat {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []pstat
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != parent {
			continue
		}
		for _, c := range comms {
			if st.comm == c {
				out = append(out, st)
			}
		}
	}
	return out
}

// descendantsOf returns every live process below root.
func descendantsOf(root int) []pstat {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	byParent := map[int][]pstat{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			byParent[st.ppid] = append(byParent[st.ppid], st)
		}
	}
	var out []pstat
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range byParent[p] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// rssKiB returns VmRSS of pid in KiB.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// machine describes the host in one line: CPUs, CPU model, kernel, system.
func machine(nproc int) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := strings.TrimSpace(readString("/proc/sys/kernel/osrelease"))
	system := "Linux"
	for _, l := range strings.Split(readString("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			system = strings.Trim(v, `"`)
		}
	}
	return fmt.Sprintf("%d CPUs (nproc), %s, kernel %s, %s", nproc, model, kernel, system)
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// cpuBusy returns the share of all CPUs' time that was busy, and the share
// stolen by the hypervisor, over the given interval, from /proc/stat.
func cpuBusy(interval time.Duration) (busy, steal float64) {
	read := func() (total, idle, stolen uint64) {
		l, _, _ := strings.Cut(readString("/proc/stat"), "\n")
		for i, f := range strings.Fields(l)[1:] {
			n, _ := strconv.ParseUint(f, 10, 64)
			if i >= 8 { // guest time is already in user time
				break
			}
			total += n
			switch i {
			case 3, 4: // idle, iowait
				idle += n
			case 7:
				stolen += n
			}
		}
		return
	}
	t0, i0, s0 := read()
	time.Sleep(interval)
	t1, i1, s1 := read()
	if t1 == t0 {
		return 0, 0
	}
	d := float64(t1 - t0)
	return 100 * (d - float64(i1-i0)) / d, 100 * float64(s1-s0) / d
}
