package policy

import (
	"cmp"
	"fmt"
	"maps"
	"math"
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

// splitNameVal splits "name = value" as Postfix's split_nameval does.
func splitNameVal(s string) (name, value, err string) {
	name, value, ok := strings.Cut(s, "=")
	name = strings.Trim(name, spaces)
	if name == "" {
		return "", "", "missing attribute name"
	} else if !ok || strings.ContainsAny(name, spaces) {
		return "", "", "missing '=' after attribute name"
	}
	return name, strings.Trim(value, spaces), ""
}

// balanced returns the length of the {...} group that s starts with, or
// 0 when there is none (Postfix's balpar).
func balanced(s string) int {
	for i, level := 0, 0; i < len(s) && s[0] == '{'; i++ {
		if s[i] == '{' {
			level++
		} else if s[i] == '}' {
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
		start, level := i, 0
		for ; i < len(s) && (level > 0 || strings.IndexByte(seps, s[i]) < 0); i++ {
			if s[i] == '{' {
				level++
			} else if s[i] == '}' && level > 0 {
				level--
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
	file string
	vals map[string]string // defaults, main.cf and overrides, unexpanded
	pos  map[string]Error  // where each value not a default was set
	memo map[string]string // expanded values
	l    *loader
	svc  string // the service errors name, if any
}

func (l *loader) parseMainCF(file, text string) *conf {
	c := &conf{file: file, vals: maps.Clone(defaults), pos: map[string]Error{}, memo: map[string]string{}, l: l}
	for _, ln := range l.logical(file, text) {
		pos := Error{File: file, Line: ln.n}
		if name, value, err := splitNameVal(ln.s); err != "" {
			l.add(pos, "%s: %q", err, ln.s)
		} else {
			if _, set := c.pos[name]; set && c.vals[name] != value {
				l.warn(pos, "overriding earlier entry: %s=%s", name, value)
			}
			c.vals[name], c.pos[name] = value, pos
		}
	}
	return c
}

// with returns c with overrides that apply at pos: a master.cf service's
// -o options, or those of the Postfix command line.
func (c *conf) with(over map[string]string, pos Error) *conf {
	n := &conf{file: c.file, vals: maps.Clone(c.vals), pos: maps.Clone(c.pos), memo: map[string]string{}, l: c.l}
	for k, v := range over {
		n.vals[k], n.pos[k] = v, pos
	}
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
	v, err := c.value(name, map[string]bool{})
	if err != nil {
		c.errorf(name, "parameter %s: %v", name, err)
	}
	return v, err == nil
}

// value expands a parameter; an unknown one is empty.
func (c *conf) value(name string, active map[string]bool) (string, error) {
	if v, ok := c.memo[name]; ok {
		return v, nil
	} else if active[name] {
		return "", fmt.Errorf("expansion loop through $%s", name)
	}
	raw := c.vals[name]
	active[name] = true
	defer delete(active, name)
	v, err := c.expand(raw, active)
	if err == nil {
		c.memo[name] = v
	}
	return v, err
}

func nameLen(s string) int {
	return len(s) - len(strings.TrimLeft(s, "_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
}

// expand does Postfix's $name, ${name}, $$, ${name?text}, ${name:text},
// ${name?{text}} and ${name:{text}} expansion. Recursion is bounded: by
// the loop check through names, by the nesting of braces in s through
// text.
func (c *conf) expand(s string, active map[string]bool) (string, error) {
	var b strings.Builder
	for rest := s; ; {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+1:]
		var ref string
		switch n := nameLen(rest); {
		case n > 0:
			ref, rest = rest[:n], rest[n:]
		case strings.HasPrefix(rest, "$"): // $$ is one $
			b.WriteByte('$')
			rest = rest[1:]
			continue
		case strings.HasPrefix(rest, "{"):
			if n = balanced(rest); n == 0 {
				return "", fmt.Errorf("truncated macro reference: %q", s)
			}
			ref, rest = rest[1:n-1], rest[n:]
		default:
			return "", fmt.Errorf("empty macro name: %q", s)
		}
		n := nameLen(ref)
		name, op, text := ref[:n], "", ""
		if n < len(ref) {
			op, text = ref[n:n+1], ref[n+1:]
		}
		t := strings.Trim(text, spaces)
		braced := strings.HasPrefix(t, "{") // ${name?{text}}; Postfix's {a}:{b} is not supported
		if name == "" || op != "" && op != "?" && op != ":" || braced && balanced(t) != len(t) {
			return "", fmt.Errorf("bad macro syntax: %q", "${"+ref+"}")
		} else if braced {
			text = strings.Trim(t[1:len(t)-1], spaces)
		}
		v, err := c.value(name, active)
		if err == nil && op != "" && (v != "") == (op == "?") {
			v, err = c.expand(text, active)
		} else if op != "" {
			v = ""
		}
		if err != nil {
			return "", err
		}
		if b.WriteString(v); b.Len() > maxValue {
			return "", fmt.Errorf("value longer than %d bytes", maxValue)
		}
	}
}

// convTime converts a Postfix time value to seconds: an integer and an
// optional unit s, m, h, d or w, of which only the first letter counts
// (conv_time).
func convTime(v string) (int64, bool) {
	n := len(v) - len(strings.TrimLeft(strings.TrimPrefix(v, "+"), "0123456789"))
	num, err := strconv.ParseInt(v[:n], 10, 32)
	unit := (v + "s")[n] // the first byte after the digits, s if none
	mult := map[byte]int64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[unit]
	if err != nil || mult == 0 || num < 0 || num > math.MaxInt32/mult {
		return 0, false
	}
	return num * mult, true
}

// time returns a time parameter of at least min seconds.
func (c *conf) time(name string, min int64) time.Duration {
	v, ok := c.str(name)
	n, valid := convTime(v)
	if ok && !valid {
		c.errorf(name, "parameter %s: bad time value or unit: %s", name, v)
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
