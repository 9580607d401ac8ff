package policy

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestParseAccess: every kind of pattern in its canonical form, and each
// malformed one refused with the reason.
func TestParseAccess(t *testing.T) {
	for _, c := range []struct{ typ, list, want string }{
		{Inet, "", ""},
		{Inet, "127.0.0.1", "127.0.0.1/32"},
		{Inet, "10.0.0.0/8, !10.1.0.0/16\t192.168.0.0/24", "10.0.0.0/8 !10.1.0.0/16 192.168.0.0/24"},
		{Inet, "[::1] [2001:db8::]/32 ::1 !0.0.0.0/0", "::1/128 2001:db8::/32 ::1/128 !0.0.0.0/0"},
		{Inet, "[::ffff:127.0.0.0]/104 ::ffff:10.0.0.1", "127.0.0.0/8 10.0.0.1/32"},
		{Unix, "uid:100,!gid:65534 user:nobody group:staff", "uid:100 !gid:65534 uid:65534 gid:50"},
		{Pass, "uid:1 127.0.0.1", "uid:1 127.0.0.1/32"},
		{Inet, "uid:1", `no pattern for inet services: every client would be refused`},
		{Unix, "127.0.0.1 [::1]", `no pattern for unix services: every client would be refused`},
		{Unix, "127.0.0.1 uid:0", "127.0.0.1/32 uid:0"},
		{Inet, "127.0.0.1 uid:0", "127.0.0.1/32 uid:0"},
		{Inet, "example.com", `pattern "example.com": malformed pattern: want address, address/prefix, [ipv6] or [ipv6]/prefix`},
		{Inet, "[127.0.0.1]", `pattern "[127.0.0.1]": malformed pattern: want address, address/prefix, [ipv6] or [ipv6]/prefix`},
		{Inet, "[::1", `pattern "[::1": malformed pattern: want address, address/prefix, [ipv6] or [ipv6]/prefix`},
		{Inet, "fe80::1%eth0", `pattern "fe80::1%eth0": malformed pattern: want address, address/prefix, [ipv6] or [ipv6]/prefix`},
		{Inet, "!", `pattern "!": malformed pattern: want address, address/prefix, [ipv6] or [ipv6]/prefix`},
		{Inet, "10.0.0.0/33", `pattern "10.0.0.0/33": prefix out of range: want 0 to 32`},
		{Inet, "10.0.0.0/-1", `pattern "10.0.0.0/-1": prefix out of range: want 0 to 32`},
		{Inet, "[::]/129", `pattern "[::]/129": prefix out of range: want 0 to 128`},
		{Inet, "10.0.0.1/8", `pattern "10.0.0.1/8": non-null host address bits, perhaps you should use 10.0.0.0/8 instead`},
		{Unix, "user:nosuch", `pattern "user:nosuch": unknown user name: nosuch`},
		{Unix, "group:nosuch", `pattern "group:nosuch": unknown group name: nosuch`},
		{Unix, "uid:-1", `pattern "uid:-1": strconv.ParseUint: parsing "-1": invalid syntax`},
		{Unix, "uid:4294967296", `pattern "uid:4294967296": strconv.ParseUint: parsing "4294967296": value out of range`},
	} {
		a, err := parseAccess(c.list, c.typ, fixtures{})
		got := a.String()
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s %q: got %q, want %q", c.typ, c.list, got, c.want)
		}
	}
	if _, err := ParseAccess("user:nobody"); err == nil {
		t.Errorf("ParseAccess took a name")
	}
	long := strings.Repeat("[1:2:3:4:5:6:7:8] ", 400)
	if _, err := parseAccess(long, Inet, fixtures{}); err == nil || !strings.Contains(err.Error(), "list too long") {
		t.Errorf("300 IPv6 patterns: %v", err)
	}
}

// TestDecide: first match wins, ! refuses, no match refuses a non-empty
// list, and an inet pattern never matches a unix peer nor the reverse.
func TestDecide(t *testing.T) {
	ip := func(s string) Client { return Client{Addr: netip.MustParseAddr(s).Unmap()} }
	for _, c := range []struct {
		list   string
		client Client
		ok     bool
		rule   int
	}{
		{"", ip("1.2.3.4"), true, -1},
		{"127.0.0.2", ip("127.0.0.2"), true, 0},
		{"127.0.0.2", ip("127.0.0.3"), false, -1},
		{"!127.0.0.2 127.0.0.0/8", ip("127.0.0.2"), false, 0},
		{"!127.0.0.2 127.0.0.0/8", ip("127.0.0.3"), true, 1},
		{"127.0.0.0/8 !127.0.0.2", ip("127.0.0.2"), true, 0},
		{"127.0.0.1", ip("::ffff:127.0.0.1"), true, 0},
		{"[::1]", ip("::1"), true, 0},
		{"[::1]", ip("127.0.0.1"), false, -1},
		{"[2001:db8::]/32", ip("2001:db8:1::5"), true, 0},
		{"!0.0.0.0/0 [::]/0", ip("::2"), true, 1},
		{"uid:100", Client{Uid: 100, Gid: 1}, true, 0},
		{"!gid:65534 uid:0", Client{Uid: 0, Gid: 65534}, false, 0},
		{"gid:5", Client{Uid: 5, Gid: 6}, false, -1},
		{"0.0.0.0/0 [::]/0", Client{Uid: 0, Gid: 0}, false, -1},
		{"uid:0", ip("0.0.0.0"), false, -1},
	} {
		a, err := parseAccess(c.list, Pass, fixtures{})
		if err != nil {
			t.Fatal(err)
		}
		if ok, i := a.Decide(c.client); ok != c.ok || i != c.rule {
			t.Errorf("%q %v: %v %d, want %v %d", c.list, c.client, ok, i, c.ok, c.rule)
		}
	}
}

// TestClientParams: main.cf, <service>_NAME and -o, in that order of
// strength, and errors with file, line and service.
func TestClientParams(t *testing.T) {
	const master = "p unix - n n - - spawnd user=nobody argv=/bin/true\n" +
		"q unix - n n - - spawnd -o client_access=uid:7 -o client_connection_limit=3 user=nobody argv=/bin/true\n"
	p, err, _ := loadText(t, "client_access = !uid:1, user:postfix\np_client_access = group:staff\n"+
		"client_connection_rate_limit = 10\nclient_rate_time_unit = 2m\nq_client_connection_limit = 9\n", master)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, s := range p.Services {
		got = append(got, s.Access.String(), strconv.Itoa(s.ClientLimit), strconv.Itoa(s.RateLimit), s.RateUnit.String())
	}
	if want := "gid:50 0 10 2m0s uid:7 3 10 2m0s"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
	if s := one(t, "", "p unix - n n - - spawnd user=nobody argv=/bin/true\n"); len(s.Access) != 0 ||
		s.ClientLimit != 0 || s.RateLimit != 0 || s.RateUnit != time.Minute {
		t.Errorf("defaults: %+v", s)
	}
	_, err, dir := loadText(t, "client_connection_limit = -1\nclient_rate_time_unit = 0\nclient_access = 1.2.3.4\n",
		"p unix - n n - - spawnd -o client_connection_rate_limit=x user=nobody argv=/bin/true\n")
	want := []string{
		`DIR/main.cf: line 1: service p: invalid client_connection_limit parameter value -1 < 0`,
		`DIR/main.cf: line 2: service p: invalid client_rate_time_unit: 0 (min 1)`,
		`DIR/main.cf: line 3: service p: parameter client_access: no pattern for unix services: every client would be refused`,
		`DIR/master.cf: line 1: service p: bad numerical configuration: client_connection_rate_limit = x`,
	}
	if got := lines(err, dir); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheck: Check admits what its list allows and says why it refuses
// the rest, for inet clients over IPv4 and IPv6 and a unix client by its
// uid and gid (the executor reads them from the socket: executor/tie.go).
func TestCheck(t *testing.T) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, c := range []struct {
		client           Client
		allow, deny, why string
	}{
		{Client{Addr: netip.MustParseAddr("127.0.0.1")}, "127.0.0.0/8", "!127.0.0.1 [::1]", "!127.0.0.1/32"},
		{Client{Addr: netip.IPv6Loopback()}, "[::1]", "127.0.0.1", "(no pattern matches)"},
		{Client{Uid: uid, Gid: gid}, "uid:" + strconv.Itoa(int(uid)), "!gid:" + strconv.Itoa(int(gid)), "!gid:" + strconv.Itoa(int(gid))},
	} {
		allow, _ := parseAccess(c.allow, Pass, nil)
		deny, _ := parseAccess(c.deny, Pass, nil)
		if err := allow.Check(c.client); err != nil {
			t.Errorf("%s %s: %v", c.client, c.allow, err)
		}
		want := fmt.Sprintf("client %s refused by client_access %s", c.client, c.why)
		if err := deny.Check(c.client); err == nil || err.Error() != want {
			t.Errorf("%s %s: %v, want %s", c.client, c.deny, err, want)
		}
	}
}

// FuzzAccess: no list panics the parser; what it accepts reads back from
// its canonical form to the same list, and deciding never panics.
func FuzzAccess(f *testing.F) {
	for _, s := range []string{"127.0.0.1, !10.0.0.0/8 [::1]/128", "uid:1 !gid:2 user:nobody group:staff",
		"[::ffff:1.2.3.4]/120 ::/0", "!!x [::1 1.2.3.4/ /8 [] uid: gid:99999999999", "fe80::1%eth0/64 0.0.0.0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		for _, typ := range []string{Inet, Unix, Pass} {
			a, err := parseAccess(list, typ, fixtures{})
			if err != nil {
				continue
			}
			b, err := ParseAccess(a.String())
			if err != nil || b.String() != a.String() {
				t.Fatalf("%q: canonical %q reads back as %q, %v", list, a.String(), b.String(), err)
			}
			a.Decide(Client{Addr: netip.IPv6Loopback()})
			a.Decide(Client{Uid: 1, Gid: 2})
		}
	})
}

// BenchmarkDecide100: one connection's check against a 100-pattern list
// whose last pattern matches, the bench's worst case.
func BenchmarkDecide100(b *testing.B) {
	var w []string
	for i := 0; i < 99; i++ {
		w = append(w, "10."+strconv.Itoa(i)+".0.0/16")
	}
	a, err := parseAccess(strings.Join(append(w, "127.0.0.0/8"), " "), Inet, fixtures{})
	if err != nil {
		b.Fatal(err)
	}
	c := Client{Addr: netip.MustParseAddr("127.0.0.1")}
	for b.Loop() {
		if ok, _ := a.Decide(c); !ok {
			b.Fatal("refused")
		}
	}
}
