package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtures are the accounts the table tests see instead of the system's.
type fixtures struct{}

var users = map[string][2]uint32{
	"root": {0, 0}, "postfix": {100, 101}, "nobody": {65534, 65534},
	"minus": {^uint32(0), 5}, "gminus": {7, ^uint32(0)}, "wheel": {8, 0}, "pfgroup": {9, 101},
}
var groups = map[string]uint32{"nogroup": 65534, "staff": 50, "root": 0}

func (fixtures) User(name string) (uint32, uint32, error) {
	u, ok := users[name]
	if !ok {
		return 0, 0, errors.New("unknown")
	}
	return u[0], u[1], nil
}

func (fixtures) Group(name string) (uint32, error) {
	g, ok := groups[name]
	if !ok {
		return 0, errors.New("unknown")
	}
	return g, nil
}

func (fixtures) GroupName(gid uint32) string {
	for n, g := range groups {
		if g == gid {
			return n
		}
	}
	return "?"
}

func load(t *testing.T, mainCF, masterCF string) (*Policy, error) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCF), 0o644)
	saved := Accounts
	Accounts = fixtures{}
	defer func() { Accounts = saved }()
	return Load(dir, []string{"TZ=UTC", "LANG=C", "SECRET=x", "PATH=/sbin"})
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644)
	const svc = "p unix - n n - - spawnd "
	for _, tc := range []struct{ name, main, master, want string }{
		{"unknown attribute", "", svc + "usr=nobody argv=/bin/true", "line 1: service p: unknown attribute name: usr=nobody"},
		{"missing user", "", svc + "argv=/bin/true", "service p: missing user= attribute"},
		{"missing argv", "", svc + "user=nobody", "service p: missing argv= attribute"},
		{"unknown user", "", svc + "user=nosuch argv=/bin/true", "unknown user name: nosuch"},
		{"unknown group", "", svc + "user=nobody:nosuch argv=/bin/true", "unknown group name: nosuch"},
		{"uid 0", "", svc + "user=root argv=/bin/true", "request to deliver as root"},
		{"gid 0", "", svc + "user=wheel argv=/bin/true", "request to use privileged group id 0"},
		{"group 0", "", svc + "user=nobody:root argv=/bin/true", "request to use privileged group id 0"},
		{"mail owner uid", "", svc + "user=postfix argv=/bin/true", "request to deliver as mail system owner"},
		{"mail owner gid", "", svc + "user=pfgroup argv=/bin/true", "request to use mail system owner group id 101"},
		{"uid -1", "", svc + "user=minus argv=/bin/true", "user must not have user ID -1"},
		{"gid -1", "", svc + "user=gminus argv=/bin/true", "user must not have group ID -1"},
		{"unknown mail_owner", "mail_owner = nosuch", svc + "user=nobody argv=/bin/true", "main.cf: line 1: unknown mail_owner: nosuch"},
		{"relative command", "", svc + "user=nobody argv=true", "command true: not an absolute path"},
		{"missing command", "", svc + "user=nobody argv=/no/such", "command /no/such: no such file"},
		{"directory command", "", svc + "user=nobody argv=" + dir + "/d", "not a regular file"},
		{"not executable", "", svc + "user=nobody argv=" + dir + "/noexec", "not executable"},
		{"bad time", "command_time_limit = 10x", svc + "user=nobody argv=/bin/true", "main.cf: line 1: parameter command_time_limit: bad time value or unit: 10x"},
		{"bad service time", "p_time_limit = soon", svc + "user=nobody argv=/bin/true", "parameter p_time_limit: bad time value or unit: soon"},
		{"too few fields", "", "p unix - n n - spawnd", "line 1: bad field count"},
		{"duplicate", "", svc + "user=nobody argv=/bin/true\n" + svc + "user=nobody argv=/bin/true", "line 2: service p: duplicate service definition"},
		{"expansion loop", "a = $b\nb = ${a}\ncommand_time_limit = $a", svc + "user=nobody argv=/bin/true", "expansion loop"},
		{"unpriv y", "", "p unix - y n - - spawnd user=nobody argv=/bin/true", "requires privileged operation"},
		{"unknown option", "", svc + "-x user=nobody argv=/bin/true", "invalid option: -x"},
		{"bad type", "", "p fifo - n n - - spawnd user=nobody argv=/bin/true", "unsupported service type: fifo"},
		{"bad port", "", "nope:99999 inet - n n - - spawnd user=nobody argv=/bin/true", "bad port"},
	} {
		_, err := load(t, tc.main, tc.master)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCollectsAllErrors(t *testing.T) {
	_, err := load(t, "", "a unix - n n - - spawnd user=root argv=/bin/true\nb unix - n n - - spawnd user=nobody\n")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 3 || list[0].Line != 1 || list[1].Line != 1 || list[2].Line != 2 {
		t.Fatalf("got %v, want uid 0 and gid 0 on line 1 and missing argv on line 2", err)
	}
}

func TestResolve(t *testing.T) {
	p, err := load(t, `
# comment
queue_directory = /nonexistent
base = 7
command_time_limit = ${base}m
x_time_limit = 2h
export_environment = TZ, LANG
  MISSING PATH=/evil
  FOO=bar
default_process_limit = ${unset:42}
`, `# header
127.0.0.1:25 inet n n n - 0 spawnd user=nobody argv=/bin/echo { hello world } end
x unix - n n - - spawn
  -o peer_environment=yes
  user=nobody:staff argv=/bin/true
[::1]:26 inet n n n - 3 spawnd -o command_time_limit=5 user=nobody argv=/bin/true
8025 inet n n n - - spawnd user=nobody argv=/bin/true
/run/x.sock unix n n n - - spawnd user=nobody argv=/bin/true
y unix n n n - - spawnd user=nobody argv=/bin/true
other unix - n n - - smtpd
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Services) != 6 {
		t.Fatalf("%d services, want 6 (smtpd ignored)", len(p.Services))
	}
	s := p.Services
	want := []struct {
		addr    string
		private bool
		limit   int
		timeout time.Duration
		argv    string
		group   string
		peer    bool
	}{
		{"127.0.0.1:25", false, 0, 7 * time.Minute, "/bin/echo|hello world|end", "nogroup", false},
		{"/nonexistent/private/x", true, 42, 2 * time.Hour, "/bin/true", "staff", true},
		{"[::1]:26", false, 3, 5 * time.Second, "/bin/true", "nogroup", false},
		{":8025", false, 42, 7 * time.Minute, "/bin/true", "nogroup", false},
		{"/run/x.sock", false, 42, 7 * time.Minute, "/bin/true", "nogroup", false},
		{"/nonexistent/public/y", false, 42, 7 * time.Minute, "/bin/true", "nogroup", false},
	}
	for i, w := range want {
		got := s[i]
		if got.Endpoint.Address != w.addr || got.Endpoint.Private != w.private || got.ProcessLimit != w.limit ||
			got.TimeLimit != w.timeout || strings.Join(got.Argv, "|") != w.argv || got.Group != w.group || got.PeerEnvironment != w.peer {
			t.Errorf("service %d: %+v, want %+v", i, got, w)
		}
	}
	if env := strings.Join(s[0].Env, " "); env != "TZ=UTC LANG=C FOO=bar PATH=/usr/bin:/bin" {
		t.Errorf("env %q", env)
	}
	if s[1].Uid != 65534 || s[1].Gid != 50 || len(s[1].Groups) != 1 || s[1].Groups[0] != 50 || s[1].Dir != "/" {
		t.Errorf("credentials/dir %+v", s[1])
	}
}

func TestParseDaemonArgs(t *testing.T) {
	a, err := ParseDaemonArgs([]string{"-l", "-n", "policy", "-t", "unix", "-ov=1", "-o", "policy_time_limit=5", "-s", "2", "-vv", "-c", "user=nobody", "argv=/bin/true", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Service != "policy" || a.Transport != "unix" || a.Sockets != 2 || a.Verbose != 2 || !a.Chroot || !a.Alone ||
		strings.Join(a.Overrides, ",") != "v=1,policy_time_limit=5" || strings.Join(a.Attrs, " ") != "user=nobody argv=/bin/true -x" {
		t.Fatalf("%+v", a)
	}
	for _, bad := range [][]string{{"-q"}, {"-s", "0"}, {"-n"}, {"-o", "novalue"}} {
		if _, err := ParseDaemonArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRealAccounts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("mail_owner = daemon\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte("p unix - n n - - spawnd user=nobody argv=/bin/true\nq unix - n n - - spawnd user=root argv=/bin/true\n"), 0o644)
	_, err := Load(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "service q: request to deliver as root") || strings.Contains(err.Error(), "service p") {
		t.Fatalf("got %v", err)
	}
}

func FuzzMainCF(f *testing.F) {
	f.Add("a = $b\nb = ${c?x}${d:y}\n  continued\n# c\nx = ${")
	f.Add("command_time_limit = 10w\n")
	f.Fuzz(func(t *testing.T, text string) {
		var errs ErrorList
		p := parseMainCF("main.cf", text, &errs)
		for name := range p.raw {
			p.get(name)
		}
		p.duration("command_time_limit")
	})
}

func FuzzMasterCF(f *testing.F) {
	f.Add("a unix - n n - - spawnd -o x=y user=nobody argv=/bin/sh -c { echo hi }\n  more\n")
	f.Add("[::1]:25 inet n n n - 0 spawn user=x:y argv=/x\n")
	f.Fuzz(func(t *testing.T, text string) {
		var errs ErrorList
		for _, e := range parseMasterCF("master.cf", text, &errs) {
			endpoint(e.typ, e.name, e.private, "/q")
			p := &params{raw: map[string]string{}, over: map[string]string{}, line: map[string]int{}, errs: &errs}
			saved := Accounts
			Accounts = fixtures{}
			p.service(&Policy{}, nil, &Error{}, e.name, e.words)
			Accounts = saved
		}
	})
}
