// Spawnd runs a command for every connection to a TCP or UNIX socket, as a
// configured unprivileged user, with the command's standard input, output
// and error connected to the client: a privilege-separated replacement for
// Postfix's spawn(8) that runs many commands at once.
//
// # Synopsis
//
//	spawnd serve [-c DIR] [-v]
//	spawnd check [-c DIR]
//	spawnd version
//	spawnd [generic Postfix daemon options] user=NAME[:GROUP] argv=COMMAND ...
//
// # Description
//
// spawnd is two processes. The executor, spawnd itself, runs as root: it
// loads and validates the whole configuration at start-up, opens (or
// inherits) the listening sockets, opens the log destination, and starts
// the listener, spawnd-listener(8), as mail_owner with no supplementary
// groups. From then on the executor only executes: for each connection the
// listener hands it the client descriptor and the name of a service over a
// SOCK_SEQPACKET socket pair; the executor checks the request against the
// configuration, starts the service's command with the client on
// descriptors 0, 1 and 2, enforces the time limit and reports how the
// command ended. The listener accepts connections, applies each service's
// concurrency limit and logs the outcome of each command. It never runs a
// command; the executor never accepts a connection and never reads or
// writes client data.
//
// spawnd runs in one of two modes: standalone, with its own configuration
// directory, as an inetd-like daemon; or under Postfix's master(8), as a
// drop-in for spawn(8) in master.cf.
//
// A command gets what spawn(8) gives it: descriptors 0, 1 and 2 on the
// connection (blocking) and no other descriptor; the uid and gid of its
// service, with that gid as its only supplementary group; the variables
// named by export_environment plus PATH=/usr/bin:/bin, and nothing else
// (the peer variables below when its service asks for them); working
// directory $queue_directory, or / when that does not exist; umask 077;
// SIGPIPE and SIGXFSZ ignored, every other signal at its default; its own
// session and process group, with no controlling terminal; argv exactly as
// configured, executed directly, without a shell.
//
// Unlike spawn(8) of Postfix 3.7, the time limit is enforced: when it
// expires spawnd kills everything the command started, as root, and shuts
// the connection down, so that the client sees the end of the connection.
// Each command runs in a cgroup of its own in the cgroup v2 hierarchy,
// found in /proc/self/mountinfo (/sys/fs/cgroup, or /sys/fs/cgroup/unified
// beside the v1 controllers): spawnd creates it in
// spawnd-PID-START, a directory of its own beside itself in its own cgroup
// (PID and START are its process id and start time), and puts the command
// in it as it starts (CLONE_INTO_CGROUP). Killing the cgroup (cgroup.kill,
// Linux 5.14) reaches every process in it, including those that left the
// command's process tree (setsid and a double fork, CLONE_PARENT). When a
// command exits and leaves processes behind, they are killed at its time
// limit, or when spawnd stops. The listener too runs in a cgroup of its
// own, killed with everything in it when the listener ends. A spawnd that
// starts kills what a spawnd that is gone (kill -9) left in its directory
// beside it, and logs how many processes that was; two spawnd processes
// never touch each other's directories. Under systemd, spawnd.service sets
// Delegate=yes and the directories are in the unit's own cgroup. Under
// master(8) they are in master(8)'s cgroup (postfix.service's), which
// spawnd is in: cgroup v2 lets a root process create cgroups anywhere,
// and master(8) neither uses nor removes them. Without cgroup v2 (or
// without cgroup.kill), the time limit kills the command's process group
// only: a process that leaves it (setsid, a double fork) escapes the
// limit. spawnd needs
// pidfds (Linux 5.4 or later) and says so at start-up when there are
// none.
//
// A service may also give its commands resource limits and
// no_new_privileges (the command_*_limit and command_no_new_privileges
// parameters, all off by default, as in spawn(8)). spawnd then executes
// spawnd-limits, a small C program installed beside it, as the service's
// user; it sets them on itself and executes the command in its place:
// same pid, descriptors and environment. A command of such a service that
// cannot be executed exits 127 instead of being refused, and 126 when a
// limit cannot be set; both are logged as any exit status is. Each limit
// is both the soft and the hard limit (the inherited hard limit where that
// is lower); the CPU limit sends SIGXCPU, then SIGKILL a second later. The
// extra exec is the only cost (bench/README.md).
//
// With peer_environment set for a service, its commands also get
// UCSPI-style variables describing the connection: PROTO=TCP, TCPREMOTEIP,
// TCPREMOTEPORT, TCPLOCALIP and TCPLOCALPORT for TCP; PROTO=UNIX,
// UNIXREMOTEUID, UNIXREMOTEGID and UNIXREMOTEPID (from SO_PEERCRED) for
// UNIX sockets.
//
// # Who may connect
//
// client_access is a list of patterns in Postfix's list syntax, separated
// by commas or whitespace; ! in front negates; the first pattern that
// matches decides, and a client no pattern matches is refused unless the
// list is empty (the default: everyone). An inet service takes address,
// address/prefix, [ipv6] and [ipv6]/prefix, and an IPv4 client of a
// dual-stack socket matches IPv4 patterns; a unix service takes uid:N,
// user:NAME, gid:N and group:NAME, matched against the client's
// SO_PEERCRED (names are resolved at start-up). A list may hold both
// kinds, for inet and unix services alike: a pattern of the other kind
// never matches, and a list with none of a service's kind is an error:
//
//	client_access = !10.1.2.3, 10.1.0.0/16, [::1]
//	policy_client_access = !user:nobody, group:postfix
//
// client_connection_limit caps the commands at once of one client and
// client_connection_rate_limit its connections per client_rate_time_unit,
// a fixed window that the client's first connection opens, as anvil(8)'s.
// A client is an IPv4 address, an IPv6 /64, or a uid. The listener
// applies all of it before a connection reaches the executor: a refused
// connection is closed at once and runs nothing; a client over a limit is
// refused, not queued. Each refusal is logged with the service, the
// client and the rule, at most 10 every 10 seconds, then one line that
// counts the others. Under master(8) the counts are one spawnd process's,
// which master(8) replaces after $max_use connections or $max_idle
// seconds. The executor checks client_access again on every
// socket it is handed, and treats a refused client's as a protocol
// violation.
//
// # Standalone mode
//
// spawnd serve serves every service in DIR/master.cf (default /etc/spawnd)
// whose command column is spawn or spawnd, with parameters from
// DIR/main.cf, which may be absent (the defaults apply). It runs in the
// foreground and logs as described under Diagnostics.
//
//   - -c DIR: The configuration directory (default /etc/spawnd).
//   - -v: Log one line per connection: service, peer, pid, status and
//     duration.
//
// master.cf has Postfix's syntax and columns: service, type, private,
// unpriv, chroot, wakeup, maxproc, command and arguments. A service line
// looks like this:
//
//	# service        type  private unpriv  chroot  wakeup  maxproc command + args
//	127.0.0.1:10025  inet  n       n       n       -       4       spawnd
//	    user=nobody argv=/bin/echo hello
//	policy           unix  -       n       n       -       0       spawnd
//	    -o policy_time_limit=3600 user=nobody argv=/usr/local/bin/policy-server
//
// An inet service listens on [host:]port or [ipv6]:port; without a host,
// on all addresses. A unix service listens on an absolute path, or on
// $queue_directory/private/NAME (private y or -) or
// $queue_directory/public/NAME (private n). The executor removes a stale
// socket and creates the new one with mode 0666 from its bind, owned by
// root (the listener gets the descriptor), without following a symlink
// in the socket's directory, which may be mail_owner's; the directories
// above it must be root's alone. The directory controls access, as in
// Postfix. The unpriv and chroot
// columns must be n. The maxproc column is the service's concurrency limit
// (- means $default_process_limit; 0 means no limit but the executor's own
// hard cap); connections beyond it wait in the listen queue. -o name=value
// words before the attributes override main.cf parameters for that
// service.
//
// SIGTERM or SIGINT: stop accepting, let running commands finish within
// their time limits, exit 0. SIGHUP: load and validate the configuration
// again, in the same process; if it is valid, open the sockets of new
// services, ask the listener to leave (SIGUSR1) and start a new one with
// the new configuration; the sockets of services whose address did not
// change stay open, with the connections queued on them, and those of
// removed services are closed. If it is not valid, log why and go on with
// the old one. As with postfix reload, new connections get the new
// configuration, while running commands go on under the old one's time
// limit, even when their service is gone (spawnd then logs their results
// itself). When the listener dies, the executor starts another, with
// back-off; running commands go on. A listener that does not leave within
// 5 seconds of being asked (SIGTERM once no command runs, SIGUSR1) is
// killed, with everything it started.
//
// Socket activation: when LISTEN_PID names this process, a service takes
// the inherited socket whose name in LISTEN_FDNAMES (systemd's
// FileDescriptorName=) equals the service name instead of opening its own.
// systemd does not allow ":" in such a name, so name an activated inet
// service by its port alone (10025 inet ...). An inherited socket must be
// a listening stream socket of the service's type, or spawnd does not
// start; one that no service is named after is closed with a warning.
//
// spawnd check loads and validates everything serve would, prints one line
// per service (name, endpoint, user, group, time limit, concurrency limit,
// the limits and client_access list that are set, argv) and warnings,
// such as a private socket directory that other users can enter, and
// exits 0; or prints every error and exits 1. It opens no socket and
// starts nothing. spawnd version prints the version.
//
// # Postfix mode
//
// Any other command line is a Postfix master(8) command line. Replace
// spawn with spawnd in master.cf:
//
//	policy  unix  -  n  n  -  0  spawnd
//	    user=nobody argv=/usr/local/bin/policy-server --flag
//
// The unpriv and chroot columns must be n: spawnd needs root, and does not
// chroot. master(8) runs $daemon_directory/spawnd, so both spawnd and
// spawnd-listener must be installed there. spawnd reads main.cf from
// $MAIL_CONFIG or /etc/postfix, takes the listening sockets and master(8)'s
// status channel from the descriptors master(8) passes, and speaks
// master(8)'s status protocol with the pid master(8) forked.
//
// The generic options of Postfix's daemon skeleton, as it treats them:
//
//   - -c: The chroot flag (master.cf chroot y), not a directory: fatal,
//     spawnd does not chroot.
//   - -d: Do not insist that standard input is not a terminal; without
//     it, a terminal there is fatal: do not run this command by hand.
//   - -D: Run debugger_command: spawnd logs a warning and does not (as
//     does the environment variable MAIL_DEBUG).
//   - -i TIME, -m COUNT: Override max_idle and max_use.
//   - -l: maxproc is 1. -z: maxproc is 0.
//   - -n NAME: The service name (master.cf's first column).
//   - -o NAME=VALUE: Override a parameter.
//   - -r TIME: Accepted and unused, as by spawn(8).
//   - -s COUNT: The number of listening sockets, from descriptor 6 on.
//   - -S: Serve one client on standard input: fatal, not supported.
//   - -t TYPE: unix or inet; pass is fatal (spawnd does not receive
//     passed connections), anything else is fatal: unsupported transport
//     type, and no -t is fatal: no transport type specified.
//   - -u: Run as mail_owner: fatal, spawnd needs root.
//   - -v: Log one line per connection; the environment variable
//     MAIL_VERBOSE does the same.
//   - -V: Also log to standard error. spawnd writes its start-up fatal
//     errors there with or without -V, and nothing else.
//
// An unknown option, or one without its argument, is fatal: invalid
// option: X.
//
// maxproc bounds the service's commands at once, as it bounds spawn(8)'s
// processes, however many spawnd processes master(8) would start: spawnd
// takes it from -l (1), from -z (0: no limit but the executor's hard cap),
// or else from the service's entry in $MAIL_CONFIG/master.cf, found by -n
// and -t (- means $default_process_limit; no entry is fatal). A spawnd
// whose service has a maxproc tells master(8) it is available all its
// life, at its limit too, so that master(8) starts no second spawnd of the
// service while the first runs: connections beyond maxproc wait in the
// listen queue, as with spawn(8). Its listener cannot say otherwise: the
// executor keeps master(8)'s status channel from it. With maxproc 0,
// spawnd says it is busy at the hard cap and when it stops accepting, so
// that master(8) starts another, and reports one use (TAKEN then AVAIL)
// when it exits having served. spawnd exits non-zero only when it could
// not start or its listener failed, having reported no use: master(8)
// then throttles the service (bad command startup).
//
// spawnd exits, letting running commands finish first, when master(8) goes
// away (postfix reload: until then, new connections wait), after
// $max_idle seconds with nothing running, and after $max_use connections:
// at once with maxproc 0, else at the first moment nothing runs, as it
// keeps master(8) from starting a replacement while its commands run.
// postfix stop (SIGTERM) ends running commands too. A configuration
// change takes postfix reload.
//
// # Command attributes
//
// The words after the service's options, as for spawn(8). Names are
// matched without regard to case.
//
//   - user=NAME[:GROUP]: Required. Run the command as user NAME, with
//     NAME's primary group or, when given, GROUP. Neither may be root, be
//     mail_owner's uid or gid, or be -1.
//   - argv=COMMAND ...: Required, last. The command and its arguments, to
//     the end of the line. COMMAND must be an absolute path that resolves
//     (symbolic links followed) to an executable regular file. Postfix's
//     { ... } grouping puts whitespace in an argument.
//
// Every violation is fatal at start-up, with the file, line and service:
//
//	fatal: /etc/spawnd/master.cf: line 12: service policy: unknown attribute name: usr=nobody
//
// # Security
//
// The executor is the only process with privileges and is small enough to
// audit in one sitting; it does not link the listener's code. It never
// accepts a connection, never reads or writes client data, never parses
// anything from the network, and never changes its own uid or gid. It
// treats the listener as hostile: a request that is malformed, carries
// other than exactly one socket descriptor, names an unknown service,
// exceeds the executor's hard cap on children or carries a client that
// the service's client_access refuses is refused, its descriptors
// are closed, a warning is logged, and the listener is killed and
// restarted (in Postfix mode spawnd exits and master(8) starts another).
// Nothing the listener sends can change which program runs, with which
// arguments, as whom or for how long: all of that is fixed at start-up.
//
// The listener, which faces the network, runs as mail_owner with no
// supplementary groups, and cannot run a command or change privileges.
// Commands never run as root, as mail_owner, or with their ids, and get
// only the environment listed above.
//
// # Diagnostics
//
// Problems and transactions are logged as by Postfix daemons, one line per
// event, as $syslog_name/spawnd, with facility $syslog_facility, to syslog
// (/dev/log) or to $maillog_file; with neither, to standard error. Lines
// start with "warning: " (severity warning), "fatal: " (crit; spawnd then
// exits non-zero), or nothing (info). File records have Postfix's shape,
// "Mon DD HH:MM:SS host ident[pid]: text", host being the first label of
// myhostname (POSTLOG_HOSTNAME) or of the kernel's host name.
//
// In Postfix mode with maillog_file set, spawnd logs as every Postfix
// daemon does, through postlogd(8): datagrams to the socket master(8) names
// in POSTLOG_SERVICE, from its first line on, so that a fatal error before
// main.cf is read (an unknown option) reaches the file too, as
// $MAIL_LOGTAG/spawnd; after main.cf, as $syslog_name/spawnd (-o
// syslog_name=... counts). Neither process opens the file. Without
// maillog_file, syslog. The listener's records carry the executor's pid,
// the process master(8) knows.
//
// Abnormal ends of commands are logged as spawn(8) logs them:
//
//	warning: command /usr/local/bin/policy-server exit status 3
//	warning: command /usr/local/bin/policy-server killed by signal 9
//	warning: /usr/local/bin/policy-server: process id 1234: command time limit exceeded
//
// A command that cannot be executed (it was removed after start-up) is
// logged as
//
//	warning: command /usr/local/bin/policy-server: execvp /usr/local/bin/policy-server: No such file or directory
//	warning: command /usr/local/bin/policy-server exit status 1
//
// where spawn(8)'s child logs "fatal: spawn_comand: execvp ..." under its
// own pid before spawn(8)'s exit status line.
//
// A command that exits 0 is not logged, except with -v. Environment values
// are never logged. spawnd check writes errors and warnings to standard
// error.
//
// # Environment
//
//   - MAIL_CONFIG: In Postfix mode, the directory holding main.cf and
//     master.cf.
//   - POSTLOG_SERVICE, POSTLOG_HOSTNAME, MAIL_LOGTAG: In Postfix mode, set
//     by master(8): postlogd(8)'s socket, the host field of records, the
//     log tag before main.cf is read.
//   - MAIL_VERBOSE, MAIL_DEBUG: In Postfix mode, as -v and -D.
//   - LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES: Socket activation.
//
// # Configuration parameters
//
// Set in main.cf, with Postfix 3.7's syntax (its whole expansion grammar,
// as postconf -x resolves it: $name, ${name?{a}:{b}}, relational
// ${{a} == {b}?{x}:{y}} and the rest; time units s, m, h, d and w), or per
// service with -o name=value in master.cf. spawnd sets $service_name,
// $process_name (spawnd) and $process_id (its pid), so -o
// syslog_name=postfix/$service_name works as for any Postfix daemon.
// The client_ parameters can also be set for one service in main.cf as
// <service>_client_access and so on.
// A change takes a restart: SIGHUP in standalone mode, postfix reload
// under master(8).
//
//   - command_time_limit (1000s): The default time limit of a command.
//   - <service>_time_limit ($command_time_limit): The time limit of the
//     commands of one service; <service> is the master.cf service name, as
//     written.
//   - <service>_peer_environment (no): Give the commands of one service
//     the peer variables; -o peer_environment=yes in master.cf does the
//     same.
//   - command_cpu_limit (0): The CPU time a command may use (RLIMIT_CPU),
//     with time units; 0 is no limit.
//   - command_address_space_limit (0): The bytes of address space a
//     command may map (RLIMIT_AS); 0 is no limit.
//   - command_open_files_limit (0): The descriptors a command may have
//     open (RLIMIT_NOFILE); 0 keeps spawnd's own soft limit.
//   - command_nproc_limit (0): The processes the service's user may have
//     (RLIMIT_NPROC), counted over all of that user's processes; 0 is no
//     limit.
//   - command_file_size_limit (0): The largest file, in bytes, a command
//     may write (RLIMIT_FSIZE); as SIGXFSZ is ignored, a write past it
//     fails with EFBIG. 0 is no limit.
//   - command_no_new_privileges (no): Run the command with
//     PR_SET_NO_NEW_PRIVS: set-user-ID and set-group-ID programs and file
//     capabilities give it nothing. This breaks a command that submits
//     mail through sendmail(1), which needs postdrop(1)'s group.
//   - client_access (empty): Who may connect (see Who may connect); empty
//     lets everyone in. <service>_client_access sets it for one service.
//   - client_connection_limit (0): The commands one client may have at
//     once; 0 is no limit.
//   - client_connection_rate_limit (0): The connections one client may
//     make per client_rate_time_unit; 0 is no limit.
//   - client_rate_time_unit (60s): The unit of the rate limit, with time
//     units.
//   - default_process_limit (100): The concurrency limit of a service
//     whose maxproc column is -, in both modes.
//   - export_environment (TZ MAIL_CONFIG LANG): The names of the variables
//     passed from spawnd's environment to commands.
//   - mail_owner (postfix): The user the listener runs as.
//   - maillog_file (empty): When set, log to this file (or /dev/stdout or
//     /dev/stderr) instead of syslog. Standalone, the executor opens it as
//     root, as Postfix's safe_open does: never through a symlink, and only
//     a regular file with one link, owned by root; in Postfix mode,
//     postlogd(8) writes it.
//   - max_idle (100s): In Postfix mode, exit after this long with nothing
//     running.
//   - max_use (100): In Postfix mode, exit after this many connections
//     (with a maxproc, once nothing runs).
//   - queue_directory (/var/spool/postfix): The base of relative unix
//     socket names, and the commands' working directory.
//   - syslog_facility (mail): The syslog facility.
//   - multi_instance_name (empty): The Postfix instance's name, the
//     default syslog_name when set.
//   - syslog_name (${multi_instance_name?{$multi_instance_name}:{postfix}}): The
//     first part of the log ident, $syslog_name/spawnd.
//
// # Files
//
//   - /etc/spawnd/main.cf, /etc/spawnd/master.cf: Standalone configuration.
//   - /etc/postfix/main.cf, /etc/postfix/master.cf: Postfix mode.
//   - $daemon_directory/spawnd, $daemon_directory/spawnd-listener: Where
//     master(8) runs them.
//   - $queue_directory/private/, $queue_directory/public/: UNIX sockets.
//   - /dev/log: The syslog socket.
//   - spawnd.service, spawnd.socket: The systemd units.
//
// # See also
//
// spawnd-listener(8), the listener; spawn(8), the Postfix program spawnd
// replaces; master(5), master(8), postconf(5), syslogd(8),
// systemd.socket(5), sd_listen_fds(3).
package main
