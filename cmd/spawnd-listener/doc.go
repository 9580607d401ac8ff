// Spawnd-listener is the unprivileged half of spawnd(8): it accepts
// connections on spawnd's listening sockets and hands each client to the
// executor, which runs the service's command.
//
// # Synopsis
//
//	spawnd-listener
//
// # Description
//
// spawnd-listener is not run by hand. The executor, spawnd(8), starts it
// from its own directory as mail_owner (uid and gid, no supplementary
// groups), with an empty environment, and starts another, with back-off,
// when it dies; commands already running go on, and their results go to
// the new listener.
//
// It inherits these descriptors:
//
//   - 3: Its end of the executor's SOCK_SEQPACKET socket pair. Messages are
//     msgpack maps with at most one client descriptor each, passed as
//     SCM_RIGHTS; the protocol is versioned and documented in the ipc
//     package. The listener sends Hello; the executor answers Welcome, with
//     its hard cap on running commands and the listener's settings (below),
//     and one Service message per service
//     (name, command, concurrency limit, listening descriptors, commands
//     already running, client_access list and per-client limits); then
//     the listener sends one Run request per connection and the executor
//     answers each with Exited or Refused.
//   - 4: The log destination the executor opened, of the kind Welcome
//     names: a datagram or stream socket to the syslog daemon, a file, or
//     a datagram socket to postlogd(8).
//   - 5: In Postfix mode, master(8)'s status channel; when the service has
//     a maxproc, a stand-in whose other end the executor holds, and closes
//     when master(8)'s ends (the listener tells master(8) nothing then
//     but its last use, and the executor keeps the bound).
//   - 5 and up (6 and up in Postfix mode): The listening sockets, each service's
//     contiguous, at the descriptors its Service message names.
//
// One event loop (epoll) watches the pair, the status channel and the
// listening sockets of every service that may take another connection.
// It checks each connection it accepts against its service's
// client_access list and per-client limits (spawnd(8), Who may connect),
// reading the client from the socket (getpeername, SO_PEERCRED): a
// refused one is closed at once, with a warning that names the service,
// the client and the rule, at most 10 every 10 seconds and then a count
// of the others. For each connection it keeps (close-on-exec;
// SO_KEEPALIVE for TCP, as Postfix sets it) it sends Run, with a
// sequence number and the service's index, and closes its own copy of
// the client at once. A command is in flight from its Run until its
// result arrives; the commands already
// running when the listener started count as in flight until their
// results, with sequence number 0, arrive. A service at its concurrency
// limit, or every service when the total reaches the executor's cap, is
// no longer watched: further connections wait in the kernel's listen
// queue, none is accepted only to be dropped, and they are taken as
// results free slots. When the executor goes away the listener exits at
// once, with status 0.
//
// SIGTERM or SIGINT: stop accepting, wait for the results of the commands
// in flight (logging them), exit 0. SIGUSR1 (spawnd's reload): stop
// accepting, log the results the executor has already sent, exit 0; the
// executor hands the others to the next listener.
//
// # Options
//
// None: its settings come in Welcome, through the same
// strict decoder as every message. Until Welcome, and for a fatal error,
// it logs as postfix/spawnd, facility mail.
//
//   - verbose: Log one line per connection (spawnd serve -v, or -v in
//     master.cf).
//   - ident, facility: The log ident and syslog facility.
//   - log kind, host: The kind of descriptor 4, and the host field of
//     file and postlog records (its first label; empty: the kernel's host
//     name).
//   - Postfix mode, with the process id for status messages (the
//     executor's, the process master(8) forked), master(8)'s generation,
//     max_use (stop after this many connections, 0: never) and max_idle
//     (stop after this many seconds with no command in flight, 0: never).
//
// # Postfix mode
//
// In Postfix mode the listener speaks master(8)'s status protocol on descriptor 5:
// 12-byte records in host byte order (pid, generation, status), with the
// pid and generation it was given; its log records carry that pid too. A
// service with a concurrency limit (maxproc) stays available (1) all the
// listener's life, at its limit too, so that master(8) starts no other
// process of the service and the limit holds for the service as a whole;
// connections beyond it wait in the listen queue. With a limit of 0 it
// sends busy (0) at the executor's cap and when it stops accepting, so
// that master(8) starts another process, and available when a result
// frees a slot again. Only changes are sent, and a new process counts as
// available. When it exits having served, with nothing in flight, it
// sends busy then available: one use for master(8)'s count. The listening
// sockets are shared with the service's other processes: losing an accept
// race (EAGAIN) is normal. The listener stops accepting, waits for the
// commands in flight and exits 0 after max_use connections (with a limit,
// at the first moment nothing is in flight), after max_idle seconds with
// nothing in flight, or when the status channel becomes readable or
// reaches end of file (master(8) went away; nothing is sent then). It
// never closes or removes master(8)'s sockets.
//
// # Security
//
// The listener faces the network, so it has nothing worth taking: it runs
// as mail_owner with no supplementary groups, reads no configuration,
// never runs a command, never changes its privileges, and never reads or
// writes client data. Which services exist, their limits and its
// descriptors it learns from the executor. The executor treats every
// message from it as hostile: a request that is malformed, carries other
// than one connection accepted on the service it names, names an unknown
// service or exceeds the executor's hard cap is refused and the listener
// is killed. It runs in a session of its own with /dev/null as standard
// input, output and error. It is not dumpable (no ptrace or core dump by
// other processes of mail_owner) from its exec, as its file is installed
// mode 0711, which others may not read; it makes itself non-dumpable
// again and sets no_new_privs first thing, and once it holds its
// descriptors, before its first accept, it installs a seccomp filter on
// every thread that kills it for any system call beyond those it needs:
// it cannot execute a program, open a file, create a process or make a
// socket (but, when it logs to syslog, a unix socket to dial the syslog
// daemon again). Nothing
// the listener sends can change which program runs, with which arguments,
// as whom, or for how long. The listener keeps under the cap itself and
// closes its copy of every client descriptor after passing it, sent or
// not. Every inherited descriptor is made close-on-exec at start-up.
//
// # Diagnostics
//
// Lines go to descriptor 4 as the executor's do, as $syslog_name/spawnd,
// in Postfix's format: "warning: " and "fatal: " prefixes, info lines
// bare. Abnormal ends of commands are logged in spawn(8)'s words, where
// /path is the service's command (argv[0]):
//
//	warning: command /path exit status 3
//	warning: command /path killed by signal 9
//	warning: /path: process id 1234: command time limit exceeded
//	warning: command /path: could not start: fork: resource temporarily unavailable
//
// The last is a command the executor refused to start, with its reason.
// With verbose, one more line per connection, when its result arrives:
//
//	service=policy peer=127.0.0.1:40312 pid=1234 status=exit 0 duration=12.3ms
//
// peer is ip:port for TCP ([ip]:port for IPv6), unix for a UNIX-domain
// client, unknown when the client left before it was asked or for a command
// started by an earlier listener. status is "exit N", "signal N",
// "time limit" or "refused"; pid is - for a refused command. duration is
// the command's run time as the executor measured it (for a refused
// command, the time from accept to refusal). Verbose also logs why the listener
// stops: "master disconnect -- exiting", "idle timeout -- exiting", "use
// limit reached -- exiting", "stop signal -- exiting".
//
// When accept fails for want of descriptors or memory (EMFILE, ENFILE,
// ENOBUFS, ENOMEM), the socket is left alone for 100 milliseconds rather
// than retried in a loop, and a warning is logged at most every 10
// seconds:
//
//	warning: accept: too many open files
//
// Other unexpected accept errors are handled the same way and logged as
// "warning: service NAME: accept: ERROR". A client that left before it
// was accepted, and EAGAIN, are not logged.
//
// An argument, a missing descriptor, a protocol error from the
// executor or a failed system call is logged as "fatal: ..." and the
// listener exits with status 1; the executor starts another.
//
// # Configuration parameters
//
// None of its own: the executor reads main.cf and master.cf and passes the
// listener what it needs in Welcome and the Service messages.
// What they come from, in spawnd(8):
//
//   - syslog_name (postfix), syslog_facility (mail), maillog_file (empty):
//     The log ident, facility and destination (descriptor 4).
//   - The maxproc column of master.cf, default_process_limit (100): A
//     service's concurrency limit.
//   - max_use (100), max_idle (100s): In Postfix mode.
//   - mail_owner (postfix): The user the listener runs as.
//
// # See also
//
// spawnd(8), the executor; spawn(8), the Postfix program spawnd replaces;
// master(8), Postfix's process manager and its status protocol.
package main
