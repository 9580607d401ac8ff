package policy

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixtures are the accounts the table tests see instead of the system's.
type fixtures struct{}

var fixtureUsers = map[string][2]uint32{
	"root": {0, 0}, "postfix": {100, 101}, "nobody": {65534, 65534}, "daemon": {1, 1},
	"minus": {^uint32(0), 5}, "gminus": {7, ^uint32(0)}, "wheel": {8, 0},
	"pfgroup": {9, 101}, "pfuid": {100, 50},
}
var fixtureGroups = map[string]uint32{"nogroup": 65534, "staff": 50, "root": 0, "postfix": 101, "minus": ^uint32(0)}

func (fixtures) User(name string) (uint32, uint32, error) {
	u, ok := fixtureUsers[name]
	if !ok {
		return 0, 0, errors.New("unknown user")
	}
	return u[0], u[1], nil
}

func (fixtures) Group(name string) (uint32, error) {
	g, ok := fixtureGroups[name]
	if !ok {
		return 0, errors.New("unknown group")
	}
	return g, nil
}

func (fixtures) GroupName(gid uint32) string {
	for n, g := range fixtureGroups {
		if g == gid {
			return n
		}
	}
	return strconv.FormatUint(uint64(gid), 10)
}

var testEnv = []string{"TZ=UTC", "LANG=C", "SECRET=x", "PATH=/sbin", "EMPTY="}

// write creates files in a new directory; a nil content means absent.
func write(t *testing.T, files map[string]*string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if text != nil {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(*text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// loadText loads main.cf and master.cf texts with the fixture accounts.
func loadText(t *testing.T, mainCF, masterCF string) (*Policy, error, string) {
	t.Helper()
	dir := write(t, map[string]*string{"main.cf": &mainCF, "master.cf": &masterCF})
	p, err := load(dir, testEnv, fixtures{})
	return p, err, dir
}

// lines returns err's lines with dir replaced by DIR.
func lines(err error, dir string) []string {
	if err == nil {
		return nil
	}
	return strings.Split(strings.ReplaceAll(err.Error(), dir, "DIR"), "\n")
}

func one(t *testing.T, mainCF, masterCF string) *Service {
	t.Helper()
	p, err, _ := loadText(t, mainCF, masterCF)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if len(p.Services) != 1 {
		t.Fatalf("%d services, want 1", len(p.Services))
	}
	return p.Services[0]
}

// TestServiceErrors: every check of a service's attributes and columns,
// with exactly the messages spawnd check prints.
func TestServiceErrors(t *testing.T) {
	files := t.TempDir()
	os.Mkdir(filepath.Join(files, "d"), 0o755)
	os.WriteFile(filepath.Join(files, "noexec"), nil, 0o644)
	os.Symlink("/nonexistent", filepath.Join(files, "dangling"))
	os.Symlink(filepath.Join(files, "d"), filepath.Join(files, "dirlink"))
	const p = "p unix - n n - - spawnd "
	const at = "DIR/master.cf: line 1: service p: "
	for _, tc := range []struct{ name, main, master string }{
		{"unknown attribute", "", p + "usr=nobody user=nobody argv=/bin/true"},
		{"word without =", "", p + "nobody user=nobody argv=/bin/true"},
		{"missing user", "", p + "argv=/bin/true"},
		{"missing argv", "", p + "user=nobody"},
		{"empty argv", "", p + "user=nobody argv="},
		{"unknown user", "", p + "user=nosuch argv=/bin/true"},
		{"empty user", "", p + "user= argv=/bin/true"},
		{"unknown group", "", p + "user=nobody:nosuch argv=/bin/true"},
		{"bad user repeated", "", p + "user=nosuch user=nobody argv=/bin/true"},
		{"uid 0", "", p + "user=root argv=/bin/true"},
		{"gid 0 primary", "", p + "user=wheel argv=/bin/true"},
		{"gid 0 group", "", p + "user=nobody:root argv=/bin/true"},
		{"mail owner uid", "", p + "user=pfuid argv=/bin/true"},
		{"mail owner gid", "", p + "user=pfgroup argv=/bin/true"},
		{"mail owner group", "", p + "user=nobody:postfix argv=/bin/true"},
		{"mail owner itself", "", p + "user=postfix argv=/bin/true"},
		{"other mail owner", "mail_owner = daemon", p + "user=daemon argv=/bin/true"},
		{"uid -1", "", p + "user=minus argv=/bin/true"},
		{"gid -1", "", p + "user=gminus argv=/bin/true"},
		{"group -1", "", p + "user=nobody:minus argv=/bin/true"},
		{"relative command", "", p + "user=nobody argv=true"},
		{"missing command", "", p + "user=nobody argv=/nonexistent/cmd"},
		{"not a directory", "", p + "user=nobody argv=" + files + "/noexec/x"},
		{"dangling link", "", p + "user=nobody argv=" + files + "/dangling"},
		{"directory", "", p + "user=nobody argv=" + files + "/d"},
		{"link to directory", "", p + "user=nobody argv=" + files + "/dirlink"},
		{"device", "", p + "user=nobody argv=/dev/null"},
		{"not executable", "", p + "user=nobody argv=" + files + "/noexec"},
		{"unpriv y", "", "p unix - y n - - spawnd user=nobody argv=/bin/true"},
		{"unpriv default", "", "p unix - - n - - spawnd user=nobody argv=/bin/true"},
		{"unpriv -u", "", p + "-u user=nobody argv=/bin/true"},
		{"chroot y", "", "p unix - n y - - spawnd user=nobody argv=/bin/true"},
		{"chroot -c", "", p + "-c user=nobody argv=/bin/true"},
		{"bad private", "", "p unix yes n n - - spawnd user=nobody argv=/bin/true"},
		{"bad wakeup", "", "p unix - n n soon - spawnd user=nobody argv=/bin/true"},
		{"bad maxproc", "", "p unix - n n - -1 spawnd user=nobody argv=/bin/true"},
		{"huge maxproc", "", "p unix - n n - 99999999999999999999 spawnd user=nobody argv=/bin/true"},
		{"unknown option", "", p + "-x user=nobody argv=/bin/true"},
		{"option without argument", "", p + "-o"},
		{"bad -o", "", p + "-o novalue user=nobody argv=/bin/true"},
		{"bad -o time", "", p + "-o p_time_limit=soon user=nobody argv=/bin/true"},
		{"bad peer_environment", "", p + "-o peer_environment=maybe user=nobody argv=/bin/true"},
		{"fifo", "", "p fifo - n n - - spawnd user=nobody argv=/bin/true"},
		{"bad type", "", "p tcp - n n - - spawnd user=nobody argv=/bin/true"},
		{"inet private", "", "25 inet y n n - - spawnd user=nobody argv=/bin/true"},
		{"inet private default", "", "25 inet - n n - - spawnd user=nobody argv=/bin/true"},
		{"bad port", "", "x:99999 inet n n n - - spawnd user=nobody argv=/bin/true"},
		{"long path", "", "/" + strings.Repeat("x", 107) + " unix - n n - - spawnd user=nobody argv=/bin/true"},
		{"several", "", p + "usr=x argv=true"},
	} {
		want := map[string][]string{
			"unknown attribute":       {at + "unknown attribute name: usr=nobody"},
			"word without =":          {at + "unknown attribute name: nobody"},
			"missing user":            {at + "missing user= attribute"},
			"missing argv":            {at + "missing argv= attribute"},
			"empty argv":              {at + "missing argv= attribute"},
			"unknown user":            {at + "unknown user name: nosuch"},
			"empty user":              {at + "unknown user name: "},
			"unknown group":           {at + "unknown group name: nosuch"},
			"bad user repeated":       {at + "unknown user name: nosuch"},
			"uid 0":                   {at + "request to deliver as root", at + "request to use privileged group id 0"},
			"gid 0 primary":           {at + "request to use privileged group id 0"},
			"gid 0 group":             {at + "request to use privileged group id 0"},
			"mail owner uid":          {at + "request to deliver as mail system owner"},
			"mail owner gid":          {at + "request to use mail system owner group id 101"},
			"mail owner group":        {at + "request to use mail system owner group id 101"},
			"mail owner itself":       {at + "request to deliver as mail system owner", at + "request to use mail system owner group id 101"},
			"other mail owner":        {at + "request to deliver as mail system owner", at + "request to use mail system owner group id 1"},
			"uid -1":                  {at + "user must not have user ID -1"},
			"gid -1":                  {at + "user must not have group ID -1"},
			"group -1":                {at + "user must not have group ID -1"},
			"relative command":        {at + "command true: not an absolute path"},
			"missing command":         {at + "command /nonexistent/cmd: no such file or directory"},
			"not a directory":         {at + "command " + files + "/noexec/x: not a directory"},
			"dangling link":           {at + "command " + files + "/dangling: no such file or directory"},
			"directory":               {at + "command " + files + "/d: not a regular file (drwxr-xr-x)"},
			"link to directory":       {at + "command " + files + "/dirlink (resolves to " + files + "/d): not a regular file (drwxr-xr-x)"},
			"device":                  {at + "command /dev/null: not a regular file (Dcrw-rw-rw-)"},
			"not executable":          {at + "command " + files + "/noexec: not executable (-rw-r--r--)"},
			"unpriv y":                {at + "requires privileged operation: the unprivileged column must be n"},
			"unpriv default":          {at + "requires privileged operation: the unprivileged column must be n"},
			"unpriv -u":               {at + "requires privileged operation: the unprivileged column must be n"},
			"chroot y":                {at + "chroot is not supported: the chroot column must be n"},
			"chroot -c":               {at + "chroot is not supported: the chroot column must be n"},
			"bad private":             {at + `field "private": bad value: "yes"`},
			"bad wakeup":              {at + `field "wakeup_time": bad value: "soon"`},
			"bad maxproc":             {at + `field "max_proc": bad value: "-1"`},
			"huge maxproc":            {at + `field "max_proc": bad value: "99999999999999999999"`},
			"unknown option":          {at + "invalid option: x"},
			"option without argument": {at + "invalid option: o (it takes an argument)"},
			"bad -o":                  {at + `invalid "-o novalue" option value: missing '=' after attribute name`},
			"bad -o time":             {at + "parameter p_time_limit: bad time value or unit: soon"},
			"bad peer_environment":    {at + "bad boolean configuration: peer_environment = maybe"},
			"fifo":                    {at + "transport type fifo is not supported standalone: use inet or unix"},
			"bad type":                {at + "bad transport type: tcp"},
			"inet private":            {"DIR/master.cf: line 1: service 25: inet service cannot be private"},
			"inet private default":    {"DIR/master.cf: line 1: service 25: inet service cannot be private"},
			"bad port":                {`DIR/master.cf: line 1: service x:99999: bad inet service name "x:99999": want [host:]port or [ipv6]:port`},
			"long path":               {"DIR/master.cf: line 1: service /" + strings.Repeat("x", 107) + ": socket path /" + strings.Repeat("x", 107) + " is longer than 107 bytes"},
			"several":                 {at + "unknown attribute name: usr=x", at + "missing user= attribute", at + "command true: not an absolute path"},
		}[tc.name]
		p, err, dir := loadText(t, tc.main, tc.master)
		if got := lines(err, dir); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, want)
		}
		if err != nil && len(p.Services) != 0 {
			t.Errorf("%s: %d services despite errors", tc.name, len(p.Services))
		}
	}
}

// TestConfigErrors: errors of main.cf and of master.cf as a whole, each
// once, sorted by file and line.
func TestConfigErrors(t *testing.T) {
	const svc = "p unix - n n - - spawnd user=nobody argv=/bin/true\n"
	for _, tc := range []struct {
		name, main, master string
		want               []string
	}{
		{"missing =", "a b = c\n= d\n", svc, []string{
			`DIR/main.cf: line 1: missing '=' after attribute name: "a b = c"`,
			`DIR/main.cf: line 2: missing attribute name: "= d"`}},
		{"bad time", "command_time_limit = 10 minutes", svc, []string{
			"DIR/main.cf: line 1: parameter command_time_limit: bad time value or unit: 10 minutes"}},
		{"time 0", "command_time_limit = 0", svc, []string{"DIR/main.cf: line 1: invalid command_time_limit: 0 (min 1)"}},
		{"service time", "p_time_limit = soon", svc, []string{"DIR/main.cf: line 1: parameter p_time_limit: bad time value or unit: soon"}},
		{"max_idle", "max_idle = 0", svc, []string{"DIR/main.cf: line 1: invalid max_idle: 0 (min 1)"}},
		{"max_use", "\n\nmax_use = many", svc, []string{"DIR/main.cf: line 3: bad numerical configuration: max_use = many"}},
		{"process limit", "default_process_limit = 0", svc, []string{"DIR/main.cf: line 1: invalid default_process_limit parameter value 0 < 1"}},
		{"facility", "syslog_facility = post", svc, []string{"DIR/main.cf: line 1: parameter syslog_facility: unrecognized value: post"}},
		{"queue_directory", "queue_directory = spool", svc, []string{"DIR/main.cf: line 1: parameter queue_directory: not an absolute path: spool"}},
		{"maillog_file", "maillog_file = log", svc, []string{"DIR/main.cf: line 1: parameter maillog_file: not an absolute path: log"}},
		{"mail_owner unknown", "mail_owner = nosuch", svc, []string{"DIR/main.cf: line 1: parameter mail_owner: unknown user name value: nosuch"}},
		{"mail_owner root", "mail_owner = root", svc, []string{"DIR/main.cf: line 1: parameter mail_owner: user root has privileged user ID"}},
		{"mail_owner gid 0", "mail_owner = wheel", svc, []string{"DIR/main.cf: line 1: parameter mail_owner: user wheel has privileged group ID"}},
		{"expansion loop", "a = $b\nb = ${a}\ncommand_time_limit = $a", svc, []string{
			"DIR/main.cf: line 3: parameter command_time_limit: expansion loop through $a"}},
		{"self loop", "p_time_limit = ${p_time_limit}", svc, []string{
			"DIR/main.cf: line 1: parameter p_time_limit: expansion loop through $p_time_limit"}},
		{"truncated", "mail_owner = ${nobody", svc, []string{
			`DIR/main.cf: line 1: parameter mail_owner: truncated macro reference: "${nobody"`}},
		{"export braces", "export_environment = {TZ", svc, []string{
			`DIR/main.cf: line 1: parameter export_environment: missing '}' in "{TZ"`}},
		{"too few fields", "", "p\np unix\np unix - n n - -\n", []string{
			`DIR/master.cf: line 1: missing "transport type" field`,
			`DIR/master.cf: line 2: missing "private" field`,
			`DIR/master.cf: line 3: missing "command" field`}},
		{"braces", "", "p unix - n n - - spawnd user=nobody argv=/bin/sh -c { echo\nq unix - n n - - spawnd user=nobody argv=/bin/sh -c {a}b\n", []string{
			`DIR/master.cf: line 1: missing '}' in "{ echo"`,
			`DIR/master.cf: line 2: syntax error after '}' in "{a}b"`}},
		{"duplicate", "", svc + "# comment\n" + svc + "q unix - n n - - spawnd user=nobody argv=/bin/true\n", []string{
			"DIR/master.cf: line 3: service p: duplicate entry for this service or endpoint, first at line 1"}},
		{"same endpoint", "queue_directory = /q", svc + "/q/private/p unix - n n - - spawnd user=nobody argv=/bin/true\n", []string{
			"DIR/master.cf: line 2: service /q/private/p: duplicate entry for this service or endpoint, first at line 1"}},
		{"same port", "", "25 inet n n n - - spawnd user=nobody argv=/bin/true\nsmtp inet n n n - - spawnd user=nobody argv=/bin/true\n", []string{
			"DIR/master.cf: line 2: service smtp: duplicate entry for this service or endpoint, first at line 1"}},
		{"bad ports are not duplicates", "", "x:0 inet n n n - - spawnd user=nobody argv=/bin/true\n[x]:0 inet n n n - - spawnd user=nobody argv=/bin/true\n", []string{
			`DIR/master.cf: line 1: service x:0: bad inet service name "x:0": want [host:]port or [ipv6]:port`,
			`DIR/master.cf: line 2: service [x]:0: bad inet service name "[x]:0": want [host:]port or [ipv6]:port`}},
		{"no service", "", "smtp inet n - y - - smtpd\n", []string{"DIR/master.cf: no service runs spawn or spawnd"}},
		{"sorted and once", "command_time_limit = x\nmail_owner = nosuch\n",
			"b unix - n n - - spawnd user=root argv=/bin/true\na unix - n n - - spawnd user=nobody\n", []string{
				"DIR/main.cf: line 1: parameter command_time_limit: bad time value or unit: x",
				"DIR/main.cf: line 2: parameter mail_owner: unknown user name value: nosuch",
				"DIR/master.cf: line 1: service b: request to deliver as root",
				"DIR/master.cf: line 1: service b: request to use privileged group id 0",
				"DIR/master.cf: line 2: service a: missing argv= attribute"}},
	} {
		_, err, dir := loadText(t, tc.main, tc.master)
		var list ErrorList
		if err != nil && !errors.As(err, &list) {
			t.Errorf("%s: %T is not an ErrorList", tc.name, err)
		}
		if got := lines(err, dir); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestMissingFiles: main.cf may be absent, master.cf may not.
func TestMissingFiles(t *testing.T) {
	master := "p unix - n n - - spawnd user=nobody argv=/bin/true\n"
	dir := write(t, map[string]*string{"master.cf": &master})
	if p, err := load(dir, nil, fixtures{}); err != nil || p.MailOwner.Name != "postfix" || p.Services[0].TimeLimit != 1000*time.Second {
		t.Errorf("without main.cf: %v", err)
	}
	dir = t.TempDir()
	if _, err := load(dir, nil, fixtures{}); err == nil || err.Error() != "open "+dir+"/master.cf: no such file or directory" {
		t.Errorf("without master.cf: %v", err)
	}
}

// TestMainCF: Postfix's logical lines, name = value, and expansion with
// Postfix 3.7's grammar. Every value here is what postconf -x prints,
// before postconf's own whitespace normalization; postconf_test.go
// compares many more with postconf itself.
func TestMainCF(t *testing.T) {
	const text = `# comment
a = one
b=two  
  # a comment inside a continued line does not end it
	continued
c = $a ${b} $(a) $$a $$ $
d = ${a?yes} ${none?yes} ${a:no} ${none:no} ${empty:no} ${empty?yes}
empty =
e = ${a?{x y}} ${none?{x y}} ${none:{ z }} ${a:{q}} ${a?${b}} ${none:${b}}
f = ${a ${b}
g = $-
h = ${a?{x}:{y}} ${none?{x}:{y}} ${a?{x}:y} ${none ? {x} : y }
i = ${a b}
j = $k
k = $j
#k = comment
l = ${unknown}x
m = ${{$a} == {one}?{eq}:{ne}} ${{10} < {9}} ${{10} < {9x}} ${{ 2 } != {2}} ${{007}=={7}} [${{a}>={b}}]
n = ${{3.6} <level {3.10}?{old}:{new}} ${{$a}=={one}:{no}} $(a) $(a?{x})
o = ${{a} = {b}}
p = ${{a}=={b}x}
q = ${{1}=={99999999999999999999}}
r = ${{x}==level{3}}
s = ${a?{x}y}
t = ${a?{x}:{y}z}
u = $(a?{x)})
v = ${a:{x}
w = $e1 ${e1?set} ${ } ${?x}${:y}
e1 = $empty
process_name = x
`
	l := newLoader(nil, fixtures{})
	c := l.parseMainCF("main.cf", text)
	for _, tc := range []struct{ name, want, err string }{
		{"a", "one", ""},
		{"b", "two  \tcontinued", ""},
		{"c", "", `main.cf: line 6: parameter c: empty macro name: "$a ${b} $(a) $$a $$ $"`},
		{"d", "yes   no no ", ""},
		{"e", "x y   z   two  \tcontinued two  \tcontinued", ""},
		{"f", "", `main.cf: line 10: parameter f: truncated macro reference: "${a ${b}"`},
		{"g", "", `main.cf: line 11: parameter g: empty macro name: "$-"`},
		{"h", "x y x  y ", ""},
		{"i", "", `main.cf: line 13: parameter i: attribute name syntax error at: "a b"`},
		{"j", "", "main.cf: line 14: parameter j: expansion loop through $j"},
		{"l", "x", ""},
		{"m", "eq  true true true []", ""},
		{"n", "old  one x", ""},
		{"o", "", `main.cf: line 20: parameter o: bad relational expression at: "= {b}"`},
		{"p", "", `main.cf: line 21: parameter p: "?" or ":" expected at: "{a}=={b}x"`},
		{"q", "", `main.cf: line 22: parameter q: bad number or compatibility level: "99999999999999999999"`},
		{"r", "", `main.cf: line 23: parameter r: bad number or compatibility level: "x"`},
		{"s", "", `main.cf: line 24: parameter s: unexpected input at: "y"`},
		{"t", "", `main.cf: line 25: parameter t: unexpected input at: "z"`},
		{"u", "", `main.cf: line 26: parameter u: unbalanced {} in attribute expression: "{x"`},
		{"v", "", `main.cf: line 27: parameter v: truncated macro reference: "${a:{x}"`},
		{"w", " set  y", ""},
		{"mail_owner", "postfix", ""},
		{"syslog_name", "postfix", ""},
		{"process_name", "spawnd", ""},
		{"process_id", strconv.Itoa(os.Getpid()), ""},
		{"service_name", "", ""},
		{"nothing", "", ""},
	} {
		l.errs = nil
		got, ok := c.str(tc.name)
		if tc.err == "" && (!ok || got != tc.want || l.errs != nil) {
			t.Errorf("%s = %q (%v), want %q", tc.name, got, l.errs, tc.want)
		}
		if tc.err != "" && (ok || l.errs.Error() != tc.err) {
			t.Errorf("%s: error %v, want %s", tc.name, l.errs, tc.err)
		}
	}
	if !slices.Contains(l.warnings, "main.cf: line 30: read-only parameter assignment: process_name=x") {
		t.Errorf("warnings %q", l.warnings)
	}
	c = l.parseMainCF("main.cf", "multi_instance_name = pf2\n")
	if got, _ := c.with(map[string]string{"process_name": "y", "a": "$service_name/$process_name"}, Error{Service: "svc"}).str("a"); got != "svc/spawnd" {
		t.Errorf("service_name/process_name in a service's scope: %q", got)
	}
	if got, _ := c.str("syslog_name"); got != "pf2" {
		t.Errorf("syslog_name with multi_instance_name: %q", got)
	}
	l = newLoader(nil, fixtures{})
	l.parseMainCF("main.cf", " leading = x\na = 1\na = 2\na = 2\n")
	want := []string{`main.cf: line 1: logical line must not start with whitespace: " leading = x"`, "main.cf: line 3: overriding earlier entry: a=1"}
	if !slices.Equal(l.warnings, want) || l.errs != nil {
		t.Errorf("warnings %q, errors %v; want %q", l.warnings, l.errs, want)
	}
}

// TestExpansionLimits: exponential expansion ends with an error, quickly;
// nesting is bounded as in Postfix (100 nested calls).
func TestExpansionLimits(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 40; i++ {
		b.WriteString("p" + strconv.Itoa(i) + " = $p" + strconv.Itoa(i+1) + "$p" + strconv.Itoa(i+1) + "$p" + strconv.Itoa(i+1) + "\n")
	}
	l := newLoader(nil, fixtures{})
	c := l.parseMainCF("main.cf", b.String()+"p40 =\n")
	if v, ok := c.str("p0"); !ok || v != "" {
		t.Errorf("empty chain: %q %v", v, l.errs)
	}
	l = newLoader(nil, fixtures{})
	c = l.parseMainCF("main.cf", b.String()+"p40 = xxxxxxxx\n")
	if _, ok := c.str("p0"); ok || !strings.Contains(l.errs.Error(), "value longer than 65536 bytes") {
		t.Errorf("long chain: %v", l.errs)
	}
	for n, want := range map[int]bool{999: true, 1001: false, 100000: false} { // relational operands nest
		rel := "r = " + strings.Repeat("${{", n) + "x}=={x}}" + strings.Repeat("}=={true}}", n-1) + "\n"
		l = newLoader(nil, fixtures{})
		if v, ok := l.parseMainCF("main.cf", rel).str("r"); ok != want || ok && v != "true" {
			t.Errorf("relational nesting %d: %q %v", n, v, l.errs)
		}
	}
	for _, n := range []int{100, 101, 5000} {
		deep := "d = " + strings.Repeat("${a?", n) + "x" + strings.Repeat("}", n) + "\na = 1\n"
		for i := 0; i <= n; i++ { // a chain of n+1 names, the last one x
			deep += "c" + strconv.Itoa(i) + " = $c" + strconv.Itoa(i+1) + "\n"
		}
		l = newLoader(nil, fixtures{})
		c = l.parseMainCF("main.cf", deep+"c"+strconv.Itoa(n+1)+" = x\n")
		for _, name := range []string{"d", "c1", "c0"} {
			v, ok := c.str(name)
			// d and c1 nest n deep, c0 one more; Postfix allows 100
			if wantOK := n+strings.Count(name, "0") <= 100; ok != wantOK || ok && v != "x" {
				t.Errorf("nesting %d, %s: %q %v", n, name, v, l.errs)
			}
		}
	}
}

// TestTimeValues: Postfix's conv_time; only the first unit letter counts.
func TestTimeValues(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int64
		ok   bool
	}{
		{"10", 10, true}, {"10s", 10, true}, {"2m", 120, true}, {"3h", 10800, true},
		{"1d", 86400, true}, {"2w", 1209600, true}, {"10minutes", 600, true}, {"+5", 5, true},
		{"0", 0, true}, {"3550w", 3550 * 604800, true},
		{"10 minutes", 0, false}, {"-5", 0, false}, {"", 0, false}, {"m", 0, false},
		{"10x", 0, false}, {"3551w", 0, false}, {"99999999999", 0, false}, {"2147483648", 0, false},
		{" 5", 0, false}, {"5 ", 0, false},
	} {
		l := newLoader(nil, fixtures{})
		c := l.parseMainCF("main.cf", "")
		c.vals["t"] = tc.v
		if got := c.time("t", 0); got != time.Duration(tc.want)*time.Second || (l.errs == nil) != tc.ok {
			t.Errorf("time value %q = %v, %v; want %ds, ok %v", tc.v, got, l.errs, tc.want, tc.ok)
		}
	}
	s := one(t, "command_time_limit = 2d\nbase = 3\n127.0.0.1:9998_time_limit = ${base}h\n",
		"127.0.0.1:9998 inet n n n - 0 spawnd user=nobody argv=/bin/true")
	if s.TimeLimit != 3*time.Hour {
		t.Errorf("127.0.0.1:9998_time_limit: %v", s.TimeLimit)
	}
}

// TestWords: master.cf words and Postfix's { } grouping.
func TestWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"a  b\tc", []string{"a", "b", "c"}, ""},
		{"argv=/bin/sh -c { echo hi }", []string{"argv=/bin/sh", "-c", "echo hi"}, ""},
		{"{ a {b c} d }", []string{"a {b c} d"}, ""},
		{"{}", []string{""}, ""},
		{"x{a b}y z", []string{"x{a b}y", "z"}, ""},
		{"a }b", []string{"a", "}b"}, ""},
		{"-o { name = value }", []string{"-o", "name = value"}, ""},
		{"a { b", []string{"a"}, `missing '}' in "{ b"`},
		{"{a}b", nil, `syntax error after '}' in "{a}b"`},
	} {
		got, err := words(tc.in, spaces)
		if !slices.Equal(got, tc.want) || tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("words(%q) = %q, %v; want %q, %s", tc.in, got, err, tc.want, tc.err)
		}
	}
	if got, _ := words("TZ, LANG\t{A=a b},,B=c", listSeps); !slices.Equal(got, []string{"TZ", "LANG", "A=a b", "B=c"}) {
		t.Errorf("export list: %q", got)
	}
}

// TestEndpoints: every form of inet and unix service name.
func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		typ, name string
		private   bool
		want, err string
	}{
		{"inet", "10025", false, ":10025", ""},
		{"inet", "127.0.0.1:10025", false, "127.0.0.1:10025", ""},
		{"inet", "[::1]:10025", false, "[::1]:10025", ""},
		{"inet", "::1:10025", false, "[::1]:10025", ""},
		{"inet", "[::]:25", false, "[::]:25", ""},
		{"inet", "localhost:smtp", false, "localhost:25", ""},
		{"inet", ":10025", false, ":10025", ""},
		{"inet", "x:0", false, "", "bad inet service name"},
		{"inet", "x:65536", false, "", "bad inet service name"},
		{"inet", "[::1]", false, "", "bad inet service name"},
		{"inet", "[::1]x:25", false, "", "bad inet service name"},
		{"inet", "x:nosuchservice", false, "", "bad inet service name"},
		{"inet", "25", true, "", "inet service cannot be private"},
		{"unix", "policy", true, "/q/private/policy", ""},
		{"unix", "policy", false, "/q/public/policy", ""},
		{"unix", "/run/x.sock", true, "/run/x.sock", ""},
		{"unix", "/run/x.sock", false, "/run/x.sock", ""},
		{"pass", "x", true, "", "transport type pass is not supported standalone"},
		{"unix-dgram", "x", true, "", "transport type unix-dgram is not supported standalone"},
		{"tcp", "x", true, "", "bad transport type: tcp"},
	} {
		ep, err := endpoint(tc.typ, tc.name, tc.private, "/q")
		if tc.err == "" && (err != nil || ep.Address != tc.want || ep.Type != tc.typ || ep.Private != tc.private) {
			t.Errorf("%s %s: %+v %v, want %s", tc.typ, tc.name, ep, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %s: %v, want %s", tc.typ, tc.name, err, tc.err)
		}
	}
}

// TestEnvironment: export_environment as Postfix's clean_env applies it.
func TestEnvironment(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"", "TZ=UTC LANG=C PATH=/usr/bin:/bin"}, // the default: TZ MAIL_CONFIG LANG
		{"export_environment = TZ, LANG\n  MISSING PATH=/evil PATH FOO=bar", "TZ=UTC LANG=C FOO=bar PATH=/usr/bin:/bin"},
		{"export_environment = FOO=1 TZ FOO=2 EMPTY", "FOO=2 TZ=UTC EMPTY= PATH=/usr/bin:/bin"},
		{"export_environment = {A=a b} =x", "A=a b PATH=/usr/bin:/bin"},
		{"export_environment =", "PATH=/usr/bin:/bin"},
		{"extra = SECRET\nexport_environment = $extra", "SECRET=x PATH=/usr/bin:/bin"},
	} {
		s := one(t, tc.list, "p unix - n n - - spawnd user=nobody argv=/bin/true")
		if got := strings.Join(s.Env, " "); got != tc.want {
			t.Errorf("%q: env %q, want %q", tc.list, got, tc.want)
		}
	}
	s := one(t, "", "p unix - n n - - spawnd -o {export_environment = LANG} user=nobody argv=/bin/true")
	if got := strings.Join(s.Env, " "); got != "LANG=C PATH=/usr/bin:/bin" {
		t.Errorf("-o export_environment: %q", got)
	}
}

// TestResolve: a valid configuration with every form, fully resolved.
func TestResolve(t *testing.T) {
	queue := t.TempDir()
	mainCF := `# comment
queue_directory = ` + queue + `
base = 7
command_time_limit = ${base}m
x_time_limit = 2h
y_peer_environment = yes
default_process_limit = ${unset:42}
mail_owner = postfix
syslog_name = postfix/${base}
maillog_file = /dev/stderr
max_use = 5
max_idle = 1m
`
	masterCF := `# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:25 inet n n n - 0 spawnd user=nobody argv=/bin/echo { hello world } end
x unix - n n 0? - spawn
  -o peer_environment=yes
  USER=nobody:staff ARGV=/bin/true
[::1]:26 inet n n n 10 3 /usr/lib/postfix/sbin/spawnd -v -o command_time_limit=5 user=nobody argv=/bin/true
8025 inet n n n - - spawnd -o x_time_limit=1 user=nobody argv=/bin/true
/run/x.sock unix n n n - - spawnd user=nobody: argv=/bin/true
y unix n n n - - spawnd -o {z = a b} user=nosuch user=nobody argv=/bin/true -o x
other unix - n n - - smtpd
broken unix - - - - - smtpd -x
`
	_, err, dir := loadText(t, mainCF, masterCF)
	if got := lines(err, dir); len(got) != 1 || got[0] != "DIR/master.cf: line 9: service y: unknown user name: nosuch" {
		t.Fatalf("want only the repeated user= error: %q", got)
	}
	p, err, _ := loadText(t, mainCF, strings.Replace(masterCF, "user=nosuch ", "", 1))
	if err != nil {
		t.Fatal(err)
	}
	if p.MailOwner != (Account{"postfix", 100, 101}) || p.SyslogName != "postfix/7" || p.SyslogFacility != 2 ||
		p.MaillogFile != "/dev/stderr" || p.QueueDirectory != queue || p.MaxUse != 5 || p.MaxIdle != time.Minute || len(p.Warnings) != 0 {
		t.Errorf("globals: %+v", p)
	}
	type want struct {
		name, typ, addr string
		private         bool
		limit           int
		timeout         time.Duration
		argv, group     string
		gid             uint32
		peer            bool
	}
	wants := []want{
		{"127.0.0.1:25", "inet", "127.0.0.1:25", false, 0, 7 * time.Minute, "/bin/echo|hello world|end", "nogroup", 65534, false},
		{"x", "unix", queue + "/private/x", true, 42, 2 * time.Hour, "/bin/true", "staff", 50, true},
		{"[::1]:26", "inet", "[::1]:26", false, 3, 5 * time.Second, "/bin/true", "nogroup", 65534, false},
		{"8025", "inet", ":8025", false, 42, 7 * time.Minute, "/bin/true", "nogroup", 65534, false},
		{"/run/x.sock", "unix", "/run/x.sock", false, 42, 7 * time.Minute, "/bin/true", "nogroup", 65534, false},
		{"y", "unix", queue + "/public/y", false, 42, 7 * time.Minute, "/bin/true|-o|x", "nogroup", 65534, true},
	}
	if len(p.Services) != len(wants) {
		t.Fatalf("%d services, want %d (smtpd ignored)", len(p.Services), len(wants))
	}
	for i, w := range wants {
		s := p.Services[i]
		got := want{s.Name, s.Endpoint.Type, s.Endpoint.Address, s.Endpoint.Private, s.ProcessLimit, s.TimeLimit,
			strings.Join(s.Argv, "|"), s.Group, s.Gid, s.PeerEnvironment}
		if got != w {
			t.Errorf("service %d:\n got %+v\nwant %+v", i, got, w)
		}
		if s.Uid != 65534 || !slices.Equal(s.Groups, []uint32{s.Gid}) || s.User != "nobody" || s.Dir != queue || s.Line == 0 ||
			filepath.Base(s.File) != "master.cf" {
			t.Errorf("service %d: %+v", i, s)
		}
	}
	if s := one(t, "queue_directory = /nonexistent", "p unix - n n - - spawnd user=nobody argv=/bin/true"); s.Dir != "/" {
		t.Errorf("dir %q, want / when queue_directory does not exist", s.Dir)
	}
}

// TestWarnings: problems that do not stop spawnd.
func TestWarnings(t *testing.T) {
	queue := t.TempDir()
	os.MkdirAll(filepath.Join(queue, "private"), 0o755)
	os.MkdirAll(filepath.Join(queue, "public"), 0o755)
	os.Mkdir(filepath.Join(queue, "closed"), 0o700)
	p, err, dir := loadText(t, "queue_directory = /x\nqueue_directory = "+queue+"\n",
		" stray\np unix - n n - - spawnd user=nobody argv=/bin/true\n"+
			"q unix n n n - - spawnd user=nobody argv=/bin/true\n"+
			queue+"/closed/r unix y n n - - spawnd user=nobody argv=/bin/true\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"DIR/main.cf: line 2: overriding earlier entry: queue_directory=/x",
		`DIR/master.cf: line 1: logical line must not start with whitespace: " stray"`,
		"DIR/master.cf: line 2: service p: socket directory " + queue + "/private of a private service is open to other users (mode 0755)",
	}
	got := strings.Split(strings.ReplaceAll(strings.Join(p.Warnings, "\n"), dir, "DIR"), "\n")
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
}

// TestParseDaemonArgs: Postfix's getopt "+cdDi:lm:n:o:r:s:St:uvVz".
func TestParseDaemonArgs(t *testing.T) {
	a, err := ParseDaemonArgs(strings.Fields("-l -n policy -t unix -ov=1 -o policy_time_limit=5 -s 2 -vv -cdzuDSV -i 5 -m7 -r 9 user=nobody argv=/bin/true -x"))
	if err != nil {
		t.Fatal(err)
	}
	want := DaemonArgs{Service: "policy", Transport: "unix", Overrides: []string{"v=1", "policy_time_limit=5"}, Sockets: 2, Verbose: 2,
		Chroot: true, Debug: true, Unprivileged: true, Alone: true, Unlimited: true, MaxIdle: "5", MaxUse: "7",
		Attrs: []string{"user=nobody", "argv=/bin/true", "-x"}, Retire: "9", DebugSelf: true, Single: true, Stderr: true}
	if !reflect.DeepEqual(a, &want) {
		t.Errorf("got %+v\nwant %+v", a, &want)
	}
	for _, tc := range []struct {
		args  string
		attrs []string
	}{
		{"", nil}, {"-- -v", []string{"-v"}}, {"- -v", []string{"-", "-v"}}, {"-v user=x -v", []string{"user=x", "-v"}},
	} {
		if a, err := ParseDaemonArgs(strings.Fields(tc.args)); err != nil || !slices.Equal(a.Attrs, tc.attrs) || a.Sockets != 1 {
			t.Errorf("%q: %+v %v", tc.args, a, err)
		}
	}
	for _, tc := range []struct{ args, err string }{
		{"-Q user=nobody", "invalid option: Q"},
		{"-vq", "invalid option: q"},
		{"-n", "invalid option: n (it takes an argument)"},
		{"-t unix -o", "invalid option: o (it takes an argument)"},
		{"-s 0", "invalid socket_count: 0"},
		{"-s x", "invalid socket_count: x"},
		{"-r -1", "invalid retirement time: -1"},
		{"-o novalue", `invalid "-o novalue" option value: missing '=' after attribute name`},
		{"-o =x", `invalid "-o =x" option value: missing attribute name`},
	} {
		if _, err := ParseDaemonArgs(strings.Fields(tc.args)); err == nil || err.Error() != tc.err {
			t.Errorf("%q: %v, want %s", tc.args, err, tc.err)
		}
	}
}

// TestLoadDaemon: Postfix mode, from a master(8) command line.
func TestLoadDaemon(t *testing.T) {
	mainCF := "mail_owner = postfix\npolicy_time_limit = 3600\n"
	masterCF := `x inet n n n - 2 spawnd
x unix n n n - 7 spawnd
x unix n n n - 3 spawnd
    user=nobody argv=/bin/true
dash unix - n n - - spawnd
bad unix - n n - many spawnd
`
	dir := write(t, map[string]*string{"main.cf": &mainCF, "master.cf": &masterCF})
	run := func(args string) (*Policy, []string) {
		a, err := ParseDaemonArgs(strings.Fields(args))
		if err != nil {
			t.Fatal(err)
		}
		p, err := loadDaemon(dir, a, testEnv, fixtures{})
		return p, lines(err, dir)
	}
	p, errs := run("-z -n policy -t unix user=nobody argv=/bin/true")
	if errs != nil || len(p.Services) != 1 {
		t.Fatal(errs)
	}
	if s := p.Services[0]; s.Name != "policy" || s.Endpoint != (Endpoint{Type: "unix"}) || s.ProcessLimit != 0 || s.TimeLimit != time.Hour || s.Uid != 65534 {
		t.Errorf("%+v", s)
	}
	p, _ = run("-l -n x -t inet -i 5 -m 3 -o command_time_limit=9 -o mail_owner=daemon user=nobody argv=/bin/true")
	if s := p.Services[0]; s.ProcessLimit != 1 || s.TimeLimit != 9*time.Second || p.MaxIdle != 5*time.Second || p.MaxUse != 3 ||
		p.MailOwner.Name != "daemon" {
		t.Errorf("%+v %+v", p, s)
	}
	p, _ = run("-z -n policy -t unix -o syslog_name=postfix/$service_name user=nobody argv=/bin/true")
	if p.SyslogName != "postfix/policy" {
		t.Errorf("-o syslog_name=postfix/$service_name: %q", p.SyslogName)
	}
	s := one(t, "", "p unix - n n - - spawnd -o command_time_limit=${{$service_name}=={p}?{7}:{9}} user=nobody argv=/bin/true\n")
	if s.TimeLimit != 7*time.Second {
		t.Errorf("standalone $service_name: time limit %v, want 7s", s.TimeLimit)
	}
	// Without -l or -z: master.cf's maxproc for the name and type, the
	// last entry winning; "-": default_process_limit.
	for args, want := range map[string]int{"-n x -t unix": 3, "-n x -t inet": 2, "-n dash -t unix -o default_process_limit=8": 8} {
		if p, errs := run(args + " user=nobody argv=/bin/true"); errs != nil || p.Services[0].ProcessLimit != want {
			t.Errorf("%s: %v, limit %d, want %d", args, errs, p.Services[0].ProcessLimit, want)
		}
	}
	p, _ = run("-z -t unix user=nobody argv=/bin/true")
	if p.Services[0].Name != filepath.Base(os.Args[0]) {
		t.Errorf("name %q, want the program's", p.Services[0].Name)
	}
	for _, tc := range []struct {
		args string
		want []string
	}{
		{"-z -n policy -t unix usr=nobody argv=/bin/true", []string{"DIR/master.cf: service policy: unknown attribute name: usr=nobody", "DIR/master.cf: service policy: missing user= attribute"}},
		{"-z -n policy user=nobody argv=/bin/true", []string{`DIR/master.cf: service policy: no transport type specified`}},
		{"-z -n policy -t fifo user=nobody argv=/bin/true", []string{`DIR/master.cf: service policy: unsupported transport type: fifo`}},
		{"-z -n policy -t pass user=nobody argv=/bin/true", []string{`DIR/master.cf: service policy: transport type pass is not supported: spawnd does not receive passed connections`}},
		{"-z -n policy -t unix -S user=nobody argv=/bin/true", []string{`DIR/master.cf: service policy: -S (one client on standard input) is not supported`}},
		{"-n policy -t unix user=nobody argv=/bin/true", []string{`DIR/master.cf: service policy: no unix entry of this service with a maxproc in master.cf (changed since postfix reload?)`}},
		{"-n bad -t unix user=nobody argv=/bin/true", []string{`DIR/master.cf: service bad: no unix entry of this service with a maxproc in master.cf (changed since postfix reload?)`}},
		{"-z -n policy -t unix -o policy_time_limit=x user=nobody argv=/bin/true", []string{"DIR/master.cf: service policy: parameter policy_time_limit: bad time value or unit: x"}},
		{"-z -n policy -t unix -i 0 user=nobody argv=/bin/true", []string{"DIR/master.cf: service policy: invalid max_idle: 0 (min 1)"}},
		{"-z -n policy -t unix -u user=nobody argv=/bin/true", []string{"DIR/master.cf: service policy: requires privileged operation: the unprivileged column must be n"}},
		{"-z -n policy -t unix -o mail_owner=nobody user=nobody argv=/bin/true", []string{
			"DIR/master.cf: service policy: request to deliver as mail system owner", "DIR/master.cf: service policy: request to use mail system owner group id 65534"}},
	} {
		if _, got := run(tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.args, got, tc.want)
		}
	}
	a, _ := ParseDaemonArgs([]string{"-t", "unix", "user=nobody", "argv=/bin/true"})
	if _, err := loadDaemon(t.TempDir(), a, nil, fixtures{}); err == nil || !strings.Contains(err.Error(), "main.cf: no such file or directory") {
		t.Errorf("without main.cf: %v", err)
	}
}

// TestRealAccounts: look-ups through the C library (NSS), with a
// throwaway user and group made for the test.
func TestRealAccounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("requires root: creates a user and a group with useradd and groupadd")
	}
	for _, tool := range []string{"useradd", "groupadd", "userdel", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not installed")
		}
	}
	name := "spwtst" + strconv.Itoa(os.Getpid()%100000)
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", args, err, out)
		}
	}
	run("groupadd", name+"g")
	t.Cleanup(func() { exec.Command("groupdel", name+"g").Run() })
	run("useradd", "-M", "-N", "-g", name+"g", "-s", "/usr/sbin/nologin", name)
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := user.LookupGroup(name + "g")
	nogroup, _ := user.LookupGroupId(mustLookup(t, "nobody").Gid)

	mainCF := "mail_owner = " + name + "\n"
	masterCF := "a unix - n n - - spawnd user=nobody argv=/bin/true\n" +
		"b unix - n n - - spawnd user=nobody:" + name + "g argv=/bin/true\n" +
		"c unix - n n - - spawnd user=" + name + " argv=/bin/true\n" +
		"d unix - n n - - spawnd user=nosuchuser" + name + ":nosuchgroup argv=/bin/true\n" +
		"e unix - n n - - spawnd user=root argv=/bin/true\n"
	dir := write(t, map[string]*string{"main.cf": &mainCF, "master.cf": &masterCF})
	p, err := Load(dir, nil)
	want := []string{
		"DIR/master.cf: line 2: service b: request to use mail system owner group id " + g.Gid,
		"DIR/master.cf: line 3: service c: request to deliver as mail system owner",
		"DIR/master.cf: line 3: service c: request to use mail system owner group id " + g.Gid,
		"DIR/master.cf: line 4: service d: unknown user name: nosuchuser" + name,
		"DIR/master.cf: line 5: service e: request to deliver as root",
		"DIR/master.cf: line 5: service e: request to use privileged group id 0",
	}
	if got := lines(err, dir); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if strconv.FormatUint(uint64(p.MailOwner.Uid), 10) != u.Uid || strconv.FormatUint(uint64(p.MailOwner.Gid), 10) != g.Gid {
		t.Errorf("mail_owner %+v, want %s:%s", p.MailOwner, u.Uid, g.Gid)
	}
	masterCF = "a unix - n n - - spawnd user=nobody argv=/bin/true\n"
	dir = write(t, map[string]*string{"main.cf": &mainCF, "master.cf": &masterCF})
	p, err = Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Services[0]; s.User != "nobody" || s.Group != nogroup.Name || strconv.FormatUint(uint64(s.Gid), 10) != nogroup.Gid {
		t.Errorf("%+v", s)
	}
}

func mustLookup(t *testing.T, name string) *user.User {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skip("no user " + name)
	}
	return u
}

// FuzzMainCF: main.cf text of any shape loads without panicking; every
// parameter it sets can be read as a string, a time, a number and a
// boolean.
func FuzzMainCF(f *testing.F) {
	f.Add("a = $b\nb = ${c?x}${d:y}\n  continued\n# c\nx = ${")
	f.Add("command_time_limit = 10w\nexport_environment = {A=b c}, D\n")
	f.Add("e = ${a?{x y}:{z}} $(b) $$ ${none:{q}}\n\tmore\n= x\n a\n")
	f.Fuzz(func(t *testing.T, text string) {
		l := newLoader(nil, fixtures{})
		c := l.parseMainCF("main.cf", text)
		for name := range c.vals {
			if v, ok := c.str(name); ok && len(v) > 2*maxValue {
				t.Fatalf("%s: %d bytes", name, len(v))
			}
			c.time(name, 1)
			c.integer(name, 1)
			c.boolean(name)
		}
		l.global(c)
		for _, e := range l.errs {
			if e.Msg == "" || e.File != "main.cf" {
				t.Fatalf("error without message or file: %+v", e)
			}
		}
	})
}

// FuzzMasterCF: master.cf text of any shape loads without panicking, with
// fixture accounts; every service it accepts satisfies the policy's
// invariants.
func FuzzMasterCF(f *testing.F) {
	f.Add("a unix - n n - - spawnd -o x=y user=nobody argv=/bin/sh -c { echo hi }\n  more\n")
	f.Add("[::1]:25 inet n n n - 0 spawn user=nobody:staff argv=/bin/true\n")
	f.Add("p unix - n n - - spawnd -v -o {p_time_limit = 5} -o peer_environment=yes USER=nobody argv=/bin/echo\n")
	f.Add("x\ny unix\n25 inet - n n - - spawnd\n/run/s unix n n n 0? 7 /x/spawnd -x\n")
	f.Fuzz(func(t *testing.T, text string) {
		l := newLoader(nil, fixtures{})
		c := l.parseMainCF("main.cf", "")
		p := l.global(c)
		services, _ := l.masterCF(p, c, "master.cf", text)
		for _, s := range services {
			if len(l.errs) == 0 && (s.Uid == 0 || s.Gid == 0 || s.Uid == p.MailOwner.Uid || len(s.Argv) == 0 ||
				!filepath.IsAbs(s.Argv[0]) || s.TimeLimit < time.Second || s.ProcessLimit < 0 || s.Endpoint.Address == "" ||
				len(s.Env) == 0 || s.Env[len(s.Env)-1] != "PATH=/usr/bin:/bin") {
				t.Fatalf("accepted service breaks the invariants: %+v", s)
			}
		}
		for _, e := range l.errs {
			if e.Msg == "" || e.Line == 0 || e.File != "master.cf" {
				t.Fatalf("error without message or position: %+v", e)
			}
		}
	})
}

// TestLimits: the command's resource limits and no_new_privileges are off
// by default, set in main.cf for every service, overridden with -o, and a
// bad value names its file and line.
func TestLimits(t *testing.T) {
	const svc = "p unix - n n - - spawnd user=nobody argv=/bin/true\n"
	if s := one(t, "", svc); s.Limits != (Limits{}) {
		t.Errorf("default limits %+v, want none", s.Limits)
	}
	mainCF := `command_cpu_limit = 2m
command_address_space_limit = 1073741824
command_open_files_limit = 64
command_nproc_limit = 20
command_file_size_limit = 1048576
command_no_new_privileges = yes
`
	want := Limits{CPU: 120, AddressSpace: 1 << 30, OpenFiles: 64, Processes: 20, FileSize: 1 << 20, NoNewPrivileges: true}
	if s := one(t, mainCF, svc); s.Limits != want {
		t.Errorf("main.cf limits %+v, want %+v", s.Limits, want)
	}
	over := "p unix - n n - - spawnd -o command_cpu_limit=5 -o command_open_files_limit=0 -o command_no_new_privileges=no user=nobody argv=/bin/true\n"
	want = Limits{CPU: 5, AddressSpace: 1 << 30, Processes: 20, FileSize: 1 << 20}
	if s := one(t, mainCF, over); s.Limits != want {
		t.Errorf("-o limits %+v, want %+v", s.Limits, want)
	}
	_, err, dir := loadText(t, "command_cpu_limit = 1 minute\ncommand_nproc_limit = -1\ncommand_file_size_limit = 1m\ncommand_no_new_privileges = sure\n", svc)
	got := lines(err, dir)
	wantErrs := []string{
		"DIR/main.cf: line 1: parameter command_cpu_limit: bad time value or unit: 1 minute",
		"DIR/main.cf: line 2: bad numerical configuration: command_nproc_limit = -1",
		"DIR/main.cf: line 3: bad numerical configuration: command_file_size_limit = 1m",
		"DIR/main.cf: line 4: bad boolean configuration: command_no_new_privileges = sure",
	}
	slices.Sort(got)
	if !slices.Equal(got, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
	}
}
