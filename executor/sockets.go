package executor

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"spawnd/policy"
)

// backlog is the listen queue of the sockets spawnd opens: connections
// past a service's process limit wait here.
const backlog = 4096

// inherited returns the sockets systemd passed this process, by name
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES); Setup has made them
// close-on-exec. The variables stay: no child gets spawnd's environment
// (a command's is the policy's, the listener's empty).
func inherited() map[string][]int {
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || n < 0 {
		n = 0
	}
	// systemd names a socket without a name "unknown"
	names := append(strings.Split(os.Getenv("LISTEN_FDNAMES"), ":"), slices.Repeat([]string{"unknown"}, n)...)
	byName := map[string][]int{}
	for i := range n {
		byName[names[i]] = append(byName[names[i]], 3+i)
	}
	return byName
}

// entries returns the entries of pol's services, each with its listening
// sockets: those inherited under its name (inh), those of a current
// service at the same address, or new ones, whose unix socket paths join
// cfg.Paths, to remove on exit. It closes the inherited sockets no service
// takes, with a warning. On an error it releases the sockets it took.
func (e *Executor) entries(pol *policy.Policy, inh map[string][]int) ([]*entry, error) {
	sockets := make([][]int, len(pol.Services))
	for i, s := range pol.Services {
		fds, ok := inh[s.Name]
		delete(inh, s.Name)
		var err error
		for _, fd := range fds {
			err = cmp.Or(err, checkInherited(fd, s.Endpoint.Type))
		}
		// the same endpoint ("unix" and "inet" are of one length)
		same := func(c *entry) bool { return c.Endpoint.Type+c.Endpoint.Address == s.Endpoint.Type+s.Endpoint.Address }
		if i := slices.IndexFunc(e.svcs, same); !ok && i >= 0 {
			fds = e.svcs[i].fds
		}
		if fds == nil && s.Endpoint.Type == policy.Unix {
			if fds, err = listenUnix(s.Endpoint, pol.MailOwner); err == nil {
				e.cfg.Paths = append(e.cfg.Paths, s.Endpoint.Address)
			}
		} else if fds == nil {
			fds, err = listenInet(s.Endpoint.Address)
		}
		if err != nil {
			e.release(e.services(pol.Services[:i], sockets[:i]))
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		sockets[i] = fds
	}
	for _, name := range slices.Sorted(maps.Keys(inh)) { // a misnamed unit, or a service now gone
		for _, fd := range inh[name] {
			unix.Close(fd)
		}
		e.cfg.Log.Warning("inherited socket %s (LISTEN_FDNAMES) is no service's: closed", name)
	}
	return e.services(pol.Services, sockets), nil
}

// release closes the sockets of svcs that no current service holds, and
// removes the unix socket paths spawnd made for them.
func (e *Executor) release(svcs []*entry) {
	for _, s := range svcs {
		if slices.ContainsFunc(e.svcs, func(c *entry) bool { return slices.Equal(c.fds, s.fds) }) {
			continue
		}
		for _, fd := range s.fds {
			unix.Close(fd)
		}
		if i := slices.Index(e.cfg.Paths, s.Endpoint.Address); i >= 0 {
			removeSocket(s.Endpoint.Address)
			e.cfg.Paths = slices.Delete(e.cfg.Paths, i, i+1)
		}
	}
}

// checkInherited requires an inherited descriptor to be what the listener
// will accept on: a listening stream socket of the service's type.
func checkInherited(fd int, typ string) error {
	st, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	domain, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	types := map[int]string{unix.AF_UNIX: policy.Unix, unix.AF_INET: policy.Inet, unix.AF_INET6: policy.Inet}
	if types[domain] != typ || st != unix.SOCK_STREAM || listening != 1 {
		return fmt.Errorf("inherited descriptor %d is not a listening %s stream socket", fd, typ)
	}
	return nil
}

// listenInet listens on addr as Go's net package does: SO_REUSEADDR, and
// both IPv6 and IPv4 when the host is empty. It returns a descriptor of
// its own, close-on-exec.
func listenInet(addr string) ([]int, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	raw, _ := l.(*net.TCPListener).SyscallConn() // fails only on a closed listener
	fd := -1
	raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 3) })
	return []int{fd}, err
}

// listenUnix creates a unix socket: any stale socket removed, mode 0666
// from the moment it exists, owned by root (the listener gets the
// descriptor, not the path); the directory it lives in controls access,
// and is created (mail_owner, 0700 when private, as Postfix has private/)
// when missing. That directory may be mail_owner's, so root touches
// nothing in it by path but the bind (openDir), and nothing after it.
func listenUnix(ep policy.Endpoint, owner policy.Account) ([]int, error) {
	dir, name := filepath.Split(ep.Address)
	dfd, created, err := openDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	if created && ep.Private {
		unix.Fchmod(dfd, 0o700)
		unix.Fchown(dfd, int(owner.Uid), int(owner.Gid))
	}
	var st unix.Stat_t
	if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, fmt.Errorf("%s exists and is not a socket", ep.Address)
		}
		unix.Unlinkat(dfd, name, 0)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := bind0666(fd, ep.Address); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", ep.Address, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", ep.Address, err)
	}
	return []int{fd}, nil
}

// bind0666 binds fd to path with mode 0666. bind(2) applies the umask of
// the process, 077 here: it runs on a thread with a filesystem context of
// its own (CLONE_FS) and the umask 0111 there, so no other thread, and no
// child forked meanwhile, sees the change. The thread stays locked, so it
// ends with the goroutine, and the runtime starts no thread from it. The
// path's directories were checked by openDir; bind does not follow its
// last name.
func bind0666(fd int, path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := unix.Unshare(unix.CLONE_FS)
		if err == nil {
			unix.Umask(0o111)
			err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
		}
		errc <- err
	}()
	return <-errc
}

// openDir opens the directory path from / one name at a time, creating a
// missing one (mode 0755 under the umask) when create is set; created
// reports that the last one was. The directories above it must be
// root's alone, so that a walk of the path by name (bind) finds the same
// directory: not writable by others, or sticky and the name root's (and
// no symlink). Symlinks in the others are the administrator's; the
// directory itself may be anyone's.
func openDir(path string, create bool) (fd int, created bool, err error) {
	fd, err = unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for _, name := range strings.Split(filepath.Clean(path), "/") {
		if err != nil || name == "" {
			continue
		}
		var parent, st unix.Stat_t
		unix.Fstat(fd, &parent)
		flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
		if parent.Mode&0o022 != 0 {
			flags |= unix.O_NOFOLLOW
		}
		next, oerr := unix.Openat(fd, name, flags, 0)
		created = oerr == unix.ENOENT && create && unix.Mkdirat(fd, name, 0o755) == nil
		if created {
			next, oerr = unix.Openat(fd, name, flags|unix.O_NOFOLLOW, 0)
		}
		unix.Close(fd)
		fd, err = next, oerr
		if err == nil && (unix.Fstat(fd, &st) != nil || parent.Uid != 0 ||
			parent.Mode&0o022 != 0 && (parent.Mode&unix.S_ISVTX == 0 || st.Uid != 0)) {
			unix.Close(fd)
			err = fmt.Errorf("%s is in a directory not root's alone", name)
		}
	}
	if err != nil {
		return -1, false, fmt.Errorf("directory %s: %w", path, err)
	}
	return fd, created, nil
}

// removeSocket removes the unix socket path, through its directory's
// descriptor, if it is still a socket.
func removeSocket(path string) {
	dir, name := filepath.Split(path)
	if dfd, _, err := openDir(dir, false); err == nil {
		var st unix.Stat_t
		if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			unix.Unlinkat(dfd, name, 0)
		}
		unix.Close(dfd)
	}
}
