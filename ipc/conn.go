package ipc

import (
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// maxFds is how many descriptors one receive has room for. More than the
// protocol ever allows, so that an extra fd arrives as a count to refuse
// rather than as MSG_CTRUNC; more than this still arrives as MSG_CTRUNC.
const maxFds = 8

// The listener's descriptors, as the executor starts it: its end of the
// pair, the log, master(8)'s status channel in Postfix mode, then the
// listening sockets from ListenFd, or ListenFd+1 in Postfix mode, in the
// order and numbers of the Service messages.
const (
	PairFd   = 3
	LogFd    = 4
	StatusFd = 5
	ListenFd = 5
)

// Pair returns a new SOCK_SEQPACKET socketpair, both ends close-on-exec.
func Pair() (executorEnd, listenerEnd int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socketpair: %w", err)
	}
	return fds[0], fds[1], nil
}

// Conn is one end of the pair. Its descriptor is blocking. One goroutine
// may Receive while another Sends.
type Conn struct {
	fd  int
	buf [MaxMessage]byte
	oob [64]byte // >= unix.CmsgSpace(4 * maxFds)
}

// NewConn wraps the pair end fd; the Conn owns it from now on.
func NewConn(fd int) *Conn { return &Conn{fd: fd} }

// Fd returns the descriptor.
func (c *Conn) Fd() int { return c.fd }

// Close closes the descriptor. Call it only when no Send or Receive is in
// progress: a closed descriptor's number is soon another's, and a late
// Send would write there. Shutdown first to end them.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// Shutdown ends both directions and keeps the descriptor: a Send blocked
// on a peer that does not read returns an error (EPIPE), and Receive
// returns io.EOF. It is how a user of the Conn stops its goroutines before
// Close.
func (c *Conn) Shutdown() error { return unix.Shutdown(c.fd, unix.SHUT_RDWR) }

// Send encodes m and sends it, with fd as SCM_RIGHTS when fd >= 0.
//
//tcb:request-path
func (c *Conn) Send(m *Message, fd int) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for err = unix.EINTR; err == unix.EINTR; {
		err = unix.Sendmsg(c.fd, b, oob, nil, unix.MSG_NOSIGNAL)
	}
	if err != nil {
		return fmt.Errorf("send %s: %w", KindName(m.Kind), err)
	}
	return nil
}

// Receive reads one datagram sent from the given side and applies every
// check of Check; what the descriptor is, the caller checks. It returns
// the message and its descriptor (-1 when none), io.EOF when the peer has
// gone (an empty datagram counts as gone), a *Violation when the message
// breaks the protocol, or another error. On any error every descriptor
// that arrived is closed.
//
//tcb:request-path
func (c *Conn) Receive(from Direction) (*Message, int, error) {
	var n, oobn, flags int
	var err error = unix.EINTR
	for err == unix.EINTR {
		n, oobn, flags, _, err = unix.Recvmsg(c.fd, c.buf[:], c.oob[:unix.CmsgSpace(4*maxFds)], unix.MSG_CMSG_CLOEXEC)
	}
	if err != nil {
		return nil, -1, fmt.Errorf("receive: %w", err)
	}
	fds, err := rights(c.oob[:oobn])
	if err != nil {
		return nil, -1, err
	}
	m, err := Check(c.buf[:n], flags&unix.MSG_TRUNC != 0, flags&unix.MSG_CTRUNC != 0, len(fds), from)
	if n == 0 && oobn == 0 && flags&unix.MSG_TRUNC == 0 {
		err = io.EOF
	}
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, -1, err
	}
	return m, append(fds, -1)[0], nil // Check allows one at most
}

// rights returns every descriptor in the control messages. Any control
// message other than SCM_RIGHTS, or one it cannot parse, is a violation:
// it then closes every descriptor it found and returns none.
//
//tcb:request-path
func rights(oob []byte) ([]int, error) {
	var fds []int
	var bad error
	for len(oob) >= unix.CmsgLen(0) {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			bad = violation("cmsg", "unparsable control message: %v", err)
			break
		}
		if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_RIGHTS {
			bad = violation("cmsg", "control message level %d type %d", h.Level, h.Type)
			data = nil
		}
		for ; len(data) >= 4; data = data[4:] {
			fds = append(fds, int(int32(binary.NativeEndian.Uint32(data))))
		}
		oob = rest
	}
	if bad != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, bad
	}
	return fds, nil
}
