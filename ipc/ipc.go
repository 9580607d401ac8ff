package ipc

import (
	"bytes"
	"fmt"
	"math"

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
// keys. Fields hold scalars only; which fields a kind may carry is fixed by
// the table in rules, and any other field set is a violation.
type Message struct {
	Version uint8  `msgpack:"v"`
	Kind    Kind   `msgpack:"k"`
	Seq     uint64 `msgpack:"q,omitempty"` // Run, Exited, Refused: request id (0: from an earlier listener)
	Service uint32 `msgpack:"s,omitempty"` // Run, Service, Exited, Refused: index into the policy's services

	Services uint32 `msgpack:"n,omitempty"` // Welcome: number of Service messages that follow
	Cap      uint32 `msgpack:"m,omitempty"` // Welcome: executor's hard cap on running commands

	// The listener's settings, in Welcome; Postfix mode's with Postfix.
	Ident      string `msgpack:"I,omitempty"` // syslog ident of its log lines
	Facility   uint8  `msgpack:"F,omitempty"` // syslog facility number, 0 to 23
	Verbose    bool   `msgpack:"V,omitempty"` // one log line per connection
	LogKind    string `msgpack:"L,omitempty"` // the kind of its log descriptor: syslog, stream, file or postlog
	Host       string `msgpack:"H,omitempty"` // the host name of file and postlog records; "": the system's
	Postfix    bool   `msgpack:"P,omitempty"` // Postfix mode: master(8)'s status channel at StatusFd
	Generation uint32 `msgpack:"G,omitempty"` // master(8)'s GENERATION
	MaxUse     uint32 `msgpack:"U,omitempty"` // max_use; 0: never
	MaxIdle    uint32 `msgpack:"T,omitempty"` // max_idle in seconds; 0: never

	Name    string `msgpack:"a,omitempty"` // Service: service name
	Command string `msgpack:"c,omitempty"` // Service: argv[0], for log lines
	Limit   uint32 `msgpack:"l,omitempty"` // Service: process limit, 0 = only the hard cap
	Fd      int32  `msgpack:"f,omitempty"` // Service: first listening fd in the listener
	NFd     uint32 `msgpack:"d,omitempty"` // Service: number of listening fds
	Running uint32 `msgpack:"r,omitempty"` // Service: commands already running for it
	Access  string `msgpack:"w,omitempty"` // Service: client_access, canonical form
	PerHost uint32 `msgpack:"i,omitempty"` // Service: client_connection_limit
	Rate    uint32 `msgpack:"o,omitempty"` // Service: client_connection_rate_limit
	RateSec uint32 `msgpack:"y,omitempty"` // Service: client_rate_time_unit, seconds

	Pid     int32  `msgpack:"p,omitempty"` // Exited: the command's pid; Welcome: the pid master(8) forked
	Code    int32  `msgpack:"x,omitempty"` // Exited: exit status when it exited
	Signal  int32  `msgpack:"g,omitempty"` // Exited: signal when it was killed
	Timeout bool   `msgpack:"t,omitempty"` // Exited: the time limit fired
	Micros  int64  `msgpack:"u,omitempty"` // Exited: run time in microseconds
	Reason  string `msgpack:"e,omitempty"` // Refused: why
}

// field bits, for the allowed-fields table.
const (
	fSeq uint32 = 1 << iota
	fService
	fServices
	fCap
	fName
	fCommand
	fLimit
	fFd
	fNFd
	fRunning
	fPid
	fCode
	fSignal
	fTimeout
	fMicros
	fReason
	fAccess
	fPerHost
	fRate
	fRateSec
	fIdent
	fFacility
	fVerbose
	fPostfix
	fGeneration
	fMaxUse
	fMaxIdle
	fLogKind
	fHost
)

// rule is one row of the request table.
type rule struct {
	name    string
	from    Direction
	fds     int    // exact number of descriptors the message carries
	allowed uint32 // fields it may set
}

var rules = map[Kind]rule{
	KindHello:   {"hello", FromListener, 0, 0},
	KindRun:     {"run request", FromListener, 1, fSeq | fService},
	KindWelcome: {"welcome", FromExecutor, 0, fServices | fCap | fIdent | fFacility | fVerbose | fLogKind | fHost | fPostfix | fPid | fGeneration | fMaxUse | fMaxIdle},
	KindService: {"service", FromExecutor, 0, fService | fName | fCommand | fLimit | fFd | fNFd | fRunning | fAccess | fPerHost | fRate | fRateSec},
	KindExited:  {"exited", FromExecutor, 0, fSeq | fService | fPid | fCode | fSignal | fTimeout | fMicros},
	KindRefused: {"refused", FromExecutor, 0, fSeq | fService | fReason},
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

//tcb:request-path
func (m *Message) fields() uint32 {
	var f uint32
	set := func(bit uint32, nonzero bool) {
		if nonzero {
			f |= bit
		}
	}
	set(fSeq, m.Seq != 0)
	set(fService, m.Service != 0)
	set(fServices, m.Services != 0)
	set(fCap, m.Cap != 0)
	set(fName, m.Name != "")
	set(fCommand, m.Command != "")
	set(fLimit, m.Limit != 0)
	set(fFd, m.Fd != 0)
	set(fNFd, m.NFd != 0)
	set(fRunning, m.Running != 0)
	set(fPid, m.Pid != 0)
	set(fCode, m.Code != 0)
	set(fSignal, m.Signal != 0)
	set(fTimeout, m.Timeout)
	set(fMicros, m.Micros != 0)
	set(fReason, m.Reason != "")
	set(fAccess, m.Access != "")
	set(fPerHost, m.PerHost != 0)
	set(fRate, m.Rate != 0)
	set(fRateSec, m.RateSec != 0)
	set(fIdent, m.Ident != "")
	set(fFacility, m.Facility != 0)
	set(fVerbose, m.Verbose)
	set(fPostfix, m.Postfix)
	set(fGeneration, m.Generation != 0)
	set(fMaxUse, m.MaxUse != 0)
	set(fMaxIdle, m.MaxIdle != 0)
	set(fLogKind, m.LogKind != "")
	set(fHost, m.Host != "")
	return f
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
// range, with nothing after it. It is written out by hand rather than left
// to reflection, which silently truncates integers that do not fit. It
// checks no protocol rule.
//
//tcb:request-path
func Decode(b []byte) (*Message, error) {
	if len(b) == 0 || !(b[0]&0xf0 == 0x80 || b[0] == 0xde || b[0] == 0xdf) {
		return nil, violation("decode", "message is not a msgpack map")
	}
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, violation("decode", "undecodable message: %v", err)
	}
	var m Message
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		key, err := d.DecodeString()
		if err == nil && seen[key] {
			err = fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if err == nil {
			err = m.decodeField(d, key)
		}
		if err != nil {
			return nil, violation("decode", "undecodable message: %v", err)
		}
	}
	if r.Len() != 0 {
		return nil, violation("decode", "%d bytes after the message", r.Len())
	}
	return &m, nil
}

//tcb:request-path
func (m *Message) decodeField(d *msgpack.Decoder, key string) (err error) {
	switch key {
	case "v":
		m.Version, err = integer[uint8](d, 0, math.MaxUint8)
	case "k":
		var k uint8
		k, err = integer[uint8](d, 0, math.MaxUint8)
		m.Kind = Kind(k)
	case "q":
		m.Seq, err = integer[uint64](d, 0, math.MaxInt64)
	case "s":
		m.Service, err = integer[uint32](d, 0, math.MaxUint32)
	case "n":
		m.Services, err = integer[uint32](d, 0, math.MaxUint32)
	case "m":
		m.Cap, err = integer[uint32](d, 0, math.MaxUint32)
	case "l":
		m.Limit, err = integer[uint32](d, 0, math.MaxUint32)
	case "f":
		m.Fd, err = integer[int32](d, 0, math.MaxInt32)
	case "d":
		m.NFd, err = integer[uint32](d, 0, math.MaxUint32)
	case "r":
		m.Running, err = integer[uint32](d, 0, math.MaxUint32)
	case "i":
		m.PerHost, err = integer[uint32](d, 0, math.MaxInt32)
	case "o":
		m.Rate, err = integer[uint32](d, 0, math.MaxInt32)
	case "y":
		m.RateSec, err = integer[uint32](d, 0, math.MaxInt32)
	case "w":
		m.Access, err = d.DecodeString()
	case "p":
		m.Pid, err = integer[int32](d, 0, math.MaxInt32)
	case "x":
		m.Code, err = integer[int32](d, 0, 255)
	case "g":
		m.Signal, err = integer[int32](d, 0, 127)
	case "u":
		m.Micros, err = integer[int64](d, 0, math.MaxInt64)
	case "t":
		m.Timeout, err = d.DecodeBool()
	case "a":
		m.Name, err = d.DecodeString()
	case "c":
		m.Command, err = d.DecodeString()
	case "e":
		m.Reason, err = d.DecodeString()
	case "I":
		m.Ident, err = d.DecodeString()
	case "F":
		m.Facility, err = integer[uint8](d, 0, 23)
	case "V":
		m.Verbose, err = d.DecodeBool()
	case "L":
		m.LogKind, err = d.DecodeString()
	case "H":
		m.Host, err = d.DecodeString()
	case "P":
		m.Postfix, err = d.DecodeBool()
	case "G":
		m.Generation, err = integer[uint32](d, 0, math.MaxUint32)
	case "U":
		m.MaxUse, err = integer[uint32](d, 0, math.MaxInt32)
	case "T":
		m.MaxIdle, err = integer[uint32](d, 0, math.MaxInt32)
	default:
		err = fmt.Errorf("unknown key %q", key)
	}
	if err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	return nil
}

// integer decodes a msgpack integer and refuses one outside [lo, hi]. It
// looks at the type code first and decodes nothing but an integer: a
// container's length header would otherwise be allocated up front.
//
//tcb:request-path
func integer[T uint8 | uint32 | uint64 | int32 | int64](d *msgpack.Decoder, lo, hi uint64) (T, error) {
	c, err := d.PeekCode()
	if err != nil {
		return 0, err
	}
	var u uint64
	switch {
	case c <= msgpcode.PosFixedNumHigh || (c >= msgpcode.Uint8 && c <= msgpcode.Uint64):
		u, err = d.DecodeUint64()
	case c >= msgpcode.NegFixedNumLow || (c >= msgpcode.Int8 && c <= msgpcode.Int64):
		var v int64
		v, err = d.DecodeInt64()
		if err == nil && v < 0 {
			err = fmt.Errorf("negative value %d", v)
		}
		u = uint64(v)
	default:
		err = fmt.Errorf("type code %#x, want an integer", c)
	}
	if err != nil {
		return 0, err
	}
	if u < lo || u > hi {
		return 0, fmt.Errorf("value %d out of range", u)
	}
	return T(u), nil
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
	if extra := m.fields() &^ r.allowed; extra != 0 {
		return nil, violation("fields", "%s with fields it may not carry (%#x)", r.name, extra)
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
