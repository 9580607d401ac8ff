package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCheckExamples: the demo configuration `make run` serves validates.
func TestCheckExamples(t *testing.T) {
	out, err := exec.Command(filepath.Join(bin(t), "spawnd"), "check", "-c", filepath.Join(moduleRoot(), "examples")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "user=nobody group=nogroup") {
		t.Fatalf("spawnd check -c examples: %v\n%s", err, out)
	}
}

// TestCheckBrokenConfigs: each folder of testdata/config is a broken
// configuration; spawnd check exits 1 and prints exactly its want file.
func TestCheckBrokenConfigs(t *testing.T) {
	cases, _ := filepath.Glob("testdata/config/*/want")
	if len(cases) < 8 {
		t.Fatalf("found %d cases", len(cases))
	}
	for _, want := range cases {
		name := filepath.Base(filepath.Dir(want))
		cmd := exec.Command(filepath.Join(bin(t), "spawnd"), "check", "-c", name)
		cmd.Dir = "testdata/config"
		out, err := cmd.CombinedOutput()
		w, _ := os.ReadFile(want)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || string(out) != string(w) {
			t.Errorf("%s: exit %v, output:\n%s\nwant:\n%s", name, err, out, w)
		}
	}
}

// TestListenerCredentialsAndAccept: the listener runs as mail_owner with
// no supplementary groups, and only the listener accepts: strace on the
// executor sees no accept during several connections.
func TestListenerCredentialsAndAccept(t *testing.T) {
	d, tcp, _ := serveOne(t, "/bin/echo ok", "/bin/true")
	// A served connection proves the listener runs: a listening socket
	// accepts into its backlog before the listener has started.
	if got, err := Talk("tcp", tcp, "", 10*time.Second); err != nil || got != "ok\n" {
		t.Fatalf("%q %v", got, err)
	}
	l := d.Listener()
	status, _ := os.ReadFile("/proc/" + itoa(l) + "/status")
	uid, _ := exec.Command("id", "-u", mailOwner()).Output()
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.Join(strings.Fields(v), " ")
	}
	u := strings.TrimSpace(string(uid))
	if fields["Uid"] != strings.Repeat(u+" ", 3)+u || fields["Groups"] != "" {
		t.Fatalf("listener Uid %q Groups %q, want all %s and none", fields["Uid"], fields["Groups"], u)
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed (apt-get install strace)")
	}
	cmd := exec.Command(strace, "-f", "-e", "trace=accept,accept4", "-p", itoa(d.Pid()))
	var out syncBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitTraced(t, d.Pid(), cmd.Process.Pid)
	for i := 0; i < 5; i++ {
		if got, err := Talk("tcp", tcp, "", 10*time.Second); err != nil || got != "ok\n" {
			t.Fatalf("%q %v", got, err)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if s := out.String(); strings.Contains(s, "accept") {
		t.Fatalf("the executor accepted:\n%s", s)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
