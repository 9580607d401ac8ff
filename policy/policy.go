// Package policy loads and validates spawnd's configuration: main.cf and
// master.cf in Postfix's syntax, and the spawn attributes user= and argv=.
// The result is immutable. User and group names are looked up with the C
// library (os/user built with cgo), so NSS sources work as they do for
// Postfix's getpwnam and getgrnam.
package policy

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Error is one configuration error, with where it was found.
type Error struct {
	File    string
	Line    int
	Service string
	Msg     string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Service != "" {
		b.WriteString("service " + e.Service + ": ")
	}
	return b.String() + e.Msg
}

// ErrorList is every error a configuration has, sorted by file and line.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Lookup resolves user and group names as getpwnam and getgrnam do.
type Lookup interface {
	User(name string) (uid, gid uint32, err error)
	Group(name string) (gid uint32, err error)
	GroupName(gid uint32) string
}

type osLookup struct{}

func (osLookup) User(name string) (uint32, uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad ids %s:%s", u.Uid, u.Gid)
	}
	return uint32(uid), uint32(gid), nil
}

func (osLookup) Group(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(gid), err
}

func (osLookup) GroupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}

// Accounts is the Lookup Load and LoadDaemon use; tests replace it.
var Accounts Lookup = osLookup{}

var defaults = map[string]string{
	"mail_owner":            "postfix",
	"command_time_limit":    "1000s",
	"default_process_limit": "100",
	"syslog_name":           "postfix",
	"syslog_facility":       "mail",
	"maillog_file":          "",
	"queue_directory":       "/var/spool/postfix",
	"max_use":               "100",
	"max_idle":              "100s",
	"export_environment":    "TZ MAIL_CONFIG LANG",
}

// params is main.cf with Postfix's defaults under it and -o overrides
// over it, expanded on use.
type params struct {
	raw  map[string]string
	over map[string]string
	file string
	line map[string]int
	errs *ErrorList
}

func (p *params) add(e *Error) { *p.errs = append(*p.errs, e) }

func (p *params) lookup(name string) (string, bool) {
	if v, ok := p.over[name]; ok {
		return v, true
	}
	if v, ok := p.raw[name]; ok {
		return v, true
	}
	v, ok := defaults[name]
	return v, ok
}

// get returns a parameter with $name, ${name}, ${name?text} and
// ${name:text} expanded.
func (p *params) get(name string) string {
	v, _ := p.lookup(name)
	out, err := p.expand(v, map[string]bool{name: true})
	if err != nil {
		p.add(&Error{File: p.file, Line: p.line[name], Msg: "parameter " + name + ": " + err.Error()})
	}
	return out
}

func (p *params) expand(v string, active map[string]bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '$' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		var name, op, text string
		if v[i+1] == '{' {
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("missing '}' in %q", v)
			}
			inner := v[i+2 : i+end]
			i += end
			name = inner
			if k := strings.IndexAny(inner, "?:"); k >= 0 {
				name, op, text = inner[:k], inner[k:k+1], inner[k+1:]
			}
		} else {
			j := i + 1
			for j < len(v) && (v[j] == '_' || v[j] >= 'a' && v[j] <= 'z' || v[j] >= 'A' && v[j] <= 'Z' || v[j] >= '0' && v[j] <= '9') {
				j++
			}
			if j == i+1 {
				b.WriteByte('$')
				continue
			}
			name = v[i+1 : j]
			i = j - 1
		}
		if active[name] {
			return "", fmt.Errorf("expansion loop through $%s", name)
		}
		raw, _ := p.lookup(name)
		active[name] = true
		val, err := p.expand(raw, active)
		delete(active, name)
		if err != nil {
			return "", err
		}
		switch op {
		case "?":
			if val != "" {
				val, err = p.expand(text, active)
			}
		case ":":
			if val == "" {
				val, err = p.expand(text, active)
			} else {
				val = ""
			}
		}
		if err != nil {
			return "", err
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

// duration converts a Postfix time value: digits and an optional unit
// s, m, h, d or w (only its first letter counts); at least one second.
func (p *params) duration(name string) time.Duration {
	v := p.get(name)
	n := 0
	for n < len(v) && v[n] >= '0' && v[n] <= '9' {
		n++
	}
	num, err := strconv.ParseInt(v[:n], 10, 32)
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	mult := time.Second
	if n < len(v) {
		mult = unit[v[n]]
	}
	if err != nil || mult == 0 || num < 1 {
		p.add(&Error{File: p.file, Line: p.line[name], Msg: fmt.Sprintf("parameter %s: bad time value or unit: %s", name, v)})
		return time.Second
	}
	return time.Duration(num) * mult
}

func (p *params) integer(name string) int {
	v := p.get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		p.add(&Error{File: p.file, Line: p.line[name], Msg: fmt.Sprintf("parameter %s: bad numerical value: %s", name, v)})
	}
	return n
}

// logical joins continuation lines (leading white space) to the line they
// continue and drops comments and blank lines; it returns each logical
// line with the number of its first physical line.
func logical(text string) (lines []string, nums []int) {
	for i, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == "" || t[0] == '#':
		case (l[0] == ' ' || l[0] == '\t') && len(lines) > 0:
			lines[len(lines)-1] += " " + t
		default:
			lines, nums = append(lines, t), append(nums, i+1)
		}
	}
	return lines, nums
}

// parseMainCF reads main.cf text into name = value pairs.
func parseMainCF(file, text string, errs *ErrorList) *params {
	p := &params{raw: map[string]string{}, over: map[string]string{}, file: file, line: map[string]int{}, errs: errs}
	lines, nums := logical(text)
	for i, l := range lines {
		name, value, ok := strings.Cut(l, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			p.add(&Error{File: file, Line: nums[i], Msg: fmt.Sprintf("missing '=' after parameter name: %q", l)})
			continue
		}
		p.raw[name] = strings.TrimSpace(value)
		p.line[name] = nums[i]
	}
	return p
}

func readMainCF(dir string, errs *ErrorList) *params {
	file := filepath.Join(dir, "main.cf")
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		*errs = append(*errs, &Error{File: file, Msg: err.Error()})
	}
	return parseMainCF(file, string(b), errs)
}

// fields splits a master.cf line into words, { ... } groups as one word.
func fields(l string) []string {
	var out []string
	for l = strings.TrimSpace(l); l != ""; l = strings.TrimSpace(l) {
		if l[0] == '{' {
			if end := strings.IndexByte(l, '}'); end > 0 {
				out = append(out, strings.TrimSpace(l[1:end]))
				l = l[end+1:]
				continue
			}
		}
		end := strings.IndexAny(l, " \t")
		if end < 0 {
			end = len(l)
		}
		out = append(out, l[:end])
		l = l[end:]
	}
	return out
}

// entry is one spawn line of master.cf.
type entry struct {
	line                     int
	name, typ, private, proc string
	words                    []string // after the command name
}

func parseMasterCF(file, text string, errs *ErrorList) []entry {
	var out []entry
	seen := map[string]bool{}
	lines, nums := logical(text)
	for i, l := range lines {
		f := fields(l)
		if len(f) < 8 {
			*errs = append(*errs, &Error{File: file, Line: nums[i], Msg: fmt.Sprintf("bad field count: %d fields, want at least 8", len(f))})
			continue
		}
		if cmd := filepath.Base(f[7]); cmd != "spawn" && cmd != "spawnd" {
			continue
		}
		e := entry{line: nums[i], name: f[0], typ: f[1], private: f[2], proc: f[6], words: f[8:]}
		add := func(msg string) { *errs = append(*errs, &Error{File: file, Line: e.line, Service: e.name, Msg: msg}) }
		if seen[e.name+"/"+e.typ] {
			add("duplicate service definition")
		}
		seen[e.name+"/"+e.typ] = true
		if f[3] != "n" {
			add("requires privileged operation: the unpriv column must be n")
		}
		if f[4] == "y" {
			add("chroot is not supported: the chroot column must be n")
		}
		out = append(out, e)
	}
	return out
}

// Load reads DIR/main.cf (absent: defaults) and DIR/master.cf, keeps the
// services whose command is spawn or spawnd, and validates everything. It
// returns the policy, or an ErrorList with every error found.
func Load(dir string, env []string) (*Policy, error) {
	var errs ErrorList
	p := readMainCF(dir, &errs)
	file := filepath.Join(dir, "master.cf")
	b, err := os.ReadFile(file)
	if err != nil {
		errs = append(errs, &Error{File: file, Msg: err.Error()})
	}
	pol := p.global(dir)
	for _, e := range parseMasterCF(file, string(b), &errs) {
		s := p.service(pol, env, &Error{File: file, Line: e.line, Service: e.name}, e.name, e.words)
		if s == nil {
			continue
		}
		s.Endpoint, err = endpoint(e.typ, e.name, e.private, pol.QueueDirectory)
		limit := pol.defaultLimit
		if e.proc != "-" {
			limit, err = strconv.Atoi(e.proc)
			if err != nil || limit < 0 {
				err = fmt.Errorf("bad maxproc field: %s", e.proc)
			}
		}
		s.ProcessLimit = limit
		if err != nil {
			errs = append(errs, &Error{File: file, Line: e.line, Service: e.name, Msg: err.Error()})
			continue
		}
		if s.Endpoint.Type == Unix && s.Endpoint.Private {
			d := filepath.Dir(s.Endpoint.Address)
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o077 != 0 {
				pol.Warnings = append(pol.Warnings, fmt.Sprintf("%s: line %d: service %s: socket directory %s is open to other users (mode %#o)", file, e.line, e.name, d, st.Mode().Perm()))
			}
		}
		pol.Services = append(pol.Services, s)
	}
	return pol, errs.sorted()
}

// LoadDaemon loads the policy of one service started by Postfix's
// master(8): main.cf from configDir, the service's attributes and -o
// overrides from the command line. master(8) owns the socket; the
// endpoint has only its type.
func LoadDaemon(configDir string, a *DaemonArgs, env []string) (*Policy, error) {
	var errs ErrorList
	p := readMainCF(configDir, &errs)
	name := a.Service
	if name == "" {
		name = "spawnd"
	}
	for _, o := range a.Overrides {
		k, v, _ := strings.Cut(o, "=")
		p.over[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if a.MaxIdle != "" {
		p.over["max_idle"] = a.MaxIdle
	}
	if a.MaxUse != "" {
		p.over["max_use"] = a.MaxUse
	}
	pol := p.global(configDir)
	if s := p.service(pol, env, &Error{File: "command line", Service: name}, name, a.Attrs); s != nil {
		s.Endpoint = Endpoint{Type: a.Transport}
		s.ProcessLimit = pol.defaultLimit
		pol.Services = append(pol.Services, s)
	}
	return pol, errs.sorted()
}

func (l ErrorList) sorted() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		return l[i].Line < l[j].Line
	})
	return l
}

// global resolves the parameters spawnd itself uses.
func (p *params) global(dir string) *Policy {
	pol := &Policy{ConfigDir: dir, SyslogName: p.get("syslog_name"), SyslogFacility: p.get("syslog_facility"),
		MaillogFile: p.get("maillog_file"), QueueDirectory: p.get("queue_directory"),
		MaxUse: p.integer("max_use"), MaxIdle: p.duration("max_idle"), defaultLimit: p.integer("default_process_limit")}
	owner := p.get("mail_owner")
	uid, gid, err := Accounts.User(owner)
	if err != nil {
		p.add(&Error{File: p.file, Line: p.line["mail_owner"], Msg: "unknown mail_owner: " + owner})
	}
	pol.MailOwner = Account{Name: owner, Uid: uid, Gid: gid}
	return pol
}

// service checks one service's options and attributes (words after the
// command name) and resolves everything the command will get. It reports
// errors at pos and returns nil when there were any.
func (p *params) service(pol *Policy, env []string, pos *Error, name string, words []string) *Service {
	n := len(*p.errs)
	add := func(format string, a ...any) {
		e := *pos
		e.Msg = fmt.Sprintf(format, a...)
		p.add(&e)
	}
	over := map[string]string{}
	for len(words) > 0 && strings.HasPrefix(words[0], "-") {
		w := words[0]
		words = words[1:]
		switch {
		case w == "-o" && len(words) > 0:
			w, words = "-o"+words[0], words[1:]
			fallthrough
		case strings.HasPrefix(w, "-o"):
			k, v, ok := strings.Cut(w[2:], "=")
			if !ok {
				add("invalid \"-o %s\" option value", w[2:])
			}
			over[strings.TrimSpace(k)] = strings.TrimSpace(v)
		case w == "-v":
		default:
			add("invalid option: %s", w)
		}
	}
	saved := p.over
	p.over = map[string]string{}
	for k, v := range saved {
		p.over[k] = v
	}
	for k, v := range over {
		p.over[k] = v
	}
	defer func() { p.over = saved }()
	s := &Service{Name: name, File: pos.File, Line: pos.Line, Params: over}
	var userSpec string
	for i, w := range words {
		key, val, _ := strings.Cut(w, "=")
		switch strings.ToLower(key) {
		case "user":
			userSpec = val
			continue
		case "argv":
			s.Argv = append([]string{val}, words[i+1:]...)
		default:
			add("unknown attribute name: %s", w)
			continue
		}
		break
	}
	if userSpec == "" {
		add("missing user= attribute")
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		add("missing argv= attribute")
	}
	if userSpec != "" {
		uname, gname, _ := strings.Cut(userSpec, ":")
		uid, gid, err := Accounts.User(uname)
		if err != nil {
			add("unknown user name: %s", uname)
		} else if gname != "" {
			if gid, err = Accounts.Group(gname); err != nil {
				add("unknown group name: %s", gname)
			}
		}
		if err == nil {
			s.User, s.Uid, s.Gid, s.Groups = uname, uid, gid, []uint32{gid}
			s.Group = gname
			if gname == "" {
				s.Group = Accounts.GroupName(gid)
			}
			switch {
			case uid == 0:
				add("request to deliver as root")
			case uid == ^uint32(0):
				add("user must not have user ID -1")
			case uid == pol.MailOwner.Uid:
				add("request to deliver as mail system owner")
			}
			switch {
			case gid == 0:
				add("request to use privileged group id %d", gid)
			case gid == ^uint32(0):
				add("user must not have group ID -1")
			case gid == pol.MailOwner.Gid:
				add("request to use mail system owner group id %d", gid)
			}
		}
	}
	if len(s.Argv) > 0 && s.Argv[0] != "" {
		if msg := checkCommand(s.Argv[0]); msg != "" {
			add("command %s: %s", s.Argv[0], msg)
		}
	}
	if _, ok := p.lookup(name + "_time_limit"); ok {
		s.TimeLimit = p.duration(name + "_time_limit")
	} else {
		s.TimeLimit = p.duration("command_time_limit")
	}
	s.PeerEnvironment = yes(p.get(name+"_peer_environment")) || yes(over["peer_environment"])
	s.Env = exportEnv(p.get("export_environment"), env)
	s.Dir = "/"
	if st, err := os.Stat(pol.QueueDirectory); err == nil && st.IsDir() {
		s.Dir = pol.QueueDirectory
	}
	if len(*p.errs) > n {
		return nil
	}
	return s
}

func yes(v string) bool { return strings.EqualFold(v, "yes") || strings.EqualFold(v, "true") }

// checkCommand says what is wrong with argv[0], or "".
func checkCommand(path string) string {
	if !filepath.IsAbs(path) {
		return "not an absolute path"
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return "no such file"
	case !st.Mode().IsRegular():
		return "not a regular file"
	case st.Mode().Perm()&0o111 == 0:
		return "not executable"
	}
	return ""
}

// exportEnv is the command's environment: export_environment's NAME=VALUE
// entries as written, its bare names with their values in env, and
// PATH=/usr/bin:/bin last, as spawn(8) forces it.
func exportEnv(list string, env []string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(list, func(r rune) bool { return strings.ContainsRune(" ,\t\r\n", r) }) {
		if strings.HasPrefix(w, "PATH=") || w == "PATH" {
			continue
		}
		if strings.Contains(w, "=") {
			out = append(out, w)
			continue
		}
		for _, kv := range env {
			if strings.HasPrefix(kv, w+"=") {
				out = append(out, kv)
				break
			}
		}
	}
	return append(out, "PATH=/usr/bin:/bin")
}

// endpoint resolves master.cf's service name into where it listens.
func endpoint(typ, name, private, queue string) (Endpoint, error) {
	ep := Endpoint{Type: typ, Private: private != "n"}
	switch typ {
	case Inet:
		host, port := "", name
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			host, port = strings.Trim(name[:i], "[]"), name[i+1:]
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			if n, err = net.LookupPort("tcp", port); err != nil {
				return ep, fmt.Errorf("bad port: %s", name)
			}
		}
		if n < 1 || n > 65535 {
			return ep, fmt.Errorf("bad port: %s", name)
		}
		ep.Address = net.JoinHostPort(host, strconv.Itoa(n))
	case Unix:
		ep.Address = name
		if !filepath.IsAbs(name) {
			sub := "private"
			if !ep.Private {
				sub = "public"
			}
			ep.Address = filepath.Join(queue, sub, name)
		}
	default:
		return ep, fmt.Errorf("unsupported service type: %s", typ)
	}
	return ep, nil
}
