package ipc

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Version is the protocol version both sides must speak.
const Version = 2

// MaxMessage is the largest datagram either side sends or accepts: room
// for a Service message with a long client_access list.
const MaxMessage = 8192

// Kind says what a message is. Listener requests are below 16, executor
// replies 16 and up, so the direction check is one comparison.
type Kind uint8

// The message kinds; see the package documentation for their fields.
const (
	KindHello   Kind = 1  // listener -> executor, once, first
	KindRun     Kind = 2  // listener -> executor, with exactly one client fd
	KindWelcome Kind = 16 // executor -> listener, answers Hello
	KindService Kind = 17 // executor -> listener, one per service after Welcome
	KindExited  Kind = 18 // executor -> listener, a command ended
	KindRefused Kind = 19 // executor -> listener, a command could not start
)

// Direction names who sent a message.
type Direction int

// The two directions.
const (
	FromListener Direction = iota
	FromExecutor
)

// Message is every message's wire form, encoded as a msgpack map with short
// keys, one letter each. Fields hold scalars only; an integer field takes
// 0 to its max tag, or to its type's largest value without one. Which
// fields a kind may carry is fixed by the table in rules, and any other
// field set is a violation.
type Message struct {
	Version uint8  `msgpack:"v"`
	Kind    Kind   `msgpack:"k"`
	Seq     uint64 `msgpack:"q,omitempty" max:"9223372036854775807"` // Run, Exited, Refused: request id (0: from an earlier listener)
	Service uint32 `msgpack:"s,omitempty"`                           // Run, Service, Exited, Refused: index into the policy's services

	Services uint32 `msgpack:"n,omitempty"` // Welcome: number of Service messages that follow
	Cap      uint32 `msgpack:"m,omitempty"` // Welcome: executor's hard cap on running commands

	// The listener's settings, in Welcome; Postfix mode's with Postfix.
	Ident      string `msgpack:"I,omitempty"`                  // syslog ident of its log lines
	Facility   uint8  `msgpack:"F,omitempty" max:"23"`         // syslog facility number
	Verbose    bool   `msgpack:"V,omitempty"`                  // one log line per connection
	LogKind    string `msgpack:"L,omitempty"`                  // the kind of its log descriptor: syslog, stream, file or postlog
	Host       string `msgpack:"H,omitempty"`                  // the host name of file and postlog records; "": the system's
	Postfix    bool   `msgpack:"P,omitempty"`                  // Postfix mode: master(8)'s status channel at StatusFd
	Generation uint32 `msgpack:"G,omitempty"`                  // master(8)'s GENERATION
	MaxUse     uint32 `msgpack:"U,omitempty" max:"2147483647"` // max_use; 0: never
	MaxIdle    uint32 `msgpack:"T,omitempty" max:"2147483647"` // max_idle in seconds; 0: never

	Name    string `msgpack:"a,omitempty"`                  // Service: service name
	Command string `msgpack:"c,omitempty"`                  // Service: argv[0], for log lines
	Limit   uint32 `msgpack:"l,omitempty"`                  // Service: process limit, 0 = only the hard cap
	Fd      int32  `msgpack:"f,omitempty"`                  // Service: first listening fd in the listener
	NFd     uint32 `msgpack:"d,omitempty"`                  // Service: number of listening fds
	Running uint32 `msgpack:"r,omitempty"`                  // Service: commands already running for it
	Access  string `msgpack:"w,omitempty"`                  // Service: client_access, canonical form
	PerHost uint32 `msgpack:"i,omitempty" max:"2147483647"` // Service: client_connection_limit
	Rate    uint32 `msgpack:"o,omitempty" max:"2147483647"` // Service: client_connection_rate_limit
	RateSec uint32 `msgpack:"y,omitempty" max:"2147483647"` // Service: client_rate_time_unit, seconds

	Pid     int32  `msgpack:"p,omitempty"`           // Exited: the command's pid; Welcome: the pid master(8) forked
	Code    int32  `msgpack:"x,omitempty" max:"255"` // Exited: exit status when it exited
	Signal  int32  `msgpack:"g,omitempty" max:"127"` // Exited: signal when it was killed
	Timeout bool   `msgpack:"t,omitempty"`           // Exited: the time limit fired
	Micros  int64  `msgpack:"u,omitempty"`           // Exited: run time in microseconds
	Reason  string `msgpack:"e,omitempty"`           // Refused: why
}

// keys holds Message's keys in field order, and maxima the largest value
// of each integer field, from its max tag or its type. Decode and Check
// read them; they are made once, from Message's tags.
var keys, maxima = table(reflect.TypeFor[Message]())

// table reads keys and maxima from t's tags. It panics on a tag Decode
// could not hold to: a key that is not one new letter, one field too many
// for Decode's 64 bits of seen keys, a max that is not a number.
func table(t reflect.Type) (keys string, maxima []uint64) {
	for f := range t.Fields() {
		key, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		max := uint64(0) // a string or a bool
		if k := f.Type.Kind(); k != reflect.String && k != reflect.Bool {
			max = math.MaxUint64 >> (64 - f.Type.Bits())
			if k >= reflect.Int && k <= reflect.Int64 {
				max >>= 1
			}
		}
		var err error
		if tag := f.Tag.Get("max"); tag != "" {
			max, err = strconv.ParseUint(tag, 10, 64)
		}
		if len(key) != 1 || strings.Contains(keys, key) || len(keys) == 64 || err != nil {
			panic(fmt.Sprintf("ipc: Message.%s: tags %s", f.Name, f.Tag))
		}
		keys, maxima = keys+key, append(maxima, max)
	}
	return keys, maxima
}

// rule is one row of the request table.
type rule struct {
	name    string
	from    Direction
	fds     int    // exact number of descriptors the message carries
	allowed string // keys of the fields it may set
}

var rules = map[Kind]rule{
	KindHello:   {"hello", FromListener, 0, "vk"},
	KindRun:     {"run request", FromListener, 1, "vkqs"},
	KindWelcome: {"welcome", FromExecutor, 0, "vknmIFVLHPpGUT"},
	KindService: {"service", FromExecutor, 0, "vksaclfdrwioy"},
	KindExited:  {"exited", FromExecutor, 0, "vkqspxgtu"},
	KindRefused: {"refused", FromExecutor, 0, "vkqse"},
}

// KindName returns a human name for k, for messages.
//
//tcb:request-path
func KindName(k Kind) string {
	if r, ok := rules[k]; ok {
		return r.name
	}
	return fmt.Sprintf("kind %d", k)
}

// Violation is a message that breaks the protocol. Check says which check
// failed; the text reads "listener protocol violation: ...".
type Violation struct {
	Check  string
	Detail string
}

//tcb:request-path
func (v *Violation) Error() string {
	return "protocol violation: " + v.Detail
}

//tcb:request-path
func violation(check, format string, a ...any) *Violation {
	return &Violation{Check: check, Detail: fmt.Sprintf(format, a...)}
}

// Encode returns m's wire form. It sets the version.
//
//tcb:request-path
func Encode(m *Message) ([]byte, error) {
	m.Version = Version
	b, err := msgpack.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", KindName(m.Kind), err)
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("encode %s: %d bytes, limit %d", KindName(m.Kind), len(b), MaxMessage)
	}
	return b, nil
}

// Decode parses exactly one message from b: a msgpack map whose keys are
// known and unique and whose values have the field's type and fit its
// range, with nothing after it. It goes through keys and maxima rather
// than msgpack's reflection, which silently truncates integers that do not
// fit. It checks no protocol rule.
//
//tcb:request-path
func Decode(b []byte) (*Message, error) {
	if len(b) == 0 || !(b[0]&0xf0 == 0x80 || b[0] == 0xde || b[0] == 0xdf) {
		return nil, violation("decode", "message is not a msgpack map")
	}
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	n, err := d.DecodeMapLen()
	m, seen, key := Message{}, uint64(0), ""
	for ; err == nil && n > 0; n-- {
		if key, err = d.DecodeString(); err == nil {
			err = field(d, &m, key, &seen)
		}
	}
	if err != nil {
		return nil, violation("decode", "undecodable message: key %q: %v", key, err)
	}
	if r.Len() != 0 {
		return nil, violation("decode", "%d bytes after the message", r.Len())
	}
	return &m, nil
}

// field decodes key's value into m: key must be one of keys and not in
// seen (bit i for keys[i]), to which it is added, and the value of its
// field's type, an integer from 0 to its field's maximum. It looks at an
// integer's type code first and decodes nothing but an integer: a
// container's length header would otherwise be allocated up front.
//
//tcb:request-path
func field(d *msgpack.Decoder, m *Message, key string, seen *uint64) error {
	i := strings.Index(keys, key)
	if len(key) != 1 || i < 0 {
		return fmt.Errorf("unknown key")
	} else if *seen&(1<<i) != 0 {
		return fmt.Errorf("duplicate key")
	}
	*seen |= 1 << i
	f := reflect.ValueOf(m).Elem().Field(i)
	c, _ := d.PeekCode() // at the end, 0, and DecodeUint64 says so
	if f.Kind() == reflect.String || f.Kind() == reflect.Bool {
		return d.DecodeValue(f)
	} else if !msgpcode.IsFixedNum(c) && (c < msgpcode.Uint8 || c > msgpcode.Int64) {
		return fmt.Errorf("type code %#x, want an integer", c)
	}
	u, err := d.DecodeUint64() // a signed code's (Int8 and up) in two's complement
	if c >= msgpcode.Int8 && int64(u) < 0 {
		return fmt.Errorf("negative value %d", int64(u))
	}
	if err == nil && u > maxima[i] {
		err = fmt.Errorf("value %d out of range", u)
	}
	f.Set(reflect.ValueOf(u).Convert(f.Type()))
	return err
}

// Check applies the protocol's checks, in order, to one received datagram:
// b its bytes, trunc and ctrunc the kernel's MSG_TRUNC and MSG_CTRUNC
// flags, nfds the descriptors that came with it, from the sender's side.
// It is pure, so the fuzzer can call it; the caller closes the fds when it
// returns an error.
//
//tcb:request-path
func Check(b []byte, trunc, ctrunc bool, nfds int, from Direction) (*Message, error) {
	if trunc || len(b) > MaxMessage {
		return nil, violation("size", "message over %d bytes", MaxMessage)
	}
	if ctrunc {
		return nil, violation("ctrunc", "descriptors truncated (MSG_CTRUNC)")
	}
	m, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if m.Version != Version {
		return nil, violation("version", "version %d, want %d", m.Version, Version)
	}
	r, ok := rules[m.Kind]
	if !ok {
		return nil, violation("kind", "unknown kind %d", m.Kind)
	}
	if r.from != from {
		return nil, violation("direction", "%s sent in the wrong direction", r.name)
	}
	for i, k := range keys {
		if !strings.ContainsRune(r.allowed, k) && !reflect.ValueOf(m).Elem().Field(i).IsZero() {
			return nil, violation("fields", "%s with fields it may not carry (%c)", r.name, k)
		}
	}
	if nfds != r.fds {
		return nil, violation("fds", "%s with %d descriptors, want %d", r.name, nfds, r.fds)
	}
	if m.Kind == KindRun && m.Seq == 0 {
		return nil, violation("seq", "run request with sequence number 0")
	}
	if m.Kind == KindWelcome && m.Postfix != (m.Pid > 0) {
		return nil, violation("fields", "welcome with Postfix mode %v and master pid %d", m.Postfix, m.Pid)
	}
	return m, nil
}
