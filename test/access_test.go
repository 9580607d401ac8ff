package test

// Issue 15, who may connect and how much: client_access, the per-client
// limits, and the executor's own check of client_access, against the real
// binaries over real sockets. Loopback has every 127.0.0.0/8 address, so
// that a client can be 127.0.0.2 or 127.0.0.3.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// talkFrom is Talk from the local address src ("" for any).
func talkFrom(src, network, addr string, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	conn, err := d.Dial(network, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(conn)
	return string(b), err
}

// TestAccessInet: allowed and refused clients over IPv4 and [::1], with
// negation and first-match order; a refused client gets end of file at
// once, runs no command, and is logged with service, client and rule. An
// IPv4 client of a dual-stack socket matches IPv4 patterns.
func TestAccessInet(t *testing.T) {
	a, b, six, none, dual := loopback(t), loopback(t), fmt.Sprintf("[::1]:%d", freePort(t)),
		fmt.Sprintf("[::1]:%d", freePort(t)), strconv.Itoa(freePort(t)) // all addresses: dual-stack
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o client_access=!127.0.0.2,127.0.0.0/8 user=nobody argv=/bin/echo ok\n", a) +
			fmt.Sprintf("%s inet n n n - - spawnd -o {client_access = 127.0.0.0/8 !127.0.0.2} user=nobody argv=/bin/echo ok\n", b) +
			fmt.Sprintf("%s inet n n n - - spawnd -o client_access=[::1] user=nobody argv=/bin/echo ok\n", six) +
			fmt.Sprintf("%s inet n n n - - spawnd -o client_access=![::1]/128,[::]/0 user=nobody argv=/bin/echo ok\n", none) +
			fmt.Sprintf("%s inet n n n - - spawnd -o client_access=127.0.0.3 user=nobody argv=/bin/echo ok\n", dual),
		Ready: []string{"tcp " + a},
	})
	port := ":" + dual
	for _, c := range []struct {
		src, network, addr string
		ok                 bool
	}{
		{"127.0.0.1", "tcp4", a, true},
		{"127.0.0.2", "tcp4", a, false}, // the negation comes first
		{"127.0.0.3", "tcp4", a, true},
		{"127.0.0.2", "tcp4", b, true}, // 127.0.0.0/8 comes first
		{"::1", "tcp6", six, true},
		{"::1", "tcp6", none, false},
		{"127.0.0.3", "tcp", "127.0.0.1" + port, true}, // ::ffff:127.0.0.3 on the socket
		{"127.0.0.2", "tcp", "127.0.0.1" + port, false},
		{"::1", "tcp6", "[::1]" + port, false},
	} {
		got, err := talkFrom(c.src, c.network, c.addr, 10*time.Second)
		if want := map[bool]string{true: "ok\n"}[c.ok]; got != want {
			t.Errorf("from %s to %s: got %q (%v), want %q", c.src, c.addr, got, err, want)
		}
	}
	for _, re := range []string{
		`warning: service ` + regexp.QuoteMeta(a) + `: client 127.0.0.2: refused by client_access !127.0.0.2/32`,
		`warning: service ` + regexp.QuoteMeta(none) + `: client ::1: refused by client_access !::1/128`,
		`warning: service ` + regexp.QuoteMeta(dual) + `: client 127.0.0.2: refused by client_access \(no pattern matches\)`,
	} {
		if _, ok := d.WaitLog(re, 5*time.Second); !ok {
			t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
		}
	}
	if strings.Contains(d.ReadLog(), "protocol violation") {
		t.Errorf("the executor saw a refused client:\n%s", d.ReadLog())
	}
}

// asUser runs argv as the named user (its uid and primary gid, no other
// groups) and returns what it wrote, within 10 seconds.
func asUser(t *testing.T, name string, argv ...string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, _ := cmd.Output()
	return string(out)
}

// TestAccessUnix: on unix services, a client running as nobody is
// refused and one running as mail_owner allowed, by uid and by group
// (names resolved at load time), from SO_PEERCRED.
func TestAccessUnix(t *testing.T) {
	requireRoot(t)
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Skip("socat not installed (apt-get install socat): the clients run as other users through it")
	}
	owner, _ := user.Lookup(mailOwner())
	group, _ := user.LookupGroupId(owner.Gid)
	dir := tempDir(t)
	byUid, byGroup := filepath.Join(dir, "uid"), filepath.Join(dir, "group")
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s unix n n n - - spawnd -o client_access=uid:%s user=nobody argv=/bin/echo ok\n", byUid, owner.Uid) +
			fmt.Sprintf("%s unix n n n - - spawnd -o client_access=!user:nobody,group:%s user=nobody argv=/bin/echo ok\n", byGroup, group.Name),
		Ready: []string{"unix " + byUid, "unix " + byGroup},
	})
	for _, c := range []struct{ user, path, want string }{
		{"nobody", byUid, ""}, {mailOwner(), byUid, "ok\n"},
		{"nobody", byGroup, ""}, {mailOwner(), byGroup, "ok\n"},
	} {
		if got := asUser(t, c.user, socat, "-u", "UNIX-CONNECT:"+c.path, "STDOUT"); got != c.want {
			t.Errorf("%s to %s: got %q, want %q", c.user, c.path, got, c.want)
		}
	}
	nobody, _ := user.Lookup("nobody")
	for _, re := range []string{
		`service ` + regexp.QuoteMeta(byUid) + `: client uid ` + nobody.Uid + ` gid \d+: refused by client_access \(no pattern matches\)`,
		`service ` + regexp.QuoteMeta(byGroup) + `: client uid ` + nobody.Uid + ` gid \d+: refused by client_access !uid:` + nobody.Uid,
	} {
		if _, ok := d.WaitLog(re, 5*time.Second); !ok {
			t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
		}
	}
}

// TestClientConnectionLimit: with client_connection_limit 2, ten clients
// from 127.0.0.2 that connect again and again never have more than two
// commands at once (the others are refused, not queued), while ten from
// 127.0.0.3 are all served meanwhile.
func TestClientConnectionLimit(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	os.Chmod(dir, 0o777)
	// Each command leaves a file while it runs and notes how many of its
	// client's it sees, itself included: the last of any three at once
	// would see three.
	script := writeScript(t, dir, "count", fmt.Sprintf(`f=%[1]s/run.$TCPREMOTEIP.$$
: > $f
ls %[1]s | grep -c "^run.$TCPREMOTEIP\." >> %[1]s/seen.$TCPREMOTEIP
sleep 0.5
rm -f $f
echo ok
`, dir))
	addr := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o client_connection_limit=2 -o peer_environment=yes user=nobody argv=%s\n", addr, script),
	})
	if _, err := talkRetry("tcp", addr, "", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deadline := time.Now().Add(60 * time.Second); !stop.Load() && time.Now().Before(deadline); {
				if got, _ := talkFrom("127.0.0.2", "tcp", addr, 10*time.Second); got == "ok\n" {
					served.Add(1)
				} else {
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	// One at a time: a command counts against its client until spawnd
	// has reaped it, a moment after the client has seen end of file, so
	// that a client at its limit that reconnects at once can be refused.
	for i := 0; i < 10; i++ {
		if got, err := talkFrom("127.0.0.3", "tcp", addr, 10*time.Second); got != "ok\n" {
			t.Errorf("client %d from 127.0.0.3 got %q (%v)", i, got, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	for ip, want := range map[string]int{"127.0.0.2": 2, "127.0.0.3": 1} {
		b, _ := os.ReadFile(filepath.Join(dir, "seen."+ip))
		most := 0
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			most = max(most, n)
		}
		if most > want || most == 0 {
			t.Errorf("%s: at most %d commands at once seen, want 1 to %d", ip, most, want)
		}
	}
	t.Logf("from 127.0.0.2: %d served, %d refused", served.Load(), refused.Load())
	if served.Load() == 0 || refused.Load() == 0 {
		t.Errorf("from 127.0.0.2: %d served, %d refused; want some of each", served.Load(), refused.Load())
	}
	re := `warning: service ` + regexp.QuoteMeta(addr) + `: client 127.0.0.2: 2 commands at once, client_connection_limit 2`
	if _, ok := d.WaitLog(re, 5*time.Second); !ok {
		t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
	}
	if strings.Contains(d.ReadLog(), "client 127.0.0.3") {
		t.Errorf("a client from 127.0.0.3 was refused:\n%s", d.ReadLog())
	}
}

// TestClientConnectionRateLimit: with 3 connections per client per 5s,
// the fourth within the unit is refused, another client is not, and the
// first is served again once the unit has passed.
func TestClientConnectionRateLimit(t *testing.T) {
	addr := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o client_connection_rate_limit=3 -o client_rate_time_unit=5s user=nobody argv=/bin/echo ok\n", addr),
		Ready:  []string{"tcp " + addr},
	})
	// The unit began after t0, at or before start: four connections in
	// less than the unit after t0 are all within it.
	t0, start := time.Now(), time.Time{}
	var got [4]string
	for i := range got {
		got[i], _ = talkFrom("127.0.0.2", "tcp", addr, 10*time.Second)
		if i == 0 {
			start = time.Now()
		}
	}
	if took := time.Since(t0); took >= 5*time.Second {
		t.Fatalf("four connections took %v, over the unit: the machine is too busy for this test", took)
	}
	if want := [4]string{"ok\n", "ok\n", "ok\n", ""}; got != want {
		t.Errorf("four connections in the unit got %q, want %q", got, want)
	}
	if got, err := talkFrom("127.0.0.3", "tcp", addr, 10*time.Second); got != "ok\n" {
		t.Errorf("another client: got %q (%v)", got, err)
	}
	time.Sleep(time.Until(start.Add(5*time.Second + 200*time.Millisecond)))
	if got, err := talkFrom("127.0.0.2", "tcp", addr, 10*time.Second); got != "ok\n" {
		t.Errorf("after the unit: got %q (%v)", got, err)
	}
	re := `warning: service ` + regexp.QuoteMeta(addr) + `: client 127.0.0.2: 4 connections since [0-9:]+, client_connection_rate_limit 3 per 5s`
	if _, ok := d.WaitLog(re, 5*time.Second); !ok {
		t.Errorf("no line matching %q in:\n%s", re, d.ReadLog())
	}
}

// TestAccessRefusalFlood: 500 refused connections add a bounded number of
// log lines: at most 10 refusals logged per 10 seconds, then one line
// that counts the rest, and the counts add up.
func TestAccessRefusalFlood(t *testing.T) {
	addr := loopback(t)
	d := StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o client_access=127.0.0.3 user=nobody argv=/bin/echo ok\n", addr),
	})
	if got, err := talkRetry("tcp", addr, "", 10*time.Second); got != "" || err != nil { // refused: 1
		t.Fatalf("got %q %v", got, err)
	}
	const flood = 500
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < flood/10; i++ {
				talkFrom("127.0.0.2", "tcp", addr, 10*time.Second)
			}
		}()
	}
	wg.Wait()
	count := regexp.MustCompile(`warning: (\d+) more clients refused and not logged`)
	total := 0
	ok := waitFor(25*time.Second, func() bool {
		log := d.ReadLog()
		total = strings.Count(log, "refused by client_access")
		for _, m := range count.FindAllStringSubmatch(log, -1) {
			n, _ := strconv.Atoi(m[1])
			total += n
		}
		return total >= flood+1
	})
	lines := strings.Count(d.ReadLog(), "\n")
	t.Logf("%d refusals, %d log lines", flood+1, lines)
	if !ok || total != flood+1 {
		t.Errorf("refusals logged or counted: %d, want %d:\n%s", total, flood+1, d.ReadLog())
	}
	if lines > 30 {
		t.Errorf("%d log lines for %d refusals:\n%s", lines, flood+1, d.ReadLog())
	}
}

// TestHostileListenerRefusedClient: a listener that passes the socket of
// a client the service's client_access refuses is treated as compromised:
// the executor logs the violation, runs nothing, and restarts it. The
// same listener passing an allowed client's socket gets its command run.
func TestHostileListenerRefusedClient(t *testing.T) {
	for _, c := range []struct {
		src     string
		refused bool
	}{{"127.0.0.1", true}, {"127.0.0.2", false}} {
		t.Run(c.src, func(t *testing.T) {
			h := startHostile(t, "accepted", 0, "-o client_access=127.0.0.2")
			before := h.attack(t)
			go talkFrom(c.src, "tcp", h.addr, 15*time.Second)
			re := `warning: listener protocol violation: run request for service ` + regexp.QuoteMeta(h.addr) +
				`: client 127.0.0.1 refused by client_access \(no pattern matches\)`
			if !c.refused {
				if !waitFor(10*time.Second, func() bool { ents, _ := os.ReadDir(h.marks); return len(ents) == 1 }) {
					t.Errorf("the allowed client's command did not run:\n%s\n%s", h.d.ReadLog(), h.notes())
				}
				time.Sleep(200 * time.Millisecond)
				if strings.Contains(h.d.ReadLog(), "warning:") {
					t.Errorf("warnings for an allowed client:\n%s", h.d.ReadLog())
				}
				return
			}
			if _, ok := h.d.WaitLog(re, 10*time.Second); !ok {
				t.Fatalf("no line matching %q in:\n%s\nnotes:\n%s", re, h.d.ReadLog(), h.notes())
			}
			if !h.restarted(10 * time.Second) {
				t.Errorf("no honest second listener: notes\n%s", h.notes())
			}
			time.Sleep(100 * time.Millisecond)
			if after := settleFds(h.d.Pid(), before); after != before {
				t.Errorf("executor descriptors %d before, %d after: %s", before, after, fdList(h.d.Pid()))
			}
			if ents, _ := os.ReadDir(h.marks); len(ents) > 0 {
				t.Errorf("a command ran for a refused client: %v", ents)
			}
		})
	}
}

// TestPostfixSpawndAccess: the same rules under a real master(8): -o on
// inet services, <service>_client_access in main.cf on unix ones, and a
// per-client limit: a second command at once for one client is refused
// while another client is served.
func TestPostfixSpawndAccess(t *testing.T) {
	dd := spawndDaemonDir(t)
	inet, one := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	marker := freshMarker()
	killMarked(t, marker)
	p := newPostfixInstance(t, fmt.Sprintf(`%s inet n n n - 0 spawnd -o client_access=!127.0.0.2,127.0.0.0/8
    user=nobody argv=/bin/echo ok
root unix - n n - 0 spawnd
    user=nobody argv=/bin/echo ok
notroot unix - n n - 0 spawnd
    user=nobody argv=/bin/echo ok
%s inet n n n - 0 spawnd -o client_connection_limit=1
    user=nobody argv=/bin/sh -c { sleep 2.%s; echo ok }
`, inet, one, marker), "daemon_directory = "+dd+"\nroot_client_access = uid:0\nnotroot_client_access = !user:root, uid:0\n")
	first := make(chan string, 1)
	go func() { got, _ := talkFrom("127.0.0.2", "tcp", one, 20*time.Second); first <- got }()
	if !waitFor(10*time.Second, func() bool { return len(ProcsWithArg("2."+marker)) > 0 }) {
		t.Fatalf("the first command did not start:\n%s", p.log())
	}
	if got, err := talkFrom("127.0.0.2", "tcp", one, 20*time.Second); got != "" {
		t.Errorf("second command at once for 127.0.0.2: got %q (%v), want refused", got, err)
	}
	if got, err := talkFrom("127.0.0.3", "tcp", one, 20*time.Second); got != "ok\n" {
		t.Errorf("127.0.0.3 meanwhile: got %q (%v)", got, err)
	}
	if got := <-first; got != "ok\n" {
		t.Errorf("first command for 127.0.0.2: got %q", got)
	}
	for _, c := range []struct{ src, service, want string }{
		{"127.0.0.1", inet, "ok\n"}, {"127.0.0.2", inet, ""}, {"127.0.0.3", inet, "ok\n"},
		{"", "private/root", "ok\n"}, {"", "private/notroot", ""},
	} {
		network, addr := p.addr(c.service)
		var got string
		var err error
		if network == "tcp" {
			got, err = talkFrom(c.src, network, addr, 20*time.Second)
		} else {
			got, err = Talk(network, addr, "", 20*time.Second)
		}
		if got != c.want {
			t.Errorf("%s from %q: got %q (%v), want %q", c.service, c.src, got, err, c.want)
		}
	}
	for _, re := range []string{
		`postfix/spawnd\[\d+\]: warning: service ` + regexp.QuoteMeta(inet) + `: client 127.0.0.2: refused by client_access !127.0.0.2/32`,
		`postfix/spawnd\[\d+\]: warning: service notroot: client uid 0 gid 0: refused by client_access !uid:0`,
		`postfix/spawnd\[\d+\]: warning: service ` + regexp.QuoteMeta(one) + `: client 127.0.0.2: 1 commands at once, client_connection_limit 1`,
	} {
		if _, ok := p.waitLog(re, 10*time.Second); !ok {
			t.Errorf("no line matching %q in:\n%s", re, p.log())
		}
	}
	if bad := p.logLines(`protocol violation|fatal:|panic:`); len(bad) > 0 {
		t.Errorf("problems in the log:\n%s", strings.Join(bad, "\n"))
	}
}
