package policy

import "time"

// Policy is the immutable result of loading a configuration: the parameters
// spawnd itself uses and every service it runs. Nothing changes it after
// Load returns; a new configuration takes a new process.
type Policy struct {
	MailOwner Account // the listener's user (mail_owner)

	SyslogName     string        // syslog_name
	SyslogFacility int           // syslog_facility, as syslog(3) numbers it
	MaillogFile    string        // maillog_file; empty means syslog
	QueueDirectory string        // queue_directory
	MaxUse         int           // max_use (Postfix mode)
	MaxIdle        time.Duration // max_idle (Postfix mode)

	Services []*Service // in master.cf order; the index is the wire service id

	// Warnings are problems that do not stop spawnd, such as a private
	// socket directory open to other users. spawnd check prints them.
	Warnings []string

	defaultLimit int // default_process_limit
}

// Account is a resolved user: name, uid and gid.
type Account struct {
	Name     string
	Uid, Gid uint32
}

// Endpoint types, as in master.cf's second column. Pass occurs only in
// Postfix mode (master(8) passes connections over a unix socket).
const (
	Inet = "inet"
	Unix = "unix"
	Pass = "pass"
)

// Endpoint is where a service listens.
type Endpoint struct {
	Type string // Inet or Unix
	// Address is "host:port" for Inet (net.JoinHostPort: host empty for
	// all addresses, "[::1]:port" for IPv6) and an absolute path for
	// Unix. It is empty in Postfix mode, where master(8) owns the socket.
	Address string
	Private bool // master.cf private column
}

// Service is one spawn service: what runs, as whom, for how long, how many
// at once.
type Service struct {
	Name string // master.cf first column as written; the -n value in Postfix mode
	File string // file and line the service was defined at, for messages
	Line int

	Endpoint Endpoint

	// Argv is the command exactly as configured; Argv[0] is an absolute
	// path that resolved to an executable regular file at load time.
	Argv []string

	User, Group string // user= name, and group name (the primary group when none was given)
	Uid, Gid    uint32
	Groups      []uint32 // supplementary groups the command gets: exactly [Gid]

	TimeLimit    time.Duration // <service>_time_limit, default $command_time_limit
	ProcessLimit int           // maxproc column; 0 means only the executor's hard cap

	// Env is the command's environment: the export_environment names
	// taken from spawnd's environment at load time, then PATH=/usr/bin:/bin.
	Env []string

	// PeerEnvironment adds UCSPI-style peer variables per connection
	// (<service>_peer_environment or -o peer_environment=yes).
	PeerEnvironment bool

	// Access is client_access: who may connect. ClientLimit is
	// client_connection_limit (commands at once per client), RateLimit
	// client_connection_rate_limit (connections per client per RateUnit,
	// client_rate_time_unit); 0: no limit.
	Access                 Access
	ClientLimit, RateLimit int
	RateUnit               time.Duration

	// Limits are the command's resource limits and no_new_privileges,
	// all off by default as in spawn(8).
	Limits Limits

	// Dir is the command's working directory: queue_directory, or "/"
	// when that does not exist.
	Dir string
}

// Limits are what the command_*_limit and command_no_new_privileges
// parameters ask for; a zero field sets nothing. The command gets each
// limit as both its soft and its hard limit, or its inherited hard limit
// when that is lower.
type Limits struct {
	CPU             uint64 // command_cpu_limit: RLIMIT_CPU, seconds
	AddressSpace    uint64 // command_address_space_limit: RLIMIT_AS, bytes
	OpenFiles       uint64 // command_open_files_limit: RLIMIT_NOFILE
	Processes       uint64 // command_nproc_limit: RLIMIT_NPROC, processes of the user
	FileSize        uint64 // command_file_size_limit: RLIMIT_FSIZE, bytes
	NoNewPrivileges bool   // command_no_new_privileges: PR_SET_NO_NEW_PRIVS
}
