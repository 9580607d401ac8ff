package executor

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"spawnd/policy"
)

// backlog is the listen queue of the sockets spawnd opens: connections
// past a service's process limit wait here.
const backlog = 4096

// Inherited returns the sockets systemd passed this process, by name
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), close-on-exec, and clears the
// variables so no child sees them.
func Inherited() map[string][]int {
	defer func() {
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(v)
		}
	}()
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	byName := map[string][]int{}
	for i := 0; i < n; i++ {
		fd := 3 + i
		unix.CloseOnExec(fd)
		name := "unknown"
		if i < len(names) {
			name = names[i]
		}
		byName[name] = append(byName[name], fd)
	}
	return byName
}

// OpenSockets sets cfg.Sockets, each service's listening sockets: the
// inherited ones named after it, or new ones; and cfg.Paths, the unix
// socket paths it created, to remove on exit. It closes the inherited
// sockets no service takes, with a warning. On an error, which it logs,
// it removes the paths it created.
func OpenSockets(cfg *Config) error {
	inh := Inherited()
	for _, s := range cfg.Policy.Services {
		if got := inh[s.Name]; len(got) > 0 {
			for _, fd := range got {
				if err := checkInherited(fd, s.Endpoint.Type); err != nil {
					cfg.Log.Error("service %s: %v", s.Name, err)
					return fmt.Errorf("service %s: %w", s.Name, err)
				}
			}
			cfg.Sockets = append(cfg.Sockets, got)
			delete(inh, s.Name)
			continue
		}
		fd, err := listen(s.Endpoint, cfg.Policy.MailOwner)
		if s.Endpoint.Type == policy.Unix {
			cfg.Paths = append(cfg.Paths, s.Endpoint.Address)
		}
		if err != nil {
			for _, path := range cfg.Paths {
				os.Remove(path)
			}
			cfg.Log.Error("service %s: %v", s.Name, err)
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		cfg.Sockets = append(cfg.Sockets, []int{fd})
	}
	for _, name := range slices.Sorted(maps.Keys(inh)) { // a misnamed unit, or a service now gone
		for _, fd := range inh[name] {
			unix.Close(fd)
		}
		cfg.Log.Warning("inherited socket %s (LISTEN_FDNAMES) is no service's: closed", name)
	}
	return nil
}

// listen opens a listening socket for ep.
func listen(ep policy.Endpoint, owner policy.Account) (int, error) {
	if ep.Type == policy.Unix {
		return listenUnix(ep, owner)
	}
	return listenInet(ep.Address)
}

// checkInherited requires an inherited descriptor to be what the listener
// will accept on: a listening stream socket of the service's type.
func checkInherited(fd int, typ string) error {
	st, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("inherited descriptor %d: %w", fd, err)
	}
	listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	domain, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	ok := domain == unix.AF_UNIX
	if typ == policy.Inet {
		ok = domain == unix.AF_INET || domain == unix.AF_INET6
	}
	if !ok || st != unix.SOCK_STREAM || listening != 1 {
		return fmt.Errorf("inherited descriptor %d is not a listening %s stream socket", fd, typ)
	}
	return nil
}

// listenInet listens on addr as Go's net package does: SO_REUSEADDR, and
// both IPv6 and IPv4 when the host is empty. It returns a descriptor of
// its own, close-on-exec.
func listenInet(addr string) (int, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return -1, err
	}
	defer l.Close()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 3) })
	return fd, err
}

// listenUnix creates a unix socket as Postfix does: any stale socket
// removed, owned by mail_owner, mode 0666; the directory it lives in
// controls access, and is created (mail_owner, 0700 when private) when
// missing.
func listenUnix(ep policy.Endpoint, owner policy.Account) (int, error) {
	dir := filepath.Dir(ep.Address)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return -1, err
		}
		if ep.Private {
			os.Chmod(dir, 0o700)
			os.Chown(dir, int(owner.Uid), int(owner.Gid))
		}
	}
	if st, err := os.Lstat(ep.Address); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return -1, fmt.Errorf("%s exists and is not a socket", ep.Address)
		}
		os.Remove(ep.Address)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: ep.Address}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", ep.Address, err)
	}
	if err := os.Chown(ep.Address, int(owner.Uid), int(owner.Gid)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := os.Chmod(ep.Address, 0o666); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", ep.Address, err)
	}
	return fd, nil
}
