// Package maillog writes log records the way Postfix daemons do: one line
// per event, "warning: ", "error: ", "fatal: " and "panic: " prefixes,
// info lines bare, to syslog as $syslog_name/spawnd[pid], or to a
// maillog_file as "Mon DD HH:MM:SS host ident[pid]: text", or under
// master(8) as datagrams of that shape to postlogd(8), as Postfix's
// msg_logger does. Both binaries use it; the executor opens the
// destination and hands the listener the open descriptor.
package maillog

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is the kind of destination a descriptor is.
type Kind string

// Destination kinds.
const (
	Syslog       Kind = "syslog"  // unix datagram socket to /dev/log
	SyslogStream Kind = "stream"  // unix stream socket to /dev/log
	File         Kind = "file"    // a file, /dev/stdout or /dev/stderr
	Postlog      Kind = "postlog" // unix datagram socket to postlogd(8)
)

// syslogPath is where the local syslog daemon listens (a variable for
// this package's tests).
var syslogPath = "/dev/log"

// Syslog severities, as Postfix maps its message levels.
const (
	sevCrit    = 2
	sevErr     = 3
	sevWarning = 4
	sevInfo    = 6
)

// Logger writes records to one destination. It is safe for concurrent use.
type Logger struct {
	mu       sync.Mutex
	fd       int
	kind     Kind
	ident    string // $syslog_name/spawnd
	facility int
	host     string
	// Pid is the pid records carry, and Path the socket dialled again when
	// a write fails; set them before the logger is shared.
	Pid  int
	Path string
}

// Open opens the destination the executor's parameters name: postlogd(8)
// at the socket postlog when it is not empty (Postfix mode with a
// maillog_file: POSTLOG_SERVICE), else the file maillog_file when set,
// else the syslog socket, else (no syslog daemon, or no postlogd)
// standard error, so that no message is lost. The descriptor is
// close-on-exec. fac is syslog(3)'s facility number (policy checks
// syslog_facility's name).
func Open(maillogFile, postlog, ident string, fac int) (*Logger, error) {
	fd, kind, err := dialPostlog(postlog)
	if err != nil && postlog == "" && maillogFile != "" { // not the file itself, in Postfix mode
		if fd, kind, err = openFile(maillogFile); err != nil {
			return nil, fmt.Errorf("open maillog_file %s: %w", maillogFile, err)
		}
	}
	if err != nil {
		fd, kind, err = dialSyslog(syslogPath)
	}
	if err != nil {
		if fd, kind, err = openFile("/dev/stderr"); err != nil {
			return nil, fmt.Errorf("dup stderr for logging: %w", err)
		}
	}
	l := New(fd, kind, ident, fac)
	if kind == Postlog {
		l.Path = postlog
	}
	return l, nil
}

// openFile opens maillogFile for appending as Postfix's safe_open does:
// never through a symlink at the last name (O_NOFOLLOW), created only
// where nothing is (O_EXCL), and only a regular file with one link owned
// by this process's user, checked on the open descriptor, so that nothing
// changes between check and use. O_NONBLOCK and O_NOCTTY: a FIFO or a
// terminal put there neither blocks the open nor becomes root's.
// /dev/stdout and /dev/stderr are taken as the descriptors: under systemd
// they are sockets to the journal, which open(2) refuses.
func openFile(path string) (int, Kind, error) {
	if std, ok := map[string]int{"/dev/stdout": 1, "/dev/stderr": 2}[path]; ok {
		fd, err := unix.FcntlInt(uintptr(std), unix.F_DUPFD_CLOEXEC, 3)
		return fd, File, err
	}
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags, 0)
	if err == unix.ENOENT {
		fd, err = unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, 0o600)
	}
	if err != nil {
		return -1, File, err
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || st.Uid != uint32(os.Geteuid()) {
		unix.Close(fd)
		return -1, File, fmt.Errorf("not a regular file with one link, owned by uid %d", os.Geteuid())
	}
	return fd, File, nil
}

// New returns a logger writing to the open descriptor fd of the given
// kind, with this process's pid, which dials syslogPath again when a write
// fails. The host field of file and postlog records is the first label of
// POSTLOG_HOSTNAME (master(8) sets it to myhostname), else of the kernel's
// host name.
func New(fd int, kind Kind, ident string, facility int) *Logger {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(cmp.Or(os.Getenv("POSTLOG_HOSTNAME"), host), ".")
	return &Logger{fd: fd, kind: kind, ident: ident, facility: facility, host: host, Pid: os.Getpid(), Path: syslogPath}
}

// Fd returns the descriptor the logger writes to, to hand to the listener.
func (l *Logger) Fd() int { return l.fd }

// Kind returns the kind of the descriptor.
func (l *Logger) Kind() Kind { return l.kind }

// asRoot is read once, at start-up: the listener's seccomp filter has no
// geteuid.
var asRoot = os.Geteuid() == 0

// dialPostlog connects to postlogd(8)'s socket at path, as root without
// following a symbolic link: public/ is mail_owner's to change. The
// listener dials the name: a link there is mail_owner's own, and its
// seccomp filter allows no open.
func dialPostlog(path string) (int, Kind, error) {
	if asRoot {
		at, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
		if err != nil {
			return -1, Postlog, err
		}
		defer unix.Close(at)
		path = "/proc/self/fd/" + strconv.Itoa(at)
	}
	fd, _, err := dialSyslog(path)
	return fd, Postlog, err
}

//tcb:request-path
func dialSyslog(path string) (int, Kind, error) {
	var err error = unix.EPROTOTYPE
	for i, typ := range []int{unix.SOCK_DGRAM, unix.SOCK_STREAM} {
		fd, serr := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if serr != nil {
			return -1, "", serr
		}
		if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err == nil {
			return fd, []Kind{Syslog, SyslogStream}[i], nil
		}
		unix.Close(fd)
		if err != unix.EPROTOTYPE {
			break
		}
	}
	return -1, "", err
}

// Info logs a bare line.
//
//tcb:request-path
func (l *Logger) Info(format string, a ...any) { l.log(sevInfo, "", format, a...) }

// Warning logs a "warning: " line.
//
//tcb:request-path
func (l *Logger) Warning(format string, a ...any) { l.log(sevWarning, "warning: ", format, a...) }

// Error logs an "error: " line.
//
//tcb:request-path
func (l *Logger) Error(format string, a ...any) { l.log(sevErr, "error: ", format, a...) }

// Fatal logs a "fatal: " line and exits with status 1.
func (l *Logger) Fatal(format string, a ...any) {
	l.log(sevCrit, "fatal: ", format, a...)
	os.Exit(1)
}

//tcb:request-path
func (l *Logger) log(sev int, prefix, format string, a ...any) {
	text := strings.ReplaceAll(prefix+fmt.Sprintf(format, a...), "\n", " ")
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Postfix's msg_logger: strftime "%b %d %H:%M:%S", day zero-padded.
	rec := fmt.Sprintf("%s %s %s[%d]: %s", now.Format("Jan 02 15:04:05"), l.host, l.ident, l.Pid, text)
	if l.kind == File {
		rec += "\n"
	} else if l.kind != Postlog {
		rec = fmt.Sprintf("<%d>%s %s[%d]: %s\n", l.facility*8+sev, now.Format(time.Stamp), l.ident, l.Pid, text)
	}
	if l.write(rec) == nil || l.kind == File {
		return
	}
	// The syslog daemon or postlogd restarted: connect again, once, and retry.
	dial := dialSyslog
	if l.kind == Postlog {
		dial = dialPostlog
	}
	if fd, kind, err := dial(l.Path); err == nil {
		unix.Close(l.fd)
		l.fd, l.kind = fd, kind
		l.write(rec)
	}
}

//tcb:request-path
func (l *Logger) write(rec string) error {
	for b := []byte(rec); len(b) > 0; {
		n, err := unix.Write(l.fd, b)
		if err != nil && err != unix.EINTR {
			return err
		}
		b = b[max(n, 0):]
	}
	return nil
}
