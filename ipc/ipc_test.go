package ipc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// pair returns a connected SEQPACKET pair, closed at the end of the test.
func pair(t *testing.T) (*Conn, int) {
	t.Helper()
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(a)
	t.Cleanup(func() { c.Close(); unix.Close(b) })
	return c, b
}

// streamSocket returns one end of a connected stream socketpair.
func streamSocket(t *testing.T) int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return fds[0]
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func mustEncode(t testing.TB, m *Message) []byte {
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var valid = []*Message{
	{Kind: KindHello},
	{Kind: KindRun, Seq: 1, Service: 0},
	{Kind: KindRun, Seq: 1<<63 - 1, Service: 1<<32 - 1},
	{Kind: KindWelcome, Services: 2, Cap: 1000},
	{Kind: KindWelcome, Services: 1, Cap: 4096, Ident: "postfix/spawnd", Facility: 23, Verbose: true},
	{Kind: KindWelcome, Services: 1, Cap: 1, Ident: "p/spawnd", Facility: 2, Postfix: true, Pid: 77, Generation: 1<<32 - 1, MaxUse: 100, MaxIdle: 100},
	{Kind: KindService, Service: 1, Name: "policy", Command: "/bin/echo", Limit: 100, Fd: 6, NFd: 1, Running: 3},
	{Kind: KindService, Service: 2, Name: "smtp", Command: "/bin/cat", Fd: 7, NFd: 2,
		Access: "!127.0.0.2/32 127.0.0.0/8 ::1/128 uid:7 !gid:65534", PerHost: 2, Rate: 10, RateSec: 60},
	{Kind: KindExited, Seq: 9, Service: 1, Pid: 1234, Code: 3, Micros: 1500},
	{Kind: KindExited, Seq: 10, Pid: 1235, Signal: 9, Timeout: true},
	{Kind: KindRefused, Seq: 11, Service: 1, Reason: "fork: resource temporarily unavailable"},
}

func TestRoundTrip(t *testing.T) {
	for _, m := range valid {
		from := FromExecutor
		fds := 0
		if m.Kind < 16 {
			from = FromListener
		}
		if m.Kind == KindRun {
			fds = 1
		}
		got, err := Check(mustEncode(t, m), false, false, fds, from)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func raw(t testing.TB, v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostile are datagrams no honest listener sends, each with the check it
// must fail.
func hostile(t testing.TB) []struct {
	name  string
	b     []byte
	fds   int
	check string
} {
	run := mustEncode(t, &Message{Kind: KindRun, Seq: 1})
	return []struct {
		name  string
		b     []byte
		fds   int
		check string
	}{
		{"garbage", []byte("\xc1\xc1\xc1garbage"), 0, "decode"},
		{"empty map", []byte{0x80}, 0, "version"},
		{"nil", []byte{0xc0}, 0, "decode"},
		{"array", raw(t, []int{1, 2}), 1, "decode"},
		{"truncated", run[:len(run)-1], 1, "decode"},
		{"trailing bytes", append(append([]byte{}, run...), 0x00), 1, "decode"},
		{"unknown field", raw(t, map[string]any{"v": Version, "k": 2, "q": 1, "zz": 1}), 1, "decode"},
		{"wrong type", raw(t, map[string]any{"v": Version, "k": 2, "q": "one"}), 1, "decode"},
		{"negative seq", raw(t, map[string]any{"v": Version, "k": 2, "q": -1}), 1, "decode"},
		{"negative service", raw(t, map[string]any{"v": Version, "k": 2, "q": 1, "s": -1}), 1, "decode"},
		{"service over 32 bits", raw(t, map[string]any{"v": Version, "k": 2, "q": 1, "s": int64(1) << 40}), 1, "decode"},
		{"version over 8 bits", raw(t, map[string]any{"v": 257, "k": 2, "q": 1}), 1, "decode"},
		{"float seq", raw(t, map[string]any{"v": Version, "k": 2, "q": 1.5}), 1, "decode"},
		{"seq over int64", raw(t, map[string]any{"v": Version, "k": 2, "q": uint64(1) << 63}), 1, "decode"},
		// Found by FuzzCheck: an array32 header where an integer goes made
		// the decoder allocate 0xdddddddd elements up front.
		{"array header as seq", []byte("\x84\xa1v\x01\xa1k\x02\xa1q\xdd\xdd\xdd\xdd\xdd\x1b\xa1s\xff"), 1, "decode"},
		{"map header as service", []byte{0x84, 0xa1, 'v', 0x01, 0xa1, 'k', 0x02, 0xa1, 'q', 0x01, 0xa1, 's', 0xdf, 0xff, 0xff, 0xff, 0xff}, 1, "decode"},
		{"duplicate key", []byte{0x84, 0xa1, 'v', 0x01, 0xa1, 'k', 0x02, 0xa1, 'q', 0x01, 0xa1, 'q', 0x02}, 1, "decode"},
		{"duplicate version", []byte{0x83, 0xa1, 'v', 0x02, 0xa1, 'k', 0x01, 0xa1, 'v', 0x02}, 0, "decode"},
		{"integer key", []byte{0x83, 0xa1, 'v', 0x02, 0xa1, 'k', 0x01, 0x01, 0x01}, 0, "decode"},
		{"two-letter key", []byte{0x83, 0xa1, 'v', 0x02, 0xa1, 'k', 0x01, 0xa2, 'v', 'k', 0x01}, 0, "decode"},
		{"empty key", []byte{0x83, 0xa1, 'v', 0x02, 0xa1, 'k', 0x01, 0xa0, 0x01}, 0, "decode"},
		{"a second map after the message", append(mustEncode(t, &Message{Kind: KindHello}), 0x80), 0, "decode"},
		{"map length beyond data", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01}, 1, "decode"},
		{"huge string header", []byte{0x83, 0xa1, 'v', 0x01, 0xa1, 'k', 0x02, 0xa1, 'e', 0xdb, 0xff, 0xff, 0xff, 0xff}, 1, "decode"},
		{"version 1", raw(t, map[string]any{"v": 1, "k": 2, "q": 1}), 1, "version"},
		{"unknown kind", raw(t, map[string]any{"v": Version, "k": 99}), 0, "kind"},
		{"reply kind from listener", mustEncode(t, &Message{Kind: KindExited, Seq: 1}), 0, "direction"},
		{"run with reason", raw(t, map[string]any{"v": Version, "k": 2, "q": 1, "e": "x"}), 1, "fields"},
		{"run with access", raw(t, map[string]any{"v": Version, "k": 2, "q": 1, "w": "0.0.0.0/0"}), 1, "fields"},
		{"access not a string", raw(t, map[string]any{"v": Version, "k": 17, "w": 5}), 0, "decode"},
		{"rate unit over 31 bits", raw(t, map[string]any{"v": Version, "k": 17, "y": int64(1) << 31}), 0, "decode"},
		{"hello with seq", raw(t, map[string]any{"v": Version, "k": 1, "q": 5}), 0, "fields"},
		{"run without fd", run, 0, "fds"},
		{"run with two fds", run, 2, "fds"},
		{"run with ten fds", run, 10, "fds"},
		{"hello with fd", mustEncode(t, &Message{Kind: KindHello}), 1, "fds"},
		{"seq 0", mustEncode(t, &Message{Kind: KindRun}), 1, "seq"},
		{"oversized", make([]byte, MaxMessage+1), 1, "size"},
		{"facility 24", raw(t, map[string]any{"v": 1, "k": 16, "F": 24}), 0, "decode"},
	}
}

func TestCheckRefuses(t *testing.T) {
	for _, tc := range hostile(t) {
		_, err := Check(tc.b, false, false, tc.fds, FromListener)
		v, ok := err.(*Violation)
		if !ok {
			t.Errorf("%s: got %v, want a violation", tc.name, err)
			continue
		}
		if v.Check != tc.check {
			t.Errorf("%s: failed check %q (%v), want %q", tc.name, v.Check, v, tc.check)
		}
	}
	if _, err := Check(mustEncode(t, &Message{Kind: KindHello}), true, false, 0, FromListener); err == nil {
		t.Error("MSG_TRUNC accepted")
	}
	if _, err := Check(mustEncode(t, &Message{Kind: KindHello}), false, true, 0, FromListener); err == nil {
		t.Error("MSG_CTRUNC accepted")
	}
}

func TestSendReceiveFd(t *testing.T) {
	c, peer := pair(t)
	l := NewConn(peer)
	client := streamSocket(t)
	defer unix.Close(client)
	if err := l.Send(&Message{Kind: KindRun, Seq: 42, Service: 3}, client); err != nil {
		t.Fatal(err)
	}
	m, fd, err := c.Receive(FromListener)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if m.Seq != 42 || m.Service != 3 || fd < 0 {
		t.Fatalf("got %+v fd %d", m, fd)
	}
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Error("received fd is not close-on-exec")
	}
}

// sendRaw sends what no honest listener would: arbitrary bytes with
// arbitrary descriptors.
func sendRaw(t *testing.T, fd int, b []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, b, oob, nil, 0); err != nil {
		t.Fatal(err)
	}
}

// TestReceiveHostile: what breaks the protocol is a violation, and every
// descriptor that came with it is closed. (What the descriptor is, the
// executor checks: executor/tie.go.)
func TestReceiveHostile(t *testing.T) {
	run := mustEncode(t, &Message{Kind: KindRun, Seq: 1})
	s := streamSocket(t)
	defer unix.Close(s)
	many := make([]int, 10)
	for i := range many {
		many[i] = s
	}
	cases := []struct {
		name string
		b    []byte
		fds  []int
		want string
	}{
		{"no fd", run, nil, "with 0 descriptors"},
		{"two fds", run, []int{s, s}, "with 2 descriptors"},
		{"ten fds", run, many, "MSG_CTRUNC"},
		{"garbage with fd", []byte("garbage"), []int{s}, "not a msgpack map"},
		{"oversized with fd", make([]byte, 4*MaxMessage), []int{s}, "over"},
	}
	for _, tc := range cases {
		c, peer := pair(t)
		before := openFds(t)
		sendRaw(t, peer, tc.b, tc.fds...)
		_, fd, err := c.Receive(FromListener)
		if err == nil || !errors.As(err, new(*Violation)) || fd != -1 {
			t.Errorf("%s: got fd %d err %v, want a violation", tc.name, fd, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q does not say %q", tc.name, err, tc.want)
		}
		if after := openFds(t); after != before {
			t.Errorf("%s: %d fds open before, %d after: received fds leaked", tc.name, before, after)
		}
	}
}

func TestReceiveEOF(t *testing.T) {
	c, peer := pair(t)
	unix.Close(peer)
	if _, _, err := c.Receive(FromListener); err != io.EOF {
		t.Fatalf("got %v, want EOF", err)
	}
}

func FuzzCheck(f *testing.F) {
	for _, m := range valid {
		for _, trunc := range []bool{false, true} {
			f.Add(mustEncode(f, m), 0, trunc, false)
			f.Add(mustEncode(f, m), 1, false, trunc)
		}
	}
	for _, tc := range hostile(f) {
		f.Add(tc.b, tc.fds, false, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, nfds int, trunc, ctrunc bool) {
		for _, from := range []Direction{FromListener, FromExecutor} {
			m, err := Check(b, trunc, ctrunc, nfds, from)
			if err == nil && (trunc || ctrunc) {
				t.Fatalf("accepted %+v with MSG_TRUNC %v MSG_CTRUNC %v", m, trunc, ctrunc)
			}
			if err != nil {
				if !errors.As(err, new(*Violation)) {
					t.Fatalf("non-violation error %v", err)
				}
				continue
			}
			r := rules[m.Kind]
			if r.from != from || r.fds != nfds || m.Version != Version {
				t.Fatalf("accepted %+v with %d fds from %d", m, nfds, from)
			}
			for _, w := range wire[2:] {
				if !strings.Contains(allowed[m.Kind], w.key) && !fieldByKey(t, m, w.key).IsZero() {
					t.Fatalf("accepted %+v, whose field %q its kind may not carry", m, w.key)
				}
			}
			again, err := Check(mustEncode(t, m), false, false, nfds, from)
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Fatalf("re-encoding %+v: %+v, %v", m, again, err)
			}
		}
	})
}

// TestShutdownEndsSendAndReceive: a Send blocked on a peer that does not
// read, and a Receive, both return after Shutdown, so that the Conn's
// goroutines can be stopped before Close.
func TestShutdownEndsSendAndReceive(t *testing.T) {
	c, _ := pair(t)
	sent := make(chan error, 1)
	go func() {
		for {
			if err := c.Send(&Message{Kind: KindRefused, Seq: 1, Reason: strings.Repeat("x", 500)}, -1); err != nil {
				sent <- err
				return
			}
		}
	}()
	received := make(chan error, 1)
	go func() {
		_, _, err := c.Receive(FromListener)
		received <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the sender fill the peer's queue
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []chan error{sent, received} {
		select {
		case err := <-ch:
			if err == nil || (i == 1 && err != io.EOF) {
				t.Errorf("got %v after Shutdown", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not end a blocked Send or Receive")
		}
	}
}

// TestRightsClosesOnError: on each of rights' error paths (a control
// message that is not SCM_RIGHTS, before or after one that is, and one it
// cannot parse after one it can) every descriptor in the control data is
// closed, and none is returned; without an error every one is returned.
func TestRightsClosesOnError(t *testing.T) {
	s := streamSocket(t)
	defer unix.Close(s)
	dups := func(n int) []int {
		fds := make([]int, n)
		for i := range fds {
			fd, err := unix.Dup(s)
			if err != nil {
				t.Fatal(err)
			}
			fds[i] = fd
		}
		return fds
	}
	other := func() []byte { return unix.UnixCredentials(&unix.Ucred{Pid: 1}) }
	malformed := func() []byte { // a header longer than the data
		b := unix.UnixRights(0)
		(*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(1 << 10)
		return b
	}
	for _, tc := range []struct {
		name string
		oob  func(fds []int) []byte
	}{
		{"not SCM_RIGHTS after", func(fds []int) []byte { return append(unix.UnixRights(fds...), other()...) }},
		{"not SCM_RIGHTS before", func(fds []int) []byte { return append(other(), unix.UnixRights(fds...)...) }},
		{"unparsable after", func(fds []int) []byte { return append(unix.UnixRights(fds...), malformed()...) }},
		{"two messages, then unparsable", func(fds []int) []byte {
			return append(append(unix.UnixRights(fds[:1]...), unix.UnixRights(fds[1:]...)...), malformed()...)
		}},
	} {
		before := openFds(t)
		got, err := rights(tc.oob(dups(3)))
		if !errors.As(err, new(*Violation)) || got != nil {
			t.Errorf("%s: got %v, %v; want no fds and a violation", tc.name, got, err)
		}
		if after := openFds(t); after != before {
			t.Errorf("%s: %d fds open before, %d after: received fds leaked", tc.name, before, after)
		}
	}
	fds := dups(3)
	got, err := rights(append(unix.UnixRights(fds[:2]...), unix.UnixRights(fds[2:]...)...))
	if err != nil || !reflect.DeepEqual(got, fds) {
		t.Errorf("two SCM_RIGHTS messages: got %v, %v; want %v", got, err, fds)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// wire is every key of the wire form with its type ('i' integer, 's'
// string, 'b' bool) and, for an integer, the largest value Decode takes
// (the smallest is 0). It is written out here, apart from the code, so
// that the decoder is held to it.
var wire = []struct {
	key string
	typ byte
	max uint64
}{
	{"v", 'i', 255}, {"k", 'i', 255}, {"q", 'i', 1<<63 - 1}, {"s", 'i', 1<<32 - 1},
	{"n", 'i', 1<<32 - 1}, {"m", 'i', 1<<32 - 1}, {"I", 's', 0}, {"F", 'i', 23},
	{"V", 'b', 0}, {"L", 's', 0}, {"H", 's', 0}, {"P", 'b', 0}, {"G", 'i', 1<<32 - 1},
	{"U", 'i', 1<<31 - 1}, {"T", 'i', 1<<31 - 1}, {"a", 's', 0}, {"c", 's', 0},
	{"l", 'i', 1<<32 - 1}, {"f", 'i', 1<<31 - 1}, {"d", 'i', 1<<32 - 1},
	{"r", 'i', 1<<32 - 1}, {"w", 's', 0}, {"i", 'i', 1<<31 - 1}, {"o", 'i', 1<<31 - 1},
	{"y", 'i', 1<<31 - 1}, {"p", 'i', 1<<31 - 1}, {"x", 'i', 255}, {"g", 'i', 127},
	{"t", 'b', 0}, {"u", 'i', 1<<63 - 1}, {"e", 's', 0},
}

// fieldByKey returns the field of m whose msgpack key is key.
func fieldByKey(t *testing.T, m *Message, key string) reflect.Value {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if k, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("msgpack"), ","); k == key {
			return v.Field(i)
		}
	}
	t.Fatalf("no field has key %q", key)
	return reflect.Value{}
}

// TestDecodeFields: every key takes a value of its type within its range,
// in any of msgpack's integer encodings, and nothing else: not another
// type, not a value outside the range, not a container (whose header
// would be allocated), and the refusal names the key.
func TestDecodeFields(t *testing.T) {
	if n := reflect.TypeOf(Message{}).NumField(); n != len(wire) {
		t.Fatalf("Message has %d fields, the test knows %d", n, len(wire))
	}
	one := func(key string, value []byte) []byte {
		return append(append([]byte{0x81}, raw(t, key)...), value...)
	}
	for _, w := range wire {
		var good, bad [][]byte
		switch w.typ {
		case 'i':
			good = [][]byte{{0x00}, {0x01}, {0xcc, 0x01}, {0xd0, 0x01}, {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x01}, raw(t, w.max)}
			bad = [][]byte{{0xff}, {0xd0, 0xff}, {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
				{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, raw(t, w.max+1), {0xc0}, {0xc3},
				raw(t, "1"), raw(t, 1.0), raw(t, float32(1)), {0x91, 0x01}, {0x81, 0xa1, 'v', 0x01},
				{0xdd, 0xff, 0xff, 0xff, 0xff}, {0xdf, 0xff, 0xff, 0xff, 0xff}, {0xc4, 0x01, 0x01}, {0xd4, 0x01, 0x01}}
		case 's':
			good = [][]byte{raw(t, "x"), raw(t, strings.Repeat("y", 300))}
			bad = [][]byte{{0x01}, {0xc3}, {0x91, 0xa1, 'x'}, {0xdb, 0xff, 0xff, 0xff, 0xff}, raw(t, 1.5)}
		case 'b':
			good = [][]byte{{0xc3}, {0xc2}}
			bad = [][]byte{{0x01}, {0x00}, raw(t, "true"), {0x91, 0xc3}}
		}
		for _, b := range good {
			m, err := Decode(one(w.key, b))
			if err != nil {
				t.Errorf("key %q, value % x: %v", w.key, b, err)
				continue
			}
			var want any
			if err := msgpack.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if got := fieldByKey(t, m, w.key); fmt.Sprint(got.Interface()) != fmt.Sprint(want) {
				t.Errorf("key %q, value % x: decoded %v, want %v", w.key, b, got, want)
			}
		}
		for _, b := range bad {
			_, err := Decode(one(w.key, b))
			v, ok := err.(*Violation)
			if !ok || v.Check != "decode" || !strings.Contains(v.Detail, fmt.Sprintf("%q", w.key)) {
				t.Errorf("key %q, value % x: got %v, want a decode violation naming the key", w.key, b, err)
			}
		}
	}
}

// allowed is the fields each kind may carry besides v and k, written out
// here apart from the code's table.
var allowed = map[Kind]string{
	KindHello:   "",
	KindRun:     "qs",
	KindWelcome: "nmIFVLHPpGUT",
	KindService: "saclfdrwioy",
	KindExited:  "qspxgtu",
	KindRefused: "qse",
}

// TestCheckFieldsByKind: each kind takes each of its own fields and
// refuses, as a fields violation, every field of another kind.
func TestCheckFieldsByKind(t *testing.T) {
	for kind, keys := range allowed {
		from, fds := FromExecutor, 0
		if kind < 16 {
			from = FromListener
		}
		if kind == KindRun {
			fds = 1
		}
		for _, w := range wire[2:] {
			m := map[string]any{"v": Version, "k": kind}
			if kind == KindRun {
				m["q"] = 1
			}
			if kind == KindWelcome && (w.key == "P" || w.key == "p") {
				m["P"], m["p"] = true, 1
			}
			m[w.key] = map[byte]any{'i': 1, 's': "x", 'b': true}[w.typ]
			_, err := Check(raw(t, m), false, false, fds, from)
			if strings.Contains(keys, w.key) {
				if err != nil {
					t.Errorf("%s with %q: %v", KindName(kind), w.key, err)
				}
				continue
			}
			if v, ok := err.(*Violation); !ok || v.Check != "fields" {
				t.Errorf("%s with %q: got %v, want a fields violation", KindName(kind), w.key, err)
			}
		}
	}
	for _, m := range []map[string]any{
		{"v": Version, "k": KindWelcome, "P": true},
		{"v": Version, "k": KindWelcome, "p": 5},
		{"v": Version, "k": KindWelcome, "P": false, "p": 5},
	} {
		if _, err := Check(raw(t, m), false, false, 0, FromExecutor); err == nil || err.(*Violation).Check != "fields" {
			t.Errorf("%v: got %v, want a fields violation", m, err)
		}
	}
}

// TestTableRefusesBadTags: a struct whose tags Decode could not hold to
// stops the program at start-up instead of loosening the decoder.
func TestTableRefusesBadTags(t *testing.T) {
	for _, v := range []any{
		struct {
			A int `msgpack:"ab"`
		}{},
		struct {
			A int `msgpack:""`
		}{},
		struct {
			A int `msgpack:"a"`
			B int `msgpack:"a,omitempty"`
		}{},
		struct {
			A int `msgpack:"a" max:"ten"`
		}{},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%T: no panic", v)
				}
			}()
			table(reflect.TypeOf(v))
		}()
	}
	keys, maxima := table(reflect.TypeFor[struct {
		A uint16 `msgpack:"a"`
		B int8   `msgpack:"b"`
		C uint32 `msgpack:"c" max:"7"`
		D string `msgpack:"d"`
	}]())
	if keys != "abcd" || !reflect.DeepEqual(maxima, []uint64{65535, 127, 7, 0}) {
		t.Errorf("got %q %v", keys, maxima)
	}
}
