package policy

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	spaces   = " \t\r\n\v\f"
	listSeps = ", \t\r\n" // export_environment separators (mail_parm_split)
	maxValue = 1 << 16    // the longest expanded parameter value
)

// line is one logical line of main.cf or master.cf and the number of its
// first physical line.
type line struct {
	n int
	s string
}

// logical reads text as Postfix's readlline does: a line that starts with
// whitespace continues the previous one (its newline dropped, its leading
// whitespace kept); blank lines and lines whose first non-blank character
// is # are skipped, even inside a continued line.
func (l *loader) logical(file, text string) []line {
	var out []line
	for i, s := range strings.Split(text, "\n") {
		switch t := strings.TrimLeft(s, spaces); {
		case t == "" || t[0] == '#':
		case t == s:
			out = append(out, line{i + 1, s})
		case len(out) > 0:
			out[len(out)-1].s += s
		default:
			l.warn(Error{File: file, Line: i + 1}, "logical line must not start with whitespace: %q", s)
		}
	}
	return out
}

// splitNameVal splits "name = value" as Postfix's split_nameval does; after
// an error, name and value mean nothing.
func splitNameVal(s string) (name, value, err string) {
	name, value, ok := strings.Cut(s, "=")
	if name = strings.Trim(name, spaces); name == "" {
		err = "missing attribute name"
	} else if !ok || strings.ContainsAny(name, spaces) {
		err = "missing '=' after attribute name"
	}
	return name, strings.Trim(value, spaces), err
}

// balanced returns the length of the {...} or (...) group that s starts
// with, or 0 when there is none (Postfix's balpar).
func balanced(s string) int {
	close := map[string]byte{"{": '}', "(": ')'}[s[:min(len(s), 1)]]
	for i, level := 0, 0; close != 0 && i < len(s); i++ {
		if s[i] == s[0] {
			level++
		} else if s[i] == close {
			if level--; level == 0 {
				return i + 1
			}
		}
	}
	return 0
}

// words splits s at the separator bytes seps, never inside {...}
// (mystrtokq); a word that starts with { loses its braces and the
// whitespace just inside them (extpar).
func words(s, seps string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); i++ {
		start := i
		for ; i < len(s) && strings.IndexByte(seps, s[i]) < 0; i++ {
			if s[i] == '{' { // on to its }, or the end
				i += cmp.Or(balanced(s[i:]), len(s)-i) - 1
			}
		}
		if w := s[start:i]; w == "" {
			continue
		} else if w[0] != '{' {
			out = append(out, w)
		} else if n := balanced(w); n == 0 {
			return out, fmt.Errorf("missing '}' in %q", w)
		} else if n != len(w) {
			return out, fmt.Errorf("syntax error after '}' in %q", w)
		} else {
			out = append(out, strings.Trim(w[1:n-1], spaces))
		}
	}
	return out, nil
}

// conf holds parameters: Postfix's defaults under main.cf under -o
// overrides, each expanded when first read.
type conf struct {
	file  string
	vals  map[string]string // defaults, main.cf and overrides, unexpanded
	pos   map[string]Error  // where each value not a default was set
	memo  map[string]expansion
	calls int // nested relational operands being expanded
	l     *loader
	svc   string // the service errors name, if any
}

// expansion is a parameter's expanded value and the deepest nesting of
// mac_expand calls it took, counted from its own text at 0 (-1: empty).
type expansion struct {
	v     string
	depth int
}

// readOnly are set by spawnd, not by main.cf or -o, as for Postfix's
// daemons; service_name is the service's own in its -o scope.
var readOnly = map[string]string{"process_name": "spawnd", "process_id": strconv.Itoa(os.Getpid()), "service_name": ""}

func (l *loader) parseMainCF(file, text string) *conf {
	c := &conf{file: file, vals: maps.Clone(defaults), pos: map[string]Error{}, memo: map[string]expansion{}, l: l}
	c.vals["config_directory"] = filepath.Dir(file)
	for _, ln := range l.logical(file, text) {
		pos := Error{File: file, Line: ln.n}
		if name, value, err := splitNameVal(ln.s); err != "" {
			l.add(pos, "%s: %q", err, ln.s)
		} else if _, ro := readOnly[name]; ro {
			l.warn(pos, "read-only parameter assignment: %s=%s", name, value)
		} else {
			if _, set := c.pos[name]; set && c.vals[name] != value {
				l.warn(pos, "overriding earlier entry: %s=%s", name, c.vals[name])
			}
			c.vals[name], c.pos[name] = value, pos
		}
	}
	maps.Copy(c.vals, readOnly)
	return c
}

// with returns c with overrides that apply at pos: a master.cf service's
// -o options, or those of the Postfix command line.
func (c *conf) with(over map[string]string, pos Error) *conf {
	n := &conf{file: c.file, vals: maps.Clone(c.vals), pos: maps.Clone(c.pos), memo: map[string]expansion{}, l: c.l}
	for k, v := range over {
		n.vals[k], n.pos[k] = v, pos
	}
	maps.Copy(n.vals, readOnly)
	n.vals["service_name"] = pos.Service
	return n
}

func (c *conf) has(name string) bool { _, ok := c.vals[name]; return ok }

// errorf reports a problem with parameter name where it was set.
func (c *conf) errorf(name, format string, a ...any) {
	pos := cmp.Or(c.pos[name], Error{File: c.file})
	pos.Service = cmp.Or(pos.Service, c.svc)
	c.l.add(pos, format, a...)
}

// str returns parameter name expanded; ok is false after an error.
func (c *conf) str(name string) (v string, ok bool) {
	e, err := c.value(name, map[string]bool{})
	if err == nil && e.depth > maxNesting {
		err = errNesting(c.vals[name])
	}
	if err != nil {
		c.errorf(name, "parameter %s: %v", name, err)
	}
	return e.v, err == nil
}

// value expands a parameter; an unknown one is empty.
func (c *conf) value(name string, active map[string]bool) (expansion, error) {
	if e, ok := c.memo[name]; ok {
		return e, nil
	} else if active[name] {
		return e, fmt.Errorf("expansion loop through $%s", name)
	}
	var b strings.Builder
	active[name] = true
	defer delete(active, name)
	d, err := c.expand(&b, c.vals[name], 0, active)
	if err == nil {
		c.memo[name] = expansion{b.String(), d}
	}
	return c.memo[name], err
}

const (
	alnum       = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	macroSpaces = " \t\r\n" // CHARS_SPACE: mac_expand's whitespace
	maxNesting  = 100       // mac_expand's "unreasonable macro call nesting"
)

func nameLen(s string) int { return len(s) - len(strings.TrimLeft(s, "_"+alnum)) }

// expand appends s to b, expanded as Postfix's mac_parse and mac_expand
// (MAC_EXP_FLAG_RECURSE) do with s at nesting lv, and returns the deepest
// nesting reached. Recursion is bounded by the loop check through names
// and by the nesting limit through text.
func (c *conf) expand(b *strings.Builder, s string, lv int, active map[string]bool) (int, error) {
	deep, orig := lv-1+min(len(s), 1), s
	if deep > maxNesting {
		return deep, errNesting(s)
	}
	for s != "" {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		} else if strings.HasPrefix(s[i:], "$$") { // $$ is one $
			b.WriteString(s[:i+1])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		e, n := s[i+1:], nameLen(s[i+1:]) // $name, ${...} or $(...)
		if strings.HasPrefix(e, "{") || strings.HasPrefix(e, "(") {
			if n = balanced(e); n == 0 {
				return deep, fmt.Errorf("truncated macro reference: %q", orig)
			}
			e, s = e[1:n-1], e[n:]
		} else {
			e, s = e[:n], e[n:]
		}
		if e == "" {
			return deep, fmt.Errorf("empty macro name: %q", orig)
		}
		d, err := c.macro(b, e, lv, active)
		if deep = max(deep, d); err != nil {
			return deep, err
		} else if b.Len() > maxValue {
			return deep, fmt.Errorf("value longer than %d bytes", maxValue)
		}
	}
	return deep, nil
}

// macro appends one ${...} to b as mac_expand_callback expands it: a
// name or a relational {a} OP {b}, alone (the value), or followed by
// ?text, :text or ?{text}:text. Of the ? and : operands only the one
// chosen is expanded; a name chooses by whether its value, unexpanded,
// is empty.
func (c *conf) macro(b *strings.Builder, e string, lv int, active map[string]bool) (int, error) {
	t := strings.TrimLeft(e, macroSpaces)
	name, rest := t[:nameLen(t)], strings.TrimLeft(t[nameLen(t):], macroSpaces)
	set, rel, err := c.vals[name], strings.HasPrefix(t, "{"), error(nil)
	if rel {
		set, rest, err = c.relational(t, active)
	}
	switch {
	case err == nil && rest != "" && rest[0] != '?' && rest[0] != ':':
		return lv, fmt.Errorf("%s at: %q", map[bool]string{false: "attribute name syntax error", true: `"?" or ":" expected`}[rel], e)
	case err != nil || set == "" && rest == "":
		return lv, err
	case rest == "" && rel:
		b.WriteString(set)
		return lv + 1, nil
	case rest == "":
		v, err := c.value(name, active)
		b.WriteString(v.v)
		return lv + 1 + v.depth, err
	}
	deep := lv
	for op := rest[0]; rest != "" && err == nil; op = ':' {
		var text string
		if text, rest, err = operand(rest[1:]); err == nil && (op == '?') == (set != "") {
			var d int
			d, err = c.expand(b, text, lv+1, active)
			deep = max(deep, d)
		}
		if err == nil && rest != "" && (op != '?' || rest[0] != ':') {
			err = fmt.Errorf("unexpected input at: %q", rest)
		}
	}
	return deep, err
}

// operand returns a ? or : operand's text and what follows: the contents
// of {text} and what follows it after whitespace, or all of s.
func operand(s string) (text, rest string, err error) {
	t := strings.TrimLeft(s, macroSpaces)
	if !strings.HasPrefix(t, "{") {
		return s, "", nil
	} else if n := balanced(t); n > 0 {
		return t[1 : n-1], strings.TrimLeft(t[n:], macroSpaces), nil
	}
	return "", "", fmt.Errorf("unbalanced {} in attribute expression: %q", t)
}

// relops holds each operator's truth when the left operand is less than,
// equal to and greater than the right one.
var relops = map[string]string{"==": "010", "!=": "101", "<": "100", "<=": "110", ">=": "011", ">": "001"}

// relational evaluates the {a} OP {b} t starts with, "true" or empty, as
// mac_exp_parse_relational does, and returns what follows it. Each
// operand is expanded as a mac_expand call of its own. They compare as
// compatibility levels with OPlevel, as numbers when both are decimal
// digits, else as strings.
func (c *conf) relational(t string, active map[string]bool) (string, string, error) {
	left, t, err := operand(t)
	n := len(t) - len(strings.TrimLeft(t, "<>!=?+-*/~&|%"))
	op, suffix := t[:n], t[n:n+len(t[n:])-len(strings.TrimLeft(t[n:], alnum))]
	right, rest, err2 := operand(t[n+len(suffix):])
	if err = cmp.Or(err, err2); err == nil && (relops[op] == "" || suffix != "" && suffix != "level" ||
		!strings.HasPrefix(strings.TrimLeft(t[n+len(suffix):], macroSpaces), "{")) {
		err = fmt.Errorf("bad relational expression at: %q", t)
	}
	if err != nil {
		return "", "", err
	}
	x, err := c.top(left, active) // both, as Postfix does
	y, err2 := c.top(right, active)
	d, err3 := compare(x, y, suffix != "")
	if err = cmp.Or(err, err2, err3); err != nil {
		return "", "", err
	}
	return map[bool]string{true: "true"}[relops[op][d+1] == '1'], rest, nil
}

// top expands s as a mac_expand call of its own. Such calls (relational
// operands) nest without a limit in Postfix, to 1,000 in spawnd.
func (c *conf) top(s string, active map[string]bool) (string, error) {
	var b strings.Builder
	if c.calls++; c.calls > 10*maxNesting {
		return "", errNesting(s)
	}
	defer func() { c.calls-- }()
	d, err := c.expand(&b, s, 0, active)
	if err == nil && d > maxNesting {
		err = errNesting(s)
	}
	return b.String(), err
}

func errNesting(s string) error { return fmt.Errorf("unreasonable macro call nesting: %q", s) }

// compare returns -1, 0 or 1 as a is less than, equal to or greater than
// b: as compatibility levels major[.minor[.patch]] (each part as strtol
// reads it, minor and patch under 1024: compat_level_from_string), as
// numbers when both are decimal digits, else as strings.
func compare(a, b string, level bool) (int, error) {
	if !level && (!digits(a) || !digits(b)) {
		return strings.Compare(a, b), nil
	}
	var n [2]int64
	for j, s := range []string{a, b} {
		parts, shift := []string{s}, 0
		if level {
			parts, shift = strings.SplitN(s, ".", 3), 20
		}
		for i, part := range parts {
			v, err := strconv.ParseInt(strings.TrimLeft(part, spaces), 10, 64)
			if err != nil || v < 0 || level && (v > math.MaxInt64>>20 || i > 0 && v > 1023) {
				return 0, fmt.Errorf("bad number or compatibility level: %q", s)
			}
			n[j] |= v << (shift - 10*i)
		}
	}
	return cmp.Compare(n[0], n[1]), nil
}

// time returns a time parameter of at least min seconds, 0 after an
// error: an integer and an optional unit s, m, h, d or w, of which only
// the first letter counts (conv_time).
func (c *conf) time(name string, min int64) time.Duration {
	v, ok := c.str(name)
	d := len(v) - len(strings.TrimLeft(strings.TrimPrefix(v, "+"), "0123456789"))
	n, err := strconv.ParseInt(v[:d], 10, 32)
	unit := map[byte]int64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[(v + "s")[d]] // s if none
	if n *= unit; err != nil || n > math.MaxInt32 || unit == 0 {
		n = 0
		if ok {
			c.errorf(name, "parameter %s: bad time value or unit: %s", name, v)
		}
	} else if ok && n < min {
		c.errorf(name, "invalid %s: %d (min %d)", name, n, min)
	}
	return time.Duration(n) * time.Second
}

// integer returns an integer parameter of at least min.
func (c *conf) integer(name string, min int) int {
	v, ok := c.str(name)
	n, err := strconv.ParseInt(v, 10, 32)
	if ok && err != nil {
		c.errorf(name, "bad numerical configuration: %s = %s", name, v)
	} else if ok && int(n) < min {
		c.errorf(name, "invalid %s parameter value %d < %d", name, n, min)
	}
	return int(n)
}

// size returns a non-negative count or byte size, as Postfix writes
// them: decimal digits, no unit.
func (c *conf) size(name string) uint64 {
	v, ok := c.str(name)
	n, err := strconv.ParseUint(v, 10, 63)
	if ok && err != nil {
		c.errorf(name, "bad numerical configuration: %s = %s", name, v)
	}
	return n
}

// boolean returns a yes/no parameter.
func (c *conf) boolean(name string) bool {
	v, _ := c.str(name)
	if v != "" && !strings.EqualFold(v, "yes") && !strings.EqualFold(v, "no") {
		c.errorf(name, "bad boolean configuration: %s = %s", name, v)
	}
	return strings.EqualFold(v, "yes")
}

// path returns a parameter that must be an absolute path, or empty.
func (c *conf) path(name string, mayBeEmpty bool) string {
	v, ok := c.str(name)
	if ok && !filepath.IsAbs(v) && (v != "" || !mayBeEmpty) {
		c.errorf(name, "parameter %s: not an absolute path: %s", name, v)
	}
	return v
}
