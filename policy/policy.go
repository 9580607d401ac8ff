// Package policy loads and validates spawnd's configuration: main.cf and
// master.cf in Postfix's syntax, or a Postfix master(8) command line, and
// the spawn(8) attributes user= and argv=. The result is an immutable
// Policy, or an ErrorList with every error found and where.
//
// Users and groups are looked up with os/user, which spawnd builds with
// cgo (the Makefile sets CGO_ENABLED=1): it then calls the C library's
// getpwnam_r and getgrnam_r, so NSS sources (LDAP, sssd, systemd's
// dynamic users) work as they do for Postfix's getpwnam and getgrnam.
// Built without cgo, os/user reads only /etc/passwd and /etc/group.
//
// The package opens no socket, starts no process and logs nothing.
package policy

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is one configuration error, with where it was found. It prints
// in Postfix's shape: "FILE: line N: service NAME: MSG".
type Error struct {
	File    string
	Line    int // 0 when the error has no line, such as a default value's
	Service string
	Msg     string
}

// Error returns e as Postfix prints a configuration error.
func (e *Error) Error() string {
	s := e.Msg
	if e.Service != "" {
		s = "service " + e.Service + ": " + s
	}
	if e.Line > 0 {
		s = "line " + strconv.Itoa(e.Line) + ": " + s
	}
	if e.File != "" {
		s = e.File + ": " + s
	}
	return s
}

// ErrorList is every error a configuration has, sorted by file and line,
// each reported once.
type ErrorList []*Error

// Error returns the errors one per line.
func (l ErrorList) Error() string {
	return joined(len(l), "\n", func(i int) string { return l[i].Error() })
}

// joined returns f(0), ..., f(n-1) separated by sep.
func joined(n int, sep string, f func(int) string) string {
	s := make([]string, n)
	for i := range s {
		s[i] = f(i)
	}
	return strings.Join(s, sep)
}

// accounts resolves names as getpwnam and getgrnam do; tests pass fixtures.
type accounts interface {
	User(name string) (uid, gid uint32, err error)
	Group(name string) (gid uint32, err error)
	GroupName(gid uint32) string // the name of gid, or the number
}

type osAccounts struct{}

func (osAccounts) User(name string) (uint32, uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	return uint32(uid), uint32(gid), errors.Join(err1, err2)
}

func (osAccounts) Group(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(gid), err
}

func (osAccounts) GroupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

// defaults are Postfix's defaults of the parameters spawnd uses.
var defaults = map[string]string{
	"mail_owner": "postfix", "command_time_limit": "1000s", "default_process_limit": "100",
	"syslog_name": "${multi_instance_name?{$multi_instance_name}:{postfix}}", "multi_instance_name": "",
	"syslog_facility": "mail", "maillog_file": "", "queue_directory": "/var/spool/postfix",
	"max_use": "100", "max_idle": "100s", "export_environment": "TZ MAIL_CONFIG LANG",

	// spawnd's own: the command's resource limits, 0 (none) by default,
	// and who may connect and how much (access.go).
	"command_cpu_limit": "0", "command_address_space_limit": "0", "command_open_files_limit": "0",
	"command_nproc_limit": "0", "command_file_size_limit": "0", "command_no_new_privileges": "no",
	"client_access": "", "client_connection_limit": "0", "client_connection_rate_limit": "0",
	"client_rate_time_unit": "60s",
}

// loader collects what one load finds.
type loader struct {
	acct     accounts
	env      []string
	errs     ErrorList
	seen     map[string]bool
	warnings []string
	ownerOK  bool // mail_owner resolved: services' ids can be compared with its
}

func newLoader(env []string, acct accounts) *loader {
	return &loader{acct: acct, env: env, seen: map[string]bool{}}
}

func (l *loader) add(pos Error, format string, a ...any) {
	pos.Msg = fmt.Sprintf(format, a...)
	if s := pos.Error(); !l.seen[s] {
		l.seen[s] = true
		l.errs = append(l.errs, &pos)
	}
}

// check is one condition that is an error, and its message.
type check struct {
	bad bool
	msg string
}

// checks reports the failed checks at pos, in order.
func (l *loader) checks(pos Error, cs ...check) {
	for _, c := range cs {
		if c.bad {
			l.add(pos, "%s", c.msg)
		}
	}
}

func (l *loader) warn(pos Error, format string, a ...any) {
	pos.Msg = fmt.Sprintf(format, a...)
	l.warnings = append(l.warnings, pos.Error())
}

// mainCF reads DIR/main.cf; a missing one is an error only when required.
func (l *loader) mainCF(dir string, required bool) *conf {
	file := filepath.Join(dir, "main.cf")
	b, err := os.ReadFile(file)
	if err != nil && (required || !errors.Is(err, fs.ErrNotExist)) {
		l.add(Error{}, "%v", err)
	}
	return l.parseMainCF(file, string(b))
}

// result returns the policy with services, or the errors sorted. With
// errors the policy has no services, but its log settings are usable.
func (l *loader) result(p *Policy, services ...*Service) (*Policy, error) {
	p.Warnings = l.warnings
	if len(l.errs) == 0 {
		p.Services = services
		return p, nil
	}
	slices.SortStableFunc(l.errs, func(a, b *Error) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return p, l.errs
}

// Load reads DIR/main.cf (absent: defaults) and DIR/master.cf, keeps the
// services whose command is spawn or spawnd, and validates everything.
// env is spawnd's environment, for export_environment. It returns the
// policy, or an ErrorList with every error found.
func Load(dir string, env []string) (*Policy, error) { return load(dir, env, osAccounts{}) }

func load(dir string, env []string, acct accounts) (*Policy, error) {
	l := newLoader(env, acct)
	c := l.mainCF(dir, false)
	p := l.global(c)
	file := filepath.Join(dir, "master.cf")
	if text, err := os.ReadFile(file); err != nil {
		l.add(Error{}, "%v", err)
	} else if services, n := l.masterCF(p, c, file, string(text)); n == 0 {
		l.add(Error{File: file}, "no service runs spawn or spawnd")
	} else {
		return l.result(p, services...)
	}
	return l.result(p)
}

// LoadDaemon loads the policy of the one service Postfix's master(8)
// started spawnd for: main.cf from dir (required, as for Postfix),
// overrides and attributes from the command line a, the service named by
// -n or else by the program's base name. master(8) owns the socket: the
// endpoint has only its type. The concurrency limit is the service's
// maxproc: 1 with -l, 0 with -z, else the column of its entry in
// dir/master.cf (the file master(8) read), "-" meaning
// default_process_limit.
func LoadDaemon(dir string, a *DaemonArgs, env []string) (*Policy, error) {
	return loadDaemon(dir, a, env, osAccounts{})
}

func loadDaemon(dir string, a *DaemonArgs, env []string, acct accounts) (*Policy, error) {
	l := newLoader(env, acct)
	pos := Error{File: filepath.Join(dir, "master.cf"), Service: cmp.Or(a.Service, filepath.Base(os.Args[0]))}
	over := l.overrides(pos, a)
	for name, v := range map[string]string{"max_idle": a.MaxIdle, "max_use": a.MaxUse} {
		if v != "" { // -i, -m
			over[name] = v
		}
	}
	c := l.mainCF(dir, true).with(over, pos)
	p := l.global(c)
	l.checks(pos, check{a.Transport == "", "no transport type specified"},
		check{a.Transport == Pass, "transport type pass is not supported: spawnd does not receive passed connections"},
		check{!slices.Contains([]string{"", Pass, Unix, Inet}, a.Transport), "unsupported transport type: " + a.Transport})
	s := l.service(c, p, pos, a.Attrs, over, a.Transport)
	s.Endpoint = Endpoint{Type: a.Transport}
	var ok bool
	if s.ProcessLimit, ok = p.processLimit(l.maxproc(pos, a)); !ok {
		l.add(pos, "no %s entry of this service with a maxproc in master.cf (changed since postfix reload?)", a.Transport)
	}
	return l.result(p, s)
}

// overrides checks a service's generic daemon options and returns its -o
// name=value overrides.
func (l *loader) overrides(pos Error, a *DaemonArgs) map[string]string {
	l.checks(pos, check{a.Unprivileged, "requires privileged operation: the unprivileged column must be n"},
		check{a.Chroot, "chroot is not supported: the chroot column must be n"},
		check{a.Single, "-S (one client on standard input) is not supported"})
	over := map[string]string{}
	for _, o := range a.Overrides {
		if k, v, msg := splitNameVal(o); msg != "" {
			l.add(pos, "invalid \"-o %s\" option value: %s", o, msg)
		} else {
			over[k] = v
		}
	}
	return over
}

// DaemonArgs is a master(8) command line, parsed as Postfix's daemon
// skeleton does with getopt "+cdDi:lm:n:o:r:s:St:uvVz": options stop at the
// first word that is not one (or after "--"), and the words left are the
// attributes.
type DaemonArgs struct {
	Service      string   // -n: the service name (master.cf column 1)
	Transport    string   // -t: unix, inet or pass
	Overrides    []string // -o name=value, in order, as written
	Sockets      int      // -s: listening sockets from fd 6 on, default 1
	Verbose      int      // -v, repeatable
	Chroot       bool     // -c: chroot to queue_directory (a flag, not a directory)
	Debug        bool     // -d: do not insist that stdin is not a terminal
	Unprivileged bool     // -u: run as mail_owner (spawnd refuses it)
	Alone        bool     // -l: maxproc is 1
	Unlimited    bool     // -z: maxproc is 0
	MaxIdle      string   // -i: overrides max_idle
	MaxUse       string   // -m: overrides max_use
	Attrs        []string // the words after the options: user=..., argv=...

	Retire    string // -r: retirement time (spawn(8) does not use it)
	DebugSelf bool   // -D: run debugger_command (spawnd warns and does not)
	Single    bool   // -S: serve one client on stdin (refused)
	Stderr    bool   // -V: also log to stderr (start-up fatals always are)
}

// ParseDaemonArgs parses args, the command line without the program name.
// An unknown option, a missing option argument (both "invalid option: X",
// as the skeleton's getopt says), or a bad -o, -r or -s value is an error
// that names it.
func ParseDaemonArgs(args []string) (*DaemonArgs, error) {
	a := &DaemonArgs{Sockets: 1}
	flags := map[byte]*bool{'c': &a.Chroot, 'd': &a.Debug, 'D': &a.DebugSelf, 'l': &a.Alone,
		'S': &a.Single, 'u': &a.Unprivileged, 'V': &a.Stderr, 'z': &a.Unlimited}
	values := map[byte]*string{'i': &a.MaxIdle, 'm': &a.MaxUse, 'n': &a.Service, 'r': &a.Retire, 't': &a.Transport}
	i := 0
	for ; i < len(args) && len(args[i]) > 1 && args[i][0] == '-' && args[i] != "--"; i++ {
		for j := 1; j < len(args[i]); j++ {
			c, val := args[i][j], args[i][j+1:]
			if c == 'v' {
				a.Verbose++
				continue
			} else if flags[c] != nil {
				*flags[c] = true
				continue
			} else if strings.IndexByte("imnorst", c) < 0 {
				return nil, fmt.Errorf("invalid option: %c", c)
			}
			if val == "" {
				if i++; i == len(args) {
					return nil, fmt.Errorf("invalid option: %c (it takes an argument)", c)
				}
				val = args[i]
			}
			n, err := strconv.Atoi(val)
			_, _, msg := splitNameVal(val)
			switch {
			case c == 'o' && msg != "":
				return nil, fmt.Errorf("invalid \"-o %s\" option value: %s", val, msg)
			case c == 'o':
				a.Overrides = append(a.Overrides, val)
			case (c == 'r' || c == 's') && (err != nil || n <= 0):
				return nil, fmt.Errorf("invalid %s: %s", map[byte]string{'r': "retirement time", 's': "socket_count"}[c], val)
			case c == 's':
				a.Sockets = n
			default:
				*values[c] = val
			}
			break
		}
	}
	if i < len(args) && args[i] == "--" {
		i++
	}
	a.Attrs = args[i:]
	return a, nil
}

// maxproc returns the service's maxproc: 1 with -l, 0 with -z, else the
// column of the last entry of master.cf (as in master(8), the last wins)
// with its name and type, or "" when there is none.
func (l *loader) maxproc(pos Error, a *DaemonArgs) string {
	if a.Alone || a.Unlimited {
		return map[bool]string{true: "1", false: "0"}[a.Alone]
	}
	text, _ := os.ReadFile(pos.File)
	v := ""
	for _, ln := range l.logical(pos.File, string(text)) {
		if w, err := words(ln.s, spaces); err == nil && len(w) > 7 && w[0] == pos.Service && w[1] == a.Transport {
			v = w[6]
		}
	}
	return v
}

// facilities are syslog_facility's values, as syslog(3) numbers them.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// global resolves the parameters spawnd itself uses.
func (l *loader) global(c *conf) *Policy {
	p := &Policy{MaxUse: c.integer("max_use", 1), MaxIdle: c.time("max_idle", 1),
		defaultLimit: c.integer("default_process_limit", 1), MaillogFile: c.path("maillog_file", true),
		QueueDirectory: c.path("queue_directory", false)}
	p.SyslogName, _ = c.str("syslog_name")
	name, _ := c.str("syslog_facility")
	var ok bool
	if p.SyslogFacility, ok = facilities[strings.ToLower(name)]; !ok {
		c.errorf("syslog_facility", "parameter syslog_facility: unrecognized value: %s", name)
	}
	owner, ok := c.str("mail_owner")
	uid, gid, err := l.acct.User(owner)
	switch {
	case !ok:
	case err != nil:
		c.errorf("mail_owner", "parameter mail_owner: unknown user name value: %s", owner)
	case uid == 0:
		c.errorf("mail_owner", "parameter mail_owner: user %s has privileged user ID", owner)
	case gid == 0:
		c.errorf("mail_owner", "parameter mail_owner: user %s has privileged group ID", owner)
	default:
		l.ownerOK = true
	}
	p.MailOwner = Account{Name: owner, Uid: uid, Gid: gid}
	return p
}

// masterColumns names master.cf's columns as Postfix's messages do.
var masterColumns = []string{"service name", "transport type", "private", "unprivileged", "chroot", "wakeup_time", "max_proc", "command"}

// masterCF returns the spawn and spawnd services of master.cf text, and
// how many lines named one or could not be read.
func (l *loader) masterCF(p *Policy, c *conf, file, text string) ([]*Service, int) {
	var out []*Service
	n, seen := 0, map[string]int{}
	for _, ln := range l.logical(file, text) {
		pos := Error{File: file, Line: ln.n}
		w, err := words(ln.s, spaces)
		if err == nil && len(w) < len(masterColumns) {
			err = fmt.Errorf("missing %q field", masterColumns[len(w)])
		}
		if err != nil {
			n++
			l.add(pos, "%v", err)
			continue
		} else if cmd := filepath.Base(w[7]); cmd != "spawn" && cmd != "spawnd" {
			continue
		}
		n, pos.Service = n+1, w[0]
		s := l.entry(p, c, pos, w)
		name, addr := w[1]+" "+w[0], w[1]+" endpoint "+s.Endpoint.Address
		if first := cmp.Or(seen[name], seen[addr]); first > 0 {
			l.add(pos, "duplicate entry for this service or endpoint, first at line %d", first)
		}
		seen[name], seen[addr] = cmp.Or(seen[name], ln.n), cmp.Or(seen[addr], ln.n)
		out = append(out, s)
	}
	return out, n
}

// entry checks the columns and words of one spawn line of master.cf.
func (l *loader) entry(p *Policy, c *conf, pos Error, w []string) *Service {
	bad := func(col int) { l.add(pos, "field %q: bad value: %q", masterColumns[col], w[col]) }
	yes := func(col int, def string) bool {
		if w[col] == "-" {
			return def == "y"
		} else if w[col] != "y" && w[col] != "n" {
			bad(col)
		}
		return w[col] == "y"
	}
	ep, err := endpoint(w[1], w[0], yes(2, "y"), p.QueueDirectory)
	if err != nil {
		l.add(pos, "%v", err)
	}
	a, err := ParseDaemonArgs(w[8:]) // reported below, after the columns
	unprivileged, chroot := yes(3, "y"), yes(4, "n")
	if w[5] != "-" && !digits(strings.TrimSuffix(w[5], "?")) {
		bad(5)
	}
	limit, ok := p.processLimit(w[6])
	if !ok {
		bad(6)
	}
	if err != nil {
		l.add(pos, "%v", err)
		return &Service{Endpoint: ep}
	}
	a.Unprivileged, a.Chroot = unprivileged || a.Unprivileged, chroot || a.Chroot
	over := l.overrides(pos, a)
	s := l.service(c.with(over, pos), p, pos, a.Attrs, over, ep.Type)
	s.Endpoint, s.ProcessLimit = ep, limit
	if dir := filepath.Dir(ep.Address); ep.Type == Unix && ep.Private {
		if st, err := os.Stat(dir); err == nil && st.Mode()&0o033 != 0 {
			l.warn(pos, "socket directory %s of a private service is open to other users (mode %04o)", dir, st.Mode().Perm())
		}
	}
	return s
}

func digits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// processLimit reads a maxproc column: decimal digits, or - for
// default_process_limit.
func (p *Policy) processLimit(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	if v == "-" {
		return p.defaultLimit, true
	}
	return n, err == nil && digits(v)
}

// endpoint resolves a master.cf service name and type into an address;
// after an error the address is the name.
func endpoint(typ, name string, private bool, queue string) (Endpoint, error) {
	ep := Endpoint{Type: typ, Private: private, Address: name}
	switch typ {
	case Inet:
		host, port := "", name
		if h, p, ok := strings.Cut(name, "]:"); ok && strings.HasPrefix(h, "[") {
			host, port = h[1:], p
		} else if i := strings.LastIndexByte(name, ':'); i >= 0 {
			host, port = name[:i], name[i+1:]
		}
		n, err := net.LookupPort("tcp", port)
		if err != nil || n < 1 || n > 65535 || strings.ContainsAny(host, "[] \t") {
			return ep, fmt.Errorf("bad inet service name %q: want [host:]port or [ipv6]:port", name)
		} else if private {
			return ep, errors.New("inet service cannot be private")
		}
		ep.Address = net.JoinHostPort(host, strconv.Itoa(n))
	case Unix:
		if !filepath.IsAbs(name) {
			ep.Address = filepath.Join(queue, map[bool]string{true: "private", false: "public"}[private], name)
		}
		if len(ep.Address) > 107 { // sun_path holds 108 bytes with the NUL
			return ep, fmt.Errorf("socket path %s is longer than 107 bytes", ep.Address)
		}
	case "fifo", "pass", "unix-dgram":
		return ep, fmt.Errorf("transport type %s is not supported standalone: use inet or unix", typ)
	default:
		return ep, fmt.Errorf("bad transport type: %s", typ)
	}
	return ep, nil
}

// service checks a service's attributes (user=, argv=) and resolves all
// its command gets, with parameters c. It reports errors at pos.
func (l *loader) service(c *conf, p *Policy, pos Error, attrs []string, over map[string]string, typ string) *Service {
	s := &Service{Name: pos.Service, File: pos.File, Line: pos.Line, Dir: "/"}
	userSeen, userOK := false, false
	for i, w := range attrs {
		key, val, ok := strings.Cut(w, "=")
		if ok && strings.EqualFold(key, "argv") {
			s.Argv = append([]string{val}, attrs[i+1:]...)
			break
		} else if !ok || !strings.EqualFold(key, "user") {
			l.add(pos, "unknown attribute name: %s", w)
			continue
		}
		var err error
		s.User, s.Group, _ = strings.Cut(val, ":")
		if s.Uid, s.Gid, err = l.acct.User(s.User); err != nil {
			l.add(pos, "unknown user name: %s", s.User)
		} else if s.Group == "" {
			s.Group = l.acct.GroupName(s.Gid)
		} else if s.Gid, err = l.acct.Group(s.Group); err != nil {
			l.add(pos, "unknown group name: %s", s.Group)
		}
		userSeen, userOK = true, err == nil
	}
	o := p.MailOwner
	l.checks(pos, // spawn(8)'s checks, in its order
		check{!userSeen, "missing user= attribute"},
		check{len(s.Argv) == 0 || s.Argv[0] == "", "missing argv= attribute"},
		check{userOK && s.Uid == 0, "request to deliver as root"},
		check{userOK && l.ownerOK && s.Uid == o.Uid, "request to deliver as mail system owner"},
		check{userOK && s.Gid == 0, "request to use privileged group id 0"},
		check{userOK && l.ownerOK && s.Gid == o.Gid, "request to use mail system owner group id " + strconv.Itoa(int(s.Gid))},
		check{userOK && s.Uid == ^uint32(0), "user must not have user ID -1"},
		check{userOK && s.Gid == ^uint32(0), "user must not have group ID -1"})
	if len(s.Argv) > 0 && s.Argv[0] != "" {
		l.checkCommand(pos, s.Argv[0])
	}
	limit, peer := pos.Service+"_time_limit", pos.Service+"_peer_environment"
	if !c.has(limit) {
		limit = "command_time_limit"
	}
	if _, ok := over["peer_environment"]; ok {
		peer = "peer_environment"
	}
	s.TimeLimit, s.PeerEnvironment = c.time(limit, 1), c.boolean(peer)
	s.Limits = Limits{
		CPU:             uint64(c.time("command_cpu_limit", 0) / time.Second),
		AddressSpace:    c.size("command_address_space_limit"),
		OpenFiles:       c.size("command_open_files_limit"),
		Processes:       c.size("command_nproc_limit"),
		FileSize:        c.size("command_file_size_limit"),
		NoNewPrivileges: c.boolean("command_no_new_privileges"),
	}
	list, _ := c.str("export_environment")
	vars, err := words(list, listSeps)
	if err != nil {
		c.errorf("export_environment", "parameter export_environment: %v", err)
	}
	s.Env, s.Groups = exportEnv(vars, l.env), []uint32{s.Gid}
	l.clients(c, s, over, typ)
	if st, err := os.Stat(p.QueueDirectory); err == nil && st.IsDir() {
		s.Dir = p.QueueDirectory
	}
	return s
}

// checkCommand requires argv[0] to be an absolute path that resolves
// (symbolic links followed) to an executable regular file.
func (l *loader) checkCommand(pos Error, path string) {
	st, err := os.Stat(path)
	if real, rerr := filepath.EvalSymlinks(path); rerr == nil && real != path {
		path += " (resolves to " + real + ")"
	}
	switch {
	case !filepath.IsAbs(path):
		l.add(pos, "command %s: not an absolute path", path)
	case err != nil:
		l.add(pos, "command %s: %v", path, errors.Unwrap(err))
	case !st.Mode().IsRegular():
		l.add(pos, "command %s: not a regular file (%v)", path, st.Mode())
	case st.Mode()&0o111 == 0:
		l.add(pos, "command %s: not executable (%v)", path, st.Mode())
	}
}

// exportEnv is the command's environment (Postfix's clean_env): list's
// NAME=VALUE entries as written, its bare names with their values in env
// when set, each name once, then PATH=/usr/bin:/bin, which spawn(8)
// always forces.
func exportEnv(list, env []string) []string {
	var out []string
	at := map[string]int{}
	for _, w := range list {
		name, _, literal := strings.Cut(w, "=")
		if !literal {
			i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
			if i < 0 {
				continue
			}
			w = env[i]
		}
		if i, ok := at[name]; ok {
			out[i] = w
		} else if name != "" && name != "PATH" {
			at[name] = len(out)
			out = append(out, w)
		}
	}
	return append(out, "PATH=/usr/bin:/bin")
}
