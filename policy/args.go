package policy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

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
	for ; i < len(args) && len(args[i]) > 1 && args[i][0] == '-'; i++ {
		if args[i] == "--" {
			i++
			break
		}
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
			case c == 'r' && (err != nil || n <= 0):
				return nil, fmt.Errorf("invalid retirement time: %s", val)
			case c == 's' && (err != nil || n <= 0):
				return nil, fmt.Errorf("invalid socket_count: %s", val)
			case c == 's':
				a.Sockets = n
			default:
				*values[c] = val
			}
			break
		}
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
