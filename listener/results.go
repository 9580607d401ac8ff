package listener

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"spawnd/ipc"
)

// results takes the results waiting on the pair, up to resultBatch.
func (l *listener) results() error {
	for i := 0; i < resultBatch; i++ {
		if err := l.result(); err != nil {
			return err
		}
		if !l.readable() {
			return nil
		}
	}
	return nil
}

// result takes one Exited or Refused, ends its command's time in flight
// and logs it.
func (l *listener) result() error {
	m, err := l.receive()
	if err != nil {
		return err
	}
	if m.Kind != ipc.KindExited && m.Kind != ipc.KindRefused {
		return fmt.Errorf("executor sent %s while serving", ipc.KindName(m.Kind))
	}
	if int(m.Service) >= len(l.svcs) {
		return fmt.Errorf("executor sent %s for service %d of %d", ipc.KindName(m.Kind), m.Service, len(l.svcs))
	}
	svc := l.svcs[m.Service]
	var p pending
	if m.Seq == 0 {
		if svc.earlier == 0 {
			return fmt.Errorf("executor sent %s with seq 0 for service %s, which has no earlier command", ipc.KindName(m.Kind), svc.name)
		}
		svc.earlier--
	} else {
		var ok bool
		if p, ok = l.pending[m.Seq]; !ok || p.svc != int(m.Service) {
			return fmt.Errorf("executor sent %s for seq %d service %s, which is not in flight", ipc.KindName(m.Kind), m.Seq, svc.name)
		}
		delete(l.pending, m.Seq)
		p.client.release()
	}
	svc.inflight--
	l.inflight--
	if l.inflight == 0 && l.pf != nil && l.pf.MaxIdle > 0 {
		l.idleSince = time.Now()
	}
	if l.inflight == 0 && l.usedUp() {
		l.stop("use limit reached")
	}
	l.logResult(svc, m, &p)
	return nil
}

// logResult logs an abnormal end in spawn(8)'s words, and with -v one
// line for every connection.
func (l *listener) logResult(svc *service, m *ipc.Message, p *pending) {
	switch {
	case m.Kind == ipc.KindRefused && strings.HasPrefix(m.Reason, "execvp "):
		// A command that cannot be executed: spawn(8)'s child logs
		// "fatal: spawn_comand: execvp PATH: %m" and exits 1, and spawn(8)
		// logs its exit status, the line tools count.
		// %m is strerror's, capitalised.
		r := m.Reason
		if i := strings.LastIndex(r, ": ") + 2; i > 1 && i < len(r) {
			r = r[:i] + strings.ToUpper(r[i:i+1]) + r[i+1:]
		}
		l.log.Warning("command %s: %s", svc.command, r)
		l.log.Warning("command %s exit status 1", svc.command)
	case m.Kind == ipc.KindRefused:
		l.log.Warning("command %s: %s", svc.command, m.Reason)
	case m.Timeout:
		l.log.Warning("%s: process id %d: command time limit exceeded", svc.command, m.Pid)
	case m.Signal != 0:
		l.log.Warning("command %s killed by signal %d", svc.command, m.Signal)
	case m.Code != 0:
		l.log.Warning("command %s exit status %d", svc.command, m.Code)
	}
	if !l.cfg.Verbose {
		return
	}
	peer, pid, status := "unknown", "-", ""
	if m.Seq != 0 {
		peer = p.peer
	}
	dur := time.Duration(m.Micros) * time.Microsecond
	switch {
	case m.Kind == ipc.KindRefused:
		status = "refused"
		if m.Seq != 0 {
			dur = time.Since(p.start)
		}
	case m.Timeout:
		status = "time limit"
	case m.Signal != 0:
		status = "signal " + strconv.Itoa(int(m.Signal))
	default:
		status = "exit " + strconv.Itoa(int(m.Code))
	}
	if m.Kind == ipc.KindExited {
		pid = strconv.Itoa(int(m.Pid))
	}
	l.log.Info("service=%s peer=%s pid=%s status=%s duration=%.1fms",
		svc.name, peer, pid, status, float64(dur)/float64(time.Millisecond))
}

// peerName names a connection's peer for -v: ip:port for TCP ([ip]:port
// for IPv6), "unix" for a UNIX-domain client, "unknown" when the client
// has already gone.
func peerName(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return "unknown"
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return "unix"
	}
	return "unknown"
}
