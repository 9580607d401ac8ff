package policy

// client_access and the per-client limits: parsed here for both sides.
// The listener enforces them; the executor re-checks client_access on
// every socket it is handed (Access.Check).

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxAccess bounds a list's canonical form, so that the Service message
// that carries it to the listener fits ipc.MaxMessage.
const maxAccess = 6000

// Access is a client_access list: the first pattern a client matches
// decides (allowed unless negated with !); a client no pattern matches is
// refused, unless the list is empty.
type Access []pattern

type pattern struct {
	deny bool
	kind byte // 'n' inet prefix, 'u' uid, 'g' gid
	id   uint32
	net  netip.Prefix
}

// Client is a peer as the rules see it: an inet address (an IPv4-mapped
// IPv6 one as IPv4), or a unix peer's uid and gid (SO_PEERCRED).
type Client struct {
	Addr     netip.Addr // not valid for a unix peer
	Uid, Gid uint32
}

// String names the client in log lines.
//
//tcb:request-path
func (c Client) String() string {
	if c.Addr.IsValid() {
		return c.Addr.String()
	}
	return fmt.Sprintf("uid %d gid %d", c.Uid, c.Gid)
}

// Decide returns whether c may connect and the index of the pattern that
// decided, -1 when none matched.
//
//tcb:request-path
func (a Access) Decide(c Client) (bool, int) {
	for i, p := range a {
		if p.kind == 'n' && p.net.Contains(c.Addr) || !c.Addr.IsValid() &&
			(p.kind == 'u' && p.id == c.Uid || p.kind == 'g' && p.id == c.Gid) {
			return !p.deny, i
		}
	}
	return len(a) == 0, -1
}

// Check re-checks client c, read by the executor from the socket it is
// handed (its defence in depth); the error says why it is refused.
//
//tcb:request-path
func (a Access) Check(c Client) error {
	if ok, i := a.Decide(c); !ok {
		return fmt.Errorf("client %s refused by client_access %s", c, a.Rule(i))
	}
	return nil
}

// Rule returns pattern i in canonical form, or says that none matched.
//
//tcb:request-path
func (a Access) Rule(i int) string {
	if i < 0 {
		return "(no pattern matches)"
	}
	p, neg := a[i], map[bool]string{true: "!"}[a[i].deny]
	if p.kind != 'n' {
		return fmt.Sprintf("%s%cid:%d", neg, p.kind, p.id)
	}
	return neg + p.net.String()
}

// String returns the list in canonical form, numbers only, which
// ParseAccess reads back.
func (a Access) String() string { return joined(len(a), " ", a.Rule) }

// ParseAccess reads a list in canonical form (Access.String).
func ParseAccess(list string) (Access, error) { return parseAccess(list, Pass, nil) }

// parseAccess parses a list for a service of type typ, resolving names
// with acct (nil: names are refused). A list may hold both kinds of
// pattern, so that one in main.cf serves inet and unix services; a
// pattern of the other kind never matches, and a list with none of the
// service's kind (pass takes both) would refuse every client: an error.
func parseAccess(list, typ string, acct accounts) (Access, error) {
	var a Access
	mine := typ == Pass
	for _, w := range strings.FieldsFunc(list, func(r rune) bool { return strings.ContainsRune(listSeps, r) }) {
		p, err := parsePattern(w, acct)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %v", w, err)
		}
		a, mine = append(a, p), mine || (p.kind == 'n') == (typ == Inet)
	}
	if n := len(a.String()); n > maxAccess {
		return nil, fmt.Errorf("list too long: %d bytes in canonical form, limit %d", n, maxAccess)
	} else if len(a) > 0 && !mine {
		return nil, fmt.Errorf("no pattern for %s services: every client would be refused", typ)
	}
	return a, nil
}

func parsePattern(w string, acct accounts) (p pattern, err error) {
	w, p.deny = strings.CutPrefix(w, "!")
	key, v, _ := strings.Cut(w, ":")
	if p.kind = map[string]byte{"uid": 'u', "user": 'u', "gid": 'g', "group": 'g'}[key]; p.kind != 0 {
		var n uint64
		switch {
		case key == "uid" || key == "gid":
			n, err = strconv.ParseUint(v, 10, 32)
		case acct == nil:
			return p, errors.New("a name in canonical form")
		case key == "user":
			p.id, _, err = acct.User(v)
		default:
			p.id, err = acct.Group(v)
		}
		if p.id |= uint32(n); err != nil && len(key) > 3 {
			err = fmt.Errorf("unknown %s name: %s", key, v)
		}
		return p, err
	}
	addr, bits, slash := strings.Cut(w, "/")
	in, br := strings.CutPrefix(addr, "[")
	in, br2 := strings.CutSuffix(in, "]")
	ip, err := netip.ParseAddr(in)
	if err != nil || ip.Zone() != "" || br != br2 || br && !ip.Is6() {
		return p, errors.New("malformed pattern: want address, address/prefix, [ipv6] or [ipv6]/prefix")
	}
	n, _ := strconv.Atoi(bits)
	if !slash {
		n = ip.BitLen()
	} else if !digits(bits) || n > ip.BitLen() {
		return p, fmt.Errorf("prefix out of range: want 0 to %d", ip.BitLen())
	}
	p.kind, p.net = 'n', netip.PrefixFrom(ip, n)
	if m := p.net.Masked(); m != p.net {
		return p, fmt.Errorf("non-null host address bits, perhaps you should use %s instead", m)
	}
	if ip.Is4In6() && n >= 96 {
		p.net = netip.PrefixFrom(ip.Unmap(), n-96)
	}
	return p, nil
}

// clients resolves a service's client_access and per-client limits, each
// from -o NAME, else main.cf's <service>_NAME, else NAME; typ is the
// service's endpoint type. Errors name the service.
func (l *loader) clients(c *conf, s *Service, over map[string]string, typ string) {
	sc := *c
	sc.svc = s.Name
	name := func(n string) string {
		if _, ok := over[n]; !ok && c.has(s.Name+"_"+n) {
			return s.Name + "_" + n
		}
		return n
	}
	v, ok := sc.str(name("client_access"))
	var err error
	if s.Access, err = parseAccess(v, typ, l.acct); ok && err != nil {
		sc.errorf(name("client_access"), "parameter %s: %v", name("client_access"), err)
	}
	s.ClientLimit, s.RateLimit = sc.integer(name("client_connection_limit"), 0), sc.integer(name("client_connection_rate_limit"), 0)
	s.RateUnit = sc.time(name("client_rate_time_unit"), 1)
}
