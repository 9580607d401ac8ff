package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// DaemonArgs is a master(8) command line, parsed as Postfix's daemon
// skeleton does with getopt "+cdDi:lm:n:o:r:s:St:uvVz": options stop at the
// first word that is not one, and the words left are the attributes.
type DaemonArgs struct {
	Service      string   // -n
	Transport    string   // -t
	Overrides    []string // -o name=value, in order
	Sockets      int      // -s, default 1
	Verbose      int      // -v, repeatable
	Chroot       bool     // -c (a flag: chroot to queue_directory)
	Debug        bool     // -d
	Unprivileged bool     // -u
	Alone        bool     // -l: maxproc is 1
	Unlimited    bool     // -z: maxproc is 0
	MaxIdle      string   // -i
	MaxUse       string   // -m
	Attrs        []string // user=..., argv=...
}

// ParseDaemonArgs parses args (without the program name).
func ParseDaemonArgs(args []string) (*DaemonArgs, error) {
	a := &DaemonArgs{Sockets: 1}
	i := 0
	for ; i < len(args); i++ {
		w := args[i]
		if w == "--" {
			i++
			break
		}
		if len(w) < 2 || w[0] != '-' {
			break
		}
		for j := 1; j < len(w); j++ {
			c := w[j]
			if strings.IndexByte("imnorst", c) >= 0 {
				val := w[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("option -%c requires an argument", c)
					}
					i++
					val = args[i]
				}
				switch c {
				case 'i':
					a.MaxIdle = val
				case 'm':
					a.MaxUse = val
				case 'n':
					a.Service = val
				case 'o':
					if !strings.Contains(val, "=") {
						return nil, fmt.Errorf("invalid \"-o %s\" option value", val)
					}
					a.Overrides = append(a.Overrides, val)
				case 's':
					n, err := strconv.Atoi(val)
					if err != nil || n <= 0 {
						return nil, fmt.Errorf("invalid socket_count: %s", val)
					}
					a.Sockets = n
				case 't':
					a.Transport = val
				}
				break
			}
			switch c {
			case 'c':
				a.Chroot = true
			case 'd':
				a.Debug = true
			case 'l':
				a.Alone = true
			case 'u':
				a.Unprivileged = true
			case 'v':
				a.Verbose++
			case 'z':
				a.Unlimited = true
			case 'D', 'S', 'V':
			default:
				return nil, fmt.Errorf("invalid option: -%c", c)
			}
		}
	}
	a.Attrs = args[i:]
	return a, nil
}
