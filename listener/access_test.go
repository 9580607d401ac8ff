package listener

import (
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"spawnd/ipc"
	"spawnd/maillog"
	"spawnd/policy"
)

// TestRefusalWarnings: refusals are logged at most refuseWarnings per
// interval, the rest counted in one line; the counts add up.
func TestRefusalWarnings(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := &listener{log: maillog.New(int(f.Fd()), maillog.File, "postfix/spawnd", 2)}
	svc := &service{name: "smtp"}
	const n = 25
	for i := 0; i < n; i++ {
		l.refuse(svc, policy.Client{Addr: netip.MustParseAddr("192.0.2.1")}, "refused by client_access %s", "!192.0.2.1/32")
	}
	l.flushRefusals(time.Now())
	b, _ := os.ReadFile(f.Name())
	logged := strings.Count(string(b), "warning: service smtp: client 192.0.2.1: refused by client_access !192.0.2.1/32")
	counted := 0
	for _, m := range regexp.MustCompile(`warning: (\d+) more clients refused and not logged`).FindAllStringSubmatch(string(b), -1) {
		c, _ := strconv.Atoi(m[1])
		counted += c
	}
	if logged+counted != n || logged > 3*refuseWarnings {
		t.Errorf("%d logged and %d counted of %d:\n%s", logged, counted, n, b)
	}
}

// TestClientsLimitAndSweep: the per-client tally groups IPv6 by /64 and
// unix peers by uid, and a sweep forgets only clients with nothing in
// flight and no rate window open.
func TestClientsLimitAndSweep(t *testing.T) {
	cs, err := newClients(&ipc.Message{Name: "s", Access: "", PerHost: 1})
	if err != nil || cs.byKey == nil || cs.limit != 1 {
		t.Fatalf("%+v %v", cs, err)
	}
	if _, err := newClients(&ipc.Message{Name: "s", Access: "user:nobody"}); err == nil {
		t.Errorf("a name in the canonical form was taken")
	}
	ip := func(s string) policy.Client { return policy.Client{Addr: netip.MustParseAddr(s)} }
	for _, same := range [][2]policy.Client{
		{ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9")},
		{ip("192.0.2.1"), ip("192.0.2.1")},
		{{Uid: 7, Gid: 1}, {Uid: 7, Gid: 2}},
	} {
		if clientKey(same[0]) != clientKey(same[1]) {
			t.Errorf("%v and %v counted apart", same[0], same[1])
		}
	}
	for _, apart := range [][2]policy.Client{
		{ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1")},
		{ip("192.0.2.1"), ip("192.0.2.2")},
		{{Uid: 7}, {Uid: 8}},
		{{Uid: 0}, ip("0.0.0.0")},
	} {
		if clientKey(apart[0]) == clientKey(apart[1]) {
			t.Errorf("%v and %v counted together", apart[0], apart[1])
		}
	}
	a := &tally{inflight: 1}
	cs.byKey[policy.Client{Uid: 5}] = a
	cs.byKey[policy.Client{Uid: 6}] = &tally{}
	cs.sweep(time.Now())
	if len(cs.byKey) != 1 || cs.byKey[policy.Client{Uid: 5}] != a || cs.swept != 1 {
		t.Errorf("after sweep: %v", cs.byKey)
	}
	a.release()
	(*tally)(nil).release()
	cs.rate, cs.unit = 1, time.Hour
	a.start = time.Now()
	cs.sweep(time.Now())
	if len(cs.byKey) != 1 {
		t.Errorf("a client with a rate window open was forgotten")
	}
}
