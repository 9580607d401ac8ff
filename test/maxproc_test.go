package test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// concurrencyScript writes a command that records how many of its kind
// run at once: it makes a file run.PID in DIR/NAME (NAME its argument),
// appends the number of such files there to DIR/NAME/peak, sleeps a
// second, removes its file and answers ok. Every file is a command still
// running, and the last of any set running at once to start counts them
// all, so the largest number in peak is the largest number that ran at
// once.
func concurrencyScript(t *testing.T, dir string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if err := os.Mkdir(filepath.Join(dir, n), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, n), 0o777)
	}
	return writeScript(t, dir, "concurrency", `d=`+dir+`/$1
: > $d/run.$$
ls $d | grep -c '^run\.' >> $d/peak
sleep 1
rm -f $d/run.$$
echo ok
`)
}

// peak returns the largest count a concurrencyScript service recorded.
func peak(t *testing.T, dir, name string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, name, "peak"))
	max := 0
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s/peak: %q", name, f)
		}
		max = cmpMax(max, n)
	}
	return max
}

func cmpMax(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// clients runs n clients of a service at once and returns how many got
// "ok", and the first failures.
func (p *postfixInstance) clients(service string, n int) (int, []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	ok, bad := 0, []string(nil)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := p.talk(service, "", 90*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && got == "ok\n" {
				ok++
			} else if len(bad) < 3 {
				bad = append(bad, fmt.Sprintf("%q %v", got, err))
			}
		}()
	}
	wg.Wait()
	return ok, bad
}

// spawndsOf samples, until stop closes, the spawnd processes of one
// service (-n NAME on their command line) under master(8): the most alive
// at once, and how many there were in all.
func (p *postfixInstance) spawndsOf(name string, stop chan struct{}) chan [2]int {
	out := make(chan [2]int, 1)
	go func() {
		most, seen := 0, map[int]bool{}
		for {
			n := 0
			for _, pid := range p.children("spawnd") {
				if strings.Contains(cmdline(pid)+" ", " -n "+name+" ") {
					n++
					seen[pid] = true
				}
			}
			most = cmpMax(most, n)
			select {
			case <-stop:
				out <- [2]int{most, len(seen)}
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return out
}

// TestPostfixSpawndMaxproc (issue: maxproc bounds the commands): under a
// real master(8), 20 clients at once of a one-second command never have
// more commands running at once than the service's master.cf maxproc:
// maxproc 3 on unix and on inet (master(8) passes no -l or -z, spawnd
// reads the column), 3 with max_use 2 (a spawnd reaching max_use while
// its commands run), 1 (-l), and 3 and 1 again across a `postfix
// reload` in the middle of the load (the old spawnd finishing its
// commands while a new one would start). All 20 are served each time,
// master(8) logs no warning (no throttling, no process limit), nothing
// else does. maxproc 0 (-z) runs more than 3 at once.
func TestPostfixSpawndMaxproc(t *testing.T) {
	dd := spawndDaemonDir(t)
	dir := tempDir(t)
	os.Chmod(dir, 0o755)
	names := []string{"mp3", "mpi", "mpu", "mp0", "mp1", "mpr", "mpr1"}
	script := concurrencyScript(t, dir, names...)
	inet := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := newPostfixInstance(t, fmt.Sprintf(`mp3 unix - n n - 3 spawnd user=nobody argv=%[1]s mp3
%[2]s inet n n n - 3 spawnd -o max_idle=2 user=nobody argv=%[1]s mpi
mpu unix - n n - 3 spawnd -o max_use=2 user=nobody argv=%[1]s mpu
mp0 unix - n n - 0 spawnd user=nobody argv=%[1]s mp0
mp1 unix - n n - 1 spawnd user=nobody argv=%[1]s mp1
mpr unix - n n - 3 spawnd user=nobody argv=%[1]s mpr
mpr1 unix - n n - 1 spawnd user=nobody argv=%[1]s mpr1
`, script, inet), "daemon_directory = "+dd)
	const n = 20
	type run struct {
		service, name string
		limit         int // 0: none
		processes     int // spawnd processes of the service to see at least
	}
	load := func(runs []run, during func()) {
		t.Helper()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, r := range runs {
			wg.Add(1)
			procs := p.spawndsOf(strings.TrimPrefix(r.service, "private/"), stop)
			go func() {
				defer wg.Done()
				start := time.Now()
				ok, bad := p.clients(r.service, n)
				got := peak(t, dir, r.name)
				t.Logf("%s (maxproc %d): %d of %d served in %v, at most %d commands at once",
					r.name, r.limit, ok, n, time.Since(start).Round(10*time.Millisecond), got)
				if ok != n {
					t.Errorf("%s: %d of %d clients served; first failures: %s", r.name, ok, n, strings.Join(bad, "; "))
				}
				if r.limit > 0 && got > r.limit {
					t.Errorf("%s: %d commands ran at once, maxproc is %d", r.name, got, r.limit)
				}
				if r.limit == 0 && got <= 3 {
					t.Errorf("%s: at most %d commands ran at once with maxproc 0", r.name, got)
				}
			}()
			defer func() {
				got := <-procs
				t.Logf("%s: %d spawnd processes, at most %d at once", r.name, got[1], got[0])
				if got[1] < r.processes {
					t.Errorf("%s: %d spawnd processes, want %d or more", r.name, got[1], r.processes)
				}
			}()
		}
		if during != nil {
			during()
		}
		wg.Wait()
		close(stop)
	}
	load([]run{{"private/mp3", "mp3", 3, 1}, {inet, "mpi", 3, 1}, {"private/mpu", "mpu", 3, 1}, {"private/mp0", "mp0", 0, 1}}, nil)
	// After the reload the old spawnd finishes its commands and exits;
	// master(8) then starts a new one.
	load([]run{{"private/mp1", "mp1", 1, 2}, {"private/mpr", "mpr", 3, 2}, {"private/mpr1", "mpr1", 1, 2}}, func() {
		time.Sleep(2500 * time.Millisecond)
		if out, err := postfixCommand(20*time.Second, "-c", p.conf, "reload"); err != nil {
			t.Errorf("postfix reload: %v\n%s", err, out)
		}
	})
	time.Sleep(time.Second) // the last records
	if _, ok := p.waitLog(`postfix/master\[\d+\]: reload`, 5*time.Second); !ok {
		t.Errorf("master(8) logged no reload")
	}
	if bad := p.problems(); len(bad) > 0 {
		t.Errorf("warnings in the log:\n%s", strings.Join(bad, "\n"))
	}
}

// TestPostfixListenerCannotSayTaken: a compromised listener that told
// master(8) TAKEN would have it start a second spawnd of the service,
// each held to maxproc by its own executor: up to maxproc² commands at
// once. The test plays that listener: as root it takes the listener's
// descriptor 5 (pidfd_getfd), where master(8)'s status channel would be,
// and writes there TAKEN for the executor's pid and generation, as the
// listener's own status records are; then 8 clients at once of a
// one-second command under maxproc 2. master(8) must start no second
// spawnd, and no more than 2 commands may run at once.
func TestPostfixListenerCannotSayTaken(t *testing.T) {
	dd := spawndDaemonDir(t)
	dir := tempDir(t)
	os.Chmod(dir, 0o755)
	script := concurrencyScript(t, dir, "mpt")
	p := newPostfixInstance(t, fmt.Sprintf("mpt unix - n n - 2 spawnd user=nobody argv=%s mpt\n", script), "daemon_directory = "+dd)
	if got, err := p.talk("private/mpt", "", 30*time.Second); got != "ok\n" {
		t.Fatalf("first client: %q, %v", got, err)
	}
	exe := p.children("spawnd")
	if len(exe) != 1 {
		t.Fatalf("spawnd processes: %v, want one", exe)
	}
	lst := 0
	for _, c := range Children(exe[0]) {
		if comm(c) == "spawnd-listener" {
			lst = c
		}
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", exe[0]))
	var gen uint64
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "GENERATION="); ok {
			gen, _ = strconv.ParseUint(v, 8, 32)
		}
	}
	pidfd, err := unix.PidfdOpen(lst, 0)
	if err != nil {
		t.Fatalf("pidfd_open of the listener %d: %v", lst, err)
	}
	fd, err := unix.PidfdGetfd(pidfd, 5, 0)
	unix.Close(pidfd)
	if err != nil {
		t.Fatalf("the listener's descriptor 5: %v", err)
	}
	var taken [12]byte // pid, generation, 0: TAKEN (master_proto.h)
	binary.NativeEndian.PutUint32(taken[0:], uint32(exe[0]))
	binary.NativeEndian.PutUint32(taken[4:], uint32(gen))
	_, err = unix.Write(fd, taken[:])
	unix.Close(fd)
	t.Logf("TAKEN for pid %d generation %d written to the listener's descriptor 5: %v", exe[0], gen, err)
	time.Sleep(500 * time.Millisecond) // master(8) reads it
	stop := make(chan struct{})
	procs := p.spawndsOf("mpt", stop)
	ok, bad := p.clients("private/mpt", 8)
	close(stop)
	got := <-procs
	t.Logf("%d of 8 served, %d spawnd processes, at most %d commands at once", ok, got[1], peak(t, dir, "mpt"))
	if ok != 8 {
		t.Errorf("%d of 8 clients served; first failures: %s", ok, strings.Join(bad, "; "))
	}
	if got[1] != 1 {
		t.Errorf("master(8) ran %d spawnd processes of the service, want the one", got[1])
	}
	if n := peak(t, dir, "mpt"); n > 2 {
		t.Errorf("%d commands ran at once, maxproc is 2", n)
	}
}
