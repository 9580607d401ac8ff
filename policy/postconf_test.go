package policy

// Differential tests of main.cf against postconf(1), Postfix's own reader
// and expander: Debian's main.cf files, a corpus of every form of Postfix
// 3.7's grammar, and main.cf and master.cf files made at random from a
// fixed seed (the same in every run). Every value spawnd resolves is
// compared with what postconf -x prints for it, and a value spawnd
// refuses must be one postconf refuses.
//
// Documented differences, which the comparison allows for (README.md,
// "main.cf as Postfix reads it"):
//   - postconf prints a value with runs of " \t\r\n" folded to one space
//     and trimmed, so values are compared folded; TestMainCF checks the
//     exact spacing.
//   - spawnd knows the defaults of the parameters it reads only; a value
//     that names another Postfix parameter left at its default expands it
//     as empty. Postfix's daemons, too, know only the parameters they read
//     (mail_params.c's and their own); postconf knows all. The test gives
//     spawnd postconf -d's defaults.
//   - postconf does not know spawnd's own parameters (command_cpu_limit,
//     client_access and the others): the test writes their defaults into
//     its main.cf.
//   - process_name and process_id name the program reading main.cf:
//     spawnd and its pid, postconf and its pid. The test gives spawnd
//     postconf's.
//   - postconf expands every Postfix parameter main.cf or -o sets when it
//     starts (its legacy database scan) and stops on an error in any, as
//     Postfix's daemons do for the global ones; spawnd stops only on an
//     error in a parameter it reads. The test expects postconf to refuse
//     everything then.
//   - A loop through a relational operand (a = ${{$a} == {x}}) makes
//     postconf recurse until it crashes (each operand is a new mac_expand
//     call, which does not count the nesting); spawnd reports the loop.
//     Both refuse the value. spawnd also refuses relational operands
//     nested over 1,000 deep.
//   - spawnd refuses a value longer than 64 KiB; postconf has no limit
//     (and takes exponential time on some values it then prints: the
//     fuzz target skips inputs postconf does not finish in 20 seconds).
//   - A NUL byte ends Postfix's line (C strings); the fuzz target skips
//     inputs with one.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fold normalizes whitespace as postconf prints a value (pcf_print_line).
func fold(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\r\n", r) }), " ")
}

// postconfBin returns postconf's path, or skips the test saying why.
func postconfBin(t testing.TB) string {
	p, err := exec.LookPath("postconf")
	if err != nil {
		t.Skip("postconf not installed (Debian's postfix package): the differential main.cf tests need it")
	}
	var rl syscall.Rlimit // a postconf that crashes leaves no core file
	syscall.Setrlimit(syscall.RLIMIT_CORE, &rl)
	return p
}

// postconf runs postconf -c dir args and parses "name = value" lines.
// ok is false when postconf exits non-zero (or is killed).
func postconf(t testing.TB, dir string, timeout time.Duration, args ...string) (vals map[string]string, ok bool, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, postconfBin(t), append([]string{"-c", dir}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, false, "timeout"
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("postconf: %v", err)
	}
	vals = map[string]string{}
	for _, ln := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if name, v, found := strings.Cut(ln, " ="); found {
			vals[name] = strings.TrimPrefix(v, " ")
		}
	}
	return vals, err == nil, errb.String()
}

// writeCold writes a configuration file an hour old: Postfix reads a
// file changed within the last second again and again until it is not
// (dict_load_file_xt), which costs a second or two per run.
func writeCold(t testing.TB, dir, name, text string) {
	file, old := filepath.Join(dir, name), time.Now().Add(-time.Hour)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	} else if err = os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
}

// postconfDefaults is postconf -d: every Postfix parameter's default.
var postconfDefaults struct {
	sync.Once
	vals map[string]string
}

func pfDefaults(t testing.TB) map[string]string {
	postconfDefaults.Do(func() {
		dir := t.TempDir()
		writeCold(t, dir, "main.cf", "")
		writeCold(t, dir, "master.cf", "")
		d, ok, stderr := postconf(t, dir, time.Minute, "-d")
		if !ok {
			t.Fatalf("postconf -d: %s", stderr)
		}
		postconfDefaults.vals = d
	})
	return postconfDefaults.vals
}

// spawndConf is spawnd's reading of DIR/main.cf text as postconf sees
// it: with postconf's defaults under it (the values it printed for the
// ones it computes: myhostname, mydomain, mynetworks), and postconf's
// process_name and pid.
func spawndConf(t testing.TB, dir, text string, printed map[string]string) (*conf, *loader) {
	l := newLoader(nil, fixtures{})
	c := l.parseMainCF(filepath.Join(dir, "main.cf"), text)
	for k, v := range pfDefaults(t) {
		if !c.has(k) {
			c.vals[k] = v
		}
	}
	for _, k := range []string{"myhostname", "mydomain", "mynetworks"} {
		if _, set := c.pos[k]; !set && printed[k] != "" {
			c.vals[k] = printed[k]
		}
	}
	c.vals["process_name"], c.vals["process_id"] = "postconf", printed["process_id"]
	return c, l
}

// diffStats counts what a differential run compared.
type diffStats struct {
	sync.Mutex
	files, values, refused, long, raw, calls int
}

func (s *diffStats) add(files, values, refused, long, raw, calls int) {
	s.Lock()
	defer s.Unlock()
	s.files, s.values, s.refused, s.long, s.raw, s.calls = s.files+files, s.values+values, s.refused+refused, s.long+long, s.raw+raw, s.calls+calls
}

func (s *diffStats) String() string {
	return fmt.Sprintf("%d files, %d values equal, %d refused by both, %d over spawnd's 64 KiB limit and %d Postfix expands only at use (not compared), %d postconf runs",
		s.files, s.values, s.refused, s.long, s.raw, s.calls)
}

// scope is one parameter as spawnd resolves it: main.cf's, or a
// master.cf -o override's in its service's scope (key
// service/type/name, as postconf -P prints it).
type scope struct {
	key, name string
	with      func(c *conf) *conf
}

// compareMainCF writes text as DIR/main.cf and master as DIR/master.cf,
// resolves names, every parameter text sets and every -o override of
// master with spawnd and with postconf, and reports each difference.
// postconf runs once for the values spawnd resolves and once for each it
// refuses (it stops at the first), with -P for the -o overrides. It
// returns false when postconf did not finish.
func compareMainCF(t testing.TB, text, master string, names []string, st *diffStats) bool {
	t.Helper()
	dir := t.TempDir()
	probe, pl := spawndConf(t, dir, text, nil)
	names = append(slices.Clone(names), "syslog_name", "mail_owner", "command_time_limit", "queue_directory", "export_environment")
	var scopes []scope
	for name := range probe.pos { // postconf prints only names $name can name
		if name != "" && nameLen(name) == len(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		scopes = append(scopes, scope{name, name, func(c *conf) *conf { return c }})
	}
	for _, ln := range pl.logical("master.cf", master) {
		w, _ := words(ln.s, spaces)
		a, err := ParseDaemonArgs(w[8:])
		if err != nil {
			t.Errorf("master.cf %q: %v", ln.s, err)
			return true
		}
		over := pl.overrides(Error{}, a)
		with := func(c *conf) *conf { return c.with(over, Error{Service: w[0]}) }
		for name := range over {
			if _, ro := readOnly[name]; !ro { // postconf ignores it, with a warning, as spawnd does
				scopes = append(scopes, scope{w[0] + "/" + w[1] + "/" + name, name, with})
			}
		}
	}
	// postconf prints a parameter of no Postfix default only when some
	// value names it: the last line names them all.
	pfText := text + "\n"
	for p, v := range defaults { // spawnd's own parameters
		if _, set := probe.pos[p]; !set && pfDefaults(t)[p] == "" {
			pfText += p + " = " + v + "\n"
		}
	}
	pfText += "spawnd_test_refs = $" + strings.Join(names, " $") + "\n"
	writeCold(t, dir, "main.cf", pfText)
	writeCold(t, dir, "master.cf", master)

	// What spawnd makes of each. postconf expands every Postfix parameter
	// set in main.cf or with -o when it starts (its legacy database
	// scan), and stops on an error in any.
	var good, bad [2][]scope
	errs, whole, long := map[string]error{}, len(pl.errs) > 0, 0
	for _, sc := range scopes {
		c, l := spawndConf(t, dir, text, nil)
		_, ok := sc.with(c).str(sc.name)
		_, builtin := pfDefaults(t)[sc.name]
		_, set := c.pos[sc.name]
		p := min(1, strings.Count(sc.key, "/"))
		switch {
		case ok:
			good[p] = append(good[p], sc)
		case strings.Contains(l.errs.Error(), "value longer than"):
			long++
		default:
			bad[p] = append(bad[p], sc)
			errs[sc.key] = l.errs
			whole = whole || builtin && (set || p == 1)
		}
	}
	calls, values, refused := 0, 0, 0
	defer func() { st.add(1, values, refused, long, 0, calls) }()
	run := func(args ...string) (map[string]string, bool, bool) {
		calls++
		vals, ok, stderr := postconf(t, dir, 20*time.Second, args...)
		return vals, ok, stderr == "timeout"
	}
	show := func() string { return "\nmain.cf:\n" + text + "\nmaster.cf:\n" + master }
	if whole {
		if _, ok, timeout := run("-x", "mail_owner"); ok {
			t.Errorf("spawnd refuses a Postfix parameter or a line (%v), postconf reads it:%s", errs, show())
		} else if timeout {
			return false
		}
		refused++
		return true
	}
	for p, args := range [][]string{{"-x", "process_id"}, {"-P", "-x"}} {
		if p == 1 && len(good[p])+len(bad[p]) == 0 {
			break
		}
		keys := []string{}
		for _, sc := range good[p] {
			keys = append(keys, sc.key)
		}
		vals, ok, timeout := map[string]string{}, true, false
		if p == 0 || len(keys) > 0 { // postconf -P alone prints every -o value
			vals, ok, timeout = run(append(args, keys...)...)
		}
		if timeout {
			return false
		} else if !ok {
			t.Errorf("postconf refuses some of %q, spawnd none:%s", keys, show())
		}
		for _, sc := range good[p] {
			c, _ := spawndConf(t, dir, text, vals)
			got, _ := sc.with(c).str(sc.name)
			want, printed := vals[sc.key]
			if !printed && !c.has(sc.key) && p == 0 { // unknown to both
				printed = true
			}
			if ok && (!printed || fold(got) != want) {
				t.Errorf("%s: spawnd %q, postconf %q (printed %v)%s", sc.key, fold(got), want, printed, show())
			} else if ok {
				values++
			}
		}
		for _, sc := range bad[p] {
			if vals, ok, timeout := run(append(args, sc.key)...); timeout {
				return false
			} else if ok {
				t.Errorf("%s: spawnd refuses (%v), postconf prints %q%s", sc.key, errs[sc.key], vals[sc.key], show())
			} else {
				refused++
			}
		}
	}
	return true
}

// parallel runs f(0) to f(n-1) 32 at a time: postconf's run time is
// mostly waiting (a postconf that stops on an error sleeps a second
// first, as Postfix's msg_fatal does).
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestDefaultsPostconf: spawnd's default of each Postfix parameter it
// reads is Postfix's; postconf knows none of spawnd's own.
func TestDefaultsPostconf(t *testing.T) {
	postconfBin(t)
	for name, v := range defaults {
		own := strings.HasPrefix(name, "command_") && name != "command_time_limit" || strings.HasPrefix(name, "client_")
		if pf, known := pfDefaults(t)[name]; known == own || known && pf != v {
			t.Errorf("%s: spawnd's default %q, postconf -d's %q (known %v)", name, v, pf, known)
		}
	}
}

// TestPostconfCorpus: Debian's main.cf files and every form of the
// grammar, valid and not, compared with postconf; and, for Debian's
// files, every parameter postconf knows, Postfix's own defaults (with
// their OPlevel comparisons) included.
func TestPostconfCorpus(t *testing.T) {
	postconfBin(t)
	pfDefaults(t)
	var st diffStats
	for _, f := range []string{"/usr/share/postfix/main.cf.dist", "/usr/share/postfix/main.cf.debian", "/etc/postfix/main.cf"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			t.Logf("%s: absent, not compared", f)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		compareMainCF(t, string(b), "", nil, &st)
		// Every parameter: postconf -x with no names prints them all.
		dir := t.TempDir()
		writeCold(t, dir, "main.cf", string(b))
		writeCold(t, dir, "master.cf", "")
		all, ok, stderr := postconf(t, dir, time.Minute, "-x")
		if !ok {
			t.Fatalf("postconf -x on %s: %s", f, stderr)
		}
		values, raw := 0, 0
		c, l := spawndConf(t, dir, string(b), all)
		for name, want := range all {
			if got, ok := c.str(name); ok && fold(got) == want {
				values++
			} else if def := pfDefaults(t)[name]; strings.Contains(def, "$") && want == def {
				raw++ // postconf prints it unexpanded (PCF_PARAM_FLAG_RAW)
			} else {
				t.Errorf("%s: %s: spawnd %q (%v), postconf %q", f, name, fold(got), l.errs, want)
			}
		}
		st.add(0, values, 0, 0, raw, 1)
	}
	parallel(len(corpus), func(i int) {
		master := ""
		if i%8 == 0 {
			master = corpusMaster
		}
		if !compareMainCF(t, corpus[i], master, corpusNames, &st) {
			t.Errorf("postconf did not finish on:\n%s", corpus[i])
		}
	})
	t.Logf("corpus: %v", &st)
}

var corpusNames = []string{"a", "b", "none", "empty", "loop1", "loop2", "u0", "u1", "syslog_name", "multi_instance_name"}

const corpusMaster = `policy unix - n n - 0 spawnd -o syslog_name=postfix/$service_name -o { u1 = $process_name ${a?{x y}} } -o u2=$syslog_name -o process_name=zz user=nobody argv=/bin/true
127.0.0.1:99 inet n n n - 0 spawnd -o u1=$service_name -o {u0 = ${{$a}=={one}?{$b}:{no}}} -o u3=${{$u1}!={}} user=nobody argv=/bin/true
`

// corpus are main.cf files with every form of the grammar.
var corpus = []string{
	"a = one\nb = $a ${a} $(a) $$a $$ x$\n",
	"a = one\nb = ${a?yes} ${none?yes} ${a:no} ${none:no} ${empty:no} ${empty?yes}\nempty =\n",
	"a = one\nb = ${a?{x y}} ${none?{x y}} ${none:{ z }} ${a:{q}} ${a?${b}} ${none:${a}}\n",
	"a = one\nb = ${a?{x}:{y}} ${none?{x}:{y}} ${a?{x}:y} ${none ? {x} : y } ${a?x:y} ${none?x:y}\n",
	"a = one\nb = ${{$a} == {one}?{eq}:{ne}} ${{10} < {9}} ${{10} < {9x}} ${{ 2 } != {2}} ${{007}=={7}} [${{a}>={b}}]\n",
	"a = one\nb = ${{3.6} <level {3.10}?{old}:{new}} ${{$a}=={one}:{no}} $(a) $(a?{x}) ${{ 3.6}<=level{+3.6}}\n",
	"a = 1\nb = ${{1}<{2}} ${{2}<={2}} ${{3}>{2}} ${{2}>={3}} ${{a}!={b}} ${{}=={}} ${{ }=={}}\n",
	"a = 1\nb = ${{1}=={99999999999999999999}}\n",
	"a = 1\nb = ${{x}==level{3}}\n",
	"a = 1\nb = ${{3.1024}==level{3}}\n",
	"a = 1\nb = ${{a} = {b}}\n",
	"a = 1\nb = ${{a}=={b}x}\n",
	"a = 1\nb = ${{a}==x{b}}\n",
	"a = 1\nb = ${{a}=={b}?{x}y}\n",
	"a = 1\nb = ${a?{x}y}\n",
	"a = 1\nb = ${a?{x}:{y}z}\n",
	"a = 1\nb = $(a?{x)})\n",
	"a = 1\nb = ${a:{x}\n",
	"a = 1\nb = ${a b}\n",
	"a = 1\nb = $-\n",
	"a = 1\nb = ${a ${b}\n",
	"a = 1\nb = ${}\n",
	"a = 1\nb = ${ } ${?x}${:y} ${ a }\n",
	"a = 1\nb = ${a?{x}:{y}:{z}}\n",
	"a = 1\nb = ${a:{x}?{y}}\n",
	"a = $empty\nb = ${a?set} ${a:unset}\n",
	"a = $b\nb = $a\n",
	"loop1 = $loop2\nloop2 = ${{$loop1}=={x}}\n",
	"loop1 = ${loop1?$loop1}\n",
	"loop1 = ${loop1:$loop1}\n",
	"u0 = $u1\nu1 = ${u0?{no loop}}\n",
	"a = 1\nb = " + strings.Repeat("${a?", 100) + "x" + strings.Repeat("}", 100) + "\n",
	"a = 1\nb = " + strings.Repeat("${a?", 101) + "x" + strings.Repeat("}", 101) + "\n",
	"a = 1\nb = " + strings.Repeat("${{", 60) + "1" + strings.Repeat("}=={1}}", 60) + "\n",
	"multi_instance_name = pf2\n",
	"multi_instance_name = pf2\nsyslog_name = $multi_instance_name/$service_name\n",
	"syslog_name = $process_name-$process_id\nprocess_name = x\n",
	"a = one\na = two\n continued\n#comment\n\n  \nb = $a\n",
	" leading = x\n  more\na = 1\n",
	"a b = c\n",
	"= c\n",
	"a\n",
	"a = \t \r\nb = ${a:{\tx\t}}\n",
	"u0 = x\tyy  z\nu1 = [$u0] [${u0?{ $u0 }}]\n",
}

// TestPostconfGenerated: random main.cf and master.cf files (seeded,
// the same in every run) compared with postconf.
func TestPostconfGenerated(t *testing.T) {
	postconfBin(t)
	pfDefaults(t)
	n := 300
	if testing.Short() {
		n = 30
	}
	var st diffStats
	r := rand.New(rand.NewPCG(14, 3))
	files := make([][2]string, n)
	for i := range files {
		g := &gen{r: r}
		if files[i][0] = g.mainCF(); i%3 == 0 {
			files[i][1] = g.masterCF()
		}
	}
	parallel(n, func(i int) {
		if !compareMainCF(t, files[i][0], files[i][1], genNames, &st) {
			t.Errorf("postconf did not finish on:\n%s", files[i][0])
		}
	})
	t.Logf("generated: %v", &st)
}

// FuzzMainCFPostconf: main.cf text of any shape resolves in spawnd as in
// postconf. make fuzz runs it; the seeds are the corpus and generated
// files.
func FuzzMainCFPostconf(f *testing.F) {
	postconfBin(f)
	// Seeds only when fuzzing: TestPostconfCorpus and TestPostconfGenerated
	// compare the same files already.
	for i := 0; flag.Lookup("test.fuzz").Value.String() != "" && i < len(corpus)+50; i++ {
		if i < len(corpus) {
			f.Add(corpus[i])
		} else {
			f.Add((&gen{r: rand.New(rand.NewPCG(14, uint64(i)))}).mainCF())
		}
	}
	var st diffStats
	f.Fuzz(func(t *testing.T, text string) {
		if strings.IndexByte(text, 0) >= 0 || len(text) > 4096 {
			t.Skip("NUL byte (ends Postfix's line) or longer than 4 KiB")
		}
		if !compareMainCF(t, text, "", genNames, &st) {
			t.Skip("postconf did not finish")
		}
	})
}

// gen makes random main.cf and master.cf text from the whole grammar,
// right and wrong, with continued lines, comments and loops.
type gen struct {
	r *rand.Rand
}

// genNames are the parameters generated files set and name; undef is
// never set.
var genNames = []string{"u0", "u1", "u2", "u3", "u4", "u5", "undef", "syslog_name", "multi_instance_name",
	"command_time_limit", "command_cpu_limit", "queue_directory", "process_name", "service_name", "mail_owner"}

func (g *gen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *gen) name() string {
	if g.r.IntN(4) > 0 {
		return g.pick(genNames[:7]...)
	}
	return g.pick(genNames...)
}

func (g *gen) sp() string { return g.pick("", "", "", " ", "\t", "  ") }

// text is a value of up to n pieces, nested up to depth more levels.
func (g *gen) text(depth, n int) string {
	var b strings.Builder
	for i := g.r.IntN(n + 1); i > 0; i-- {
		b.WriteString(g.piece(depth))
	}
	return b.String()
}

func (g *gen) operand(depth int) string {
	if g.r.IntN(6) == 0 {
		return g.pick("1", "10", "007", "3.6", "3.10", " 5", "x", "", "$u0", "${u1}", "99999999999999999999")
	}
	return g.text(depth, 2)
}

func (g *gen) braced(depth int) string { return g.sp() + "{" + g.operand(depth) + "}" + g.sp() }

func (g *gen) piece(depth int) string {
	if depth <= 0 {
		return g.pick("x", "one", "2", "10", " ", "a b", ",", "/", "-", ".", "3.6", "007", "$$", "$u0", "${u1}", "$(u2)")
	}
	switch g.r.IntN(24) {
	case 0, 1, 2, 3, 4:
		return g.pick("x", "one", "2", "10", " ", "  ", "a b", ",", "/", "-", ".", "3.6", "007", "?", ":", "=", "\t", "}", "$$")
	case 5, 6, 7:
		return "$" + g.name()
	case 8:
		return "${" + g.sp() + g.name() + g.sp() + "}"
	case 9:
		return "$(" + g.name() + ")"
	case 10, 11:
		return "${" + g.name() + g.sp() + g.pick("?", ":") + g.pick(g.text(depth-1, 2), g.braced(depth-1)) + "}"
	case 12, 13, 14:
		return "${" + g.name() + g.sp() + "?" + g.braced(depth-1) + ":" + g.pick(g.braced(depth-1), g.text(depth-1, 2)) + "}"
	case 15, 16, 17, 18:
		op, left, right := g.pick("==", "!=", "<", "<=", ">", ">="), g.braced(depth-1), g.braced(depth-1)
		if g.r.IntN(4) == 0 { // compatibility levels
			op, left, right = op+"level", "{"+g.pick("3.6", "3.10", "2", " 3.6", "3.6.1", "$u0")+"}", g.sp()+"{"+g.pick("3.6", "3", "+3.7", "3.1023")+"}"
		} else if g.r.IntN(12) == 0 {
			op = g.pick("=", "=<", "==x", "?")
		}
		s := "${" + g.sp() + left + op + right
		switch g.r.IntN(4) {
		case 1:
			s += g.pick("?", ":") + g.braced(depth-1)
		case 2, 3:
			s += "?" + g.braced(depth-1) + ":" + g.pick(g.braced(depth-1), g.text(depth-1, 1))
		}
		return s + "}"
	case 19:
		return g.pick("$", "${", "$-", "${a b}", "${u0?{x}y}", "${{a}}", "${u0:{x}:{y}}", "${u0?{x", "$(u0", "{", "${u1?{x}:{y}z}")
	default:
		return g.text(depth-1, 3)
	}
}

// mainCF is a main.cf file: a few parameters set (some twice, some read
// only), continued lines, comments and blank lines between.
func (g *gen) mainCF() string {
	var b strings.Builder
	for i := 2 + g.r.IntN(7); i > 0; i-- {
		v := g.text(3, 4)
		if g.r.IntN(4) == 0 && v != "" { // continue the value on the next line
			at := g.r.IntN(len(v))
			v = v[:at] + g.pick("\n\t", "\n  ", "\n#c\n ", "\n\n\t") + v[at:]
		}
		b.WriteString(g.name() + g.pick(" = ", "=", " =", "\t=  ") + v + g.pick("\n", " \n", "\t\n", "\n#comment\n", "\n\n"))
	}
	if g.r.IntN(30) == 0 {
		b.WriteString(g.pick(" stray = x\n", "no equals\n", "= x\n"))
	}
	return b.String()
}

// masterCF is one or two spawnd services with -o overrides.
func (g *gen) masterCF() string {
	var b strings.Builder
	for i, svc := range []string{"policy unix - n n - 0", "127.0.0.1:9 inet n n n - 0"}[:1+g.r.IntN(2)] {
		b.WriteString(svc + " spawnd")
		for j := 1 + g.r.IntN(3); j > 0; j-- {
			v := g.text(2, 3)
			if balanced("{"+v+"}") != len(v)+2 { // master.cf's { } grouping needs balanced braces
				v = strings.NewReplacer("{", "", "}", "").Replace(v)
			}
			b.WriteString(" -o { " + g.pick("u"+fmt.Sprint(i+j), "syslog_name", "u0", "process_name") + " = " + v + " }")
		}
		b.WriteString(" user=nobody argv=/bin/true\n")
	}
	return b.String()
}
