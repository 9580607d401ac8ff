// Package ipc is the only wire code between the root executor (spawnd) and
// the unprivileged listener (spawnd-listener): message kinds, strict
// decoding, and send and receive with descriptors over one SOCK_SEQPACKET
// socketpair. It imports nothing else of spawnd's; a service is an index.
//
// # Framing
//
// One datagram is one message: a msgpack map (github.com/vmihailenco/msgpack/v5)
// of at most MaxMessage bytes, with at most one descriptor attached as
// SCM_RIGHTS. SEQPACKET keeps message boundaries and binds each descriptor
// to the message it came with. An empty datagram, like end of file, means
// the peer has gone.
//
// # Messages
//
//	listener                                   executor
//	   | Hello{v}                                 |
//	   |----------------------------------------->|
//	   |    Welcome{v, services n, cap, settings} |
//	   |<-----------------------------------------|
//	   |  Service{index, name, command, limit,    |  n times
//	   |          fd, nfd, running, access,       |
//	   |          per-client limit, rate, unit}   |
//	   |<-----------------------------------------|
//	   | Run{seq, service} + client fd            |  per connection
//	   |----------------------------------------->|
//	   |  Exited{seq, service, pid, code, signal, |
//	   |         timeout, micros}                 |
//	   |  or Refused{seq, service, reason}        |
//	   |<-----------------------------------------|
//
// Every message carries v (the version) and k (the kind). Fields by kind:
//
//	Hello    1  L->E  0 fds  (none)
//	Run      2  L->E  1 fd   q seq (>0), s service index
//	Welcome 16  E->L  0 fds  n number of Service messages, m hard cap on running commands;
//	                         the listener's settings: I syslog ident, F facility (0-23),
//	                         V verbose, L log kind (syslog, stream, file, postlog), H host
//	                         name for file and postlog records; Postfix mode: P true,
//	                         p the pid master(8) forked (P and p > 0 together or not at
//	                         all), G generation, U max_use, T max_idle in seconds
//	Service 17  E->L  0 fds  s index, a name, c argv[0], l process limit (0 = cap only),
//	                         f first listening fd, d number of fds, r already running
//	                         (or ended, result not yet sent): each one result with seq 0,
//	                         w client_access in canonical form (policy.Access.String),
//	                         i client_connection_limit, o client_connection_rate_limit,
//	                         y client_rate_time_unit in seconds (0 = none for each)
//	Exited  18  E->L  0 fds  q seq, s service, p pid, x exit status, g signal,
//	                         t time limit fired, u run time in microseconds
//	Refused 19  E->L  0 fds  q seq, s service, e reason
//
// Each field's key and, for an integer, its range (0 to its max tag, or to
// its type's largest value) are Message's struct tags; each kind's fields
// are a string of keys in the rules table. Decode and Check go by these
// two tables and nothing else, and refuse a value outside them.
//
// A Run request names a service and a sequence number and nothing else:
// what runs, with which arguments, as whom, in which directory, with which
// environment and for how long all come from the executor's policy. The
// executor learns what it needs about the peer (address, credentials) from
// the descriptor itself, never from the message. Exited with seq 0 reports
// a command started for an earlier listener.
//
// # Descriptors
//
// The executor starts the listener with its end of the pair at PairFd (3),
// the log at LogFd (4), in Postfix mode master(8)'s status channel (with a
// maxproc, a stand-in: executor's keepStatus) at StatusFd (5), then every
// service's listening sockets in service order from ListenFd (5, or 6 in
// Postfix mode), as the Service messages number them. The listener takes
// no arguments: everything it learns comes in Welcome and the Service
// messages, through Check.
//
// # States
//
// The executor moves forward only: starting (expects Hello, once), then
// serving (expects Run). When a listener is replaced the new one starts
// again at starting. The listener sends nothing before Welcome and the
// Service messages have arrived.
//
// # Limits
//
// MaxMessage bytes per datagram; exactly the table's number of descriptors
// per message; room for eight descriptors per receive, so that up to eight
// extra arrive as a count and more as MSG_CTRUNC; the executor's hard cap
// on running commands, announced in Welcome.
//
// # Security
//
// The listener faces the network and is treated as hostile. The executor
// refuses a message, closes every descriptor that came with it, logs a
// warning and ends the listener, on the first failed check, in this order:
// size (no MSG_TRUNC), no MSG_CTRUNC, control messages are SCM_RIGHTS only,
// decodes exactly (a map, known keys, right types, no trailing bytes),
// version, known kind, direction, only the kind's fields set, the kind's
// exact descriptor count, a Run's sequence number is not 0; then, in the
// executor, the state allows the kind, the descriptor is a stream socket
// of family inet, inet6 or unix that is not listening (read once for every
// check that follows: executor/tie.go), the service index is in range,
// the running commands are below the hard cap, the service's below
// its process limit (0: only the cap), the descriptor is a connection
// accepted on that service's listening socket in the executor's network
// namespace, and the service's client_access admits the descriptor's
// client (policy.Access.Check). Check does all but the executor's checks,
// and is a pure function: FuzzCheck drives it.
//
// # Versioning
//
// Version is 2 (2 added the Service message's client fields w, i, o, y).
// Both binaries are built and installed together; a message of any other
// version is a violation, not a negotiation. A change to a
// field's meaning or to the table takes a new version.
package ipc
