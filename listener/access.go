package listener

// Who may connect and how much: each service's client_access list and
// per-client limits, from its Service message, applied to every accepted
// connection before it crosses to the executor. A refused connection is
// closed at once; it runs nothing and costs the executor nothing.
//
// A client is an inet address, an IPv6 one grouped by its /64 (one site's
// hosts commonly share a /64, and one host can take a whole /64), or a
// unix peer's uid. A command counts against its client from the Run that
// asks for it until its result; commands of an earlier listener (results
// with seq 0) count against nobody. The rate is a fixed window, as
// anvil(8)'s: the first connection of a client starts it, and it counts
// the connections handed on within client_rate_time_unit.

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
	"spawnd/policy"
)

const (
	ipv6Group      = 64 // prefix length that groups IPv6 clients
	refuseWarnings = 10 // refusals logged per warnInterval; the rest are counted
	sweepFloor     = 1024
)

// clients is one service's rules and what it knows of its clients.
type clients struct {
	access      policy.Access
	limit, rate int
	unit        time.Duration
	byKey       map[policy.Client]*tally // with a limit or a rate only
	swept       int                      // clients kept at the last sweep
}

// tally is one client's commands in flight and its rate window.
type tally struct {
	inflight int
	start    time.Time
	count    int
}

// newClients reads a Service message's rules.
func newClients(m *ipc.Message) (clients, error) {
	a, err := policy.ParseAccess(m.Access)
	if err != nil {
		return clients{}, fmt.Errorf("executor sent service %s with client_access %q: %v", m.Name, m.Access, err)
	}
	c := clients{access: a, limit: int(m.PerHost), rate: int(m.Rate), unit: time.Duration(m.RateSec) * time.Second}
	if c.limit > 0 || c.rate > 0 {
		c.byKey = map[policy.Client]*tally{}
	}
	return c, nil
}

// admit decides on connection cfd of service svc. When it refuses, the
// caller closes cfd. The client it returns, if any, counts the command
// until its result (release).
func (l *listener) admit(svc *service, cfd int) (*tally, bool) {
	cs := &svc.clients
	if len(cs.access) == 0 && cs.byKey == nil {
		return nil, true
	}
	peer, ok := peer(cfd)
	if !ok { // gone already
		return nil, false
	}
	if ok, i := cs.access.Decide(peer); !ok {
		l.refuse(svc, peer, "refused by client_access %s", cs.access.Rule(i))
		return nil, false
	}
	if cs.byKey == nil {
		return nil, true
	}
	now, key := time.Now(), clientKey(peer)
	c := cs.byKey[key]
	if c == nil {
		if len(cs.byKey) >= 2*cs.swept+sweepFloor {
			cs.sweep(now)
		}
		c = &tally{}
		cs.byKey[key] = c
	}
	if cs.limit > 0 && c.inflight >= cs.limit {
		l.refuse(svc, peer, "%d commands at once, client_connection_limit %d", c.inflight, cs.limit)
		return nil, false
	}
	if cs.rate > 0 {
		if now.Sub(c.start) >= cs.unit {
			c.start, c.count = now, 0
		}
		if c.count >= cs.rate {
			l.refuse(svc, peer, "%d connections since %s, client_connection_rate_limit %d per %s",
				c.count+1, c.start.Format(time.TimeOnly), cs.rate, cs.unit)
			return nil, false
		}
		c.count++
	}
	c.inflight++
	return c, true
}

// peer returns the client of the connected socket fd, read from the socket
// (the executor reads it again with the rest of the socket: executor/tie.go),
// and false when it cannot be read: the client has gone.
func peer(fd int) (policy.Client, bool) {
	sa, _ := unix.Getpeername(fd)
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return policy.Client{Addr: netip.AddrFrom4(a.Addr)}, true
	case *unix.SockaddrInet6:
		return policy.Client{Addr: netip.AddrFrom16(a.Addr).Unmap()}, true
	case *unix.SockaddrUnix:
		if cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			return policy.Client{Uid: cred.Uid, Gid: cred.Gid}, true
		}
	}
	return policy.Client{}, false
}

// clientKey is what the limits count by: the address, an IPv6 one's /64,
// or a unix peer's uid.
func clientKey(peer policy.Client) policy.Client {
	if peer.Addr.Is6() {
		return policy.Client{Addr: netip.PrefixFrom(peer.Addr, ipv6Group).Masked().Addr()}
	}
	return policy.Client{Addr: peer.Addr, Uid: peer.Uid}
}

// release ends a command's time against its client.
func (c *tally) release() {
	if c != nil {
		c.inflight--
	}
}

// sweep forgets the clients with nothing in flight and no rate window
// open, so that the map holds only clients seen lately.
func (cs *clients) sweep(now time.Time) {
	for k, c := range cs.byKey {
		if c.inflight == 0 && (cs.rate == 0 || now.Sub(c.start) >= cs.unit) {
			delete(cs.byKey, k)
		}
	}
	cs.swept = len(cs.byKey)
}

// refuse logs a refused client: at most refuseWarnings lines every
// warnInterval, then one line that counts the others (flushRefusals).
func (l *listener) refuse(svc *service, peer policy.Client, format string, a ...any) {
	now := time.Now()
	if now.Sub(l.refusedSince) >= warnInterval {
		l.flushRefusals(now)
	}
	if l.refusedLogged >= refuseWarnings {
		l.refusedMuted++
		return
	}
	l.refusedLogged++
	l.log.Warning("service %s: client %s: "+format, append([]any{svc.name, peer}, a...)...)
}

// flushRefusals logs how many refusals were not, and starts a new
// interval at now.
func (l *listener) flushRefusals(now time.Time) {
	if l.refusedMuted > 0 {
		l.log.Warning("%d more clients refused and not logged (at most %d logged every %s)",
			l.refusedMuted, refuseWarnings, warnInterval)
	}
	l.refusedSince, l.refusedLogged, l.refusedMuted = now, 0, 0
}
