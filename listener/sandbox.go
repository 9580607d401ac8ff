package listener

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Harden is the listener's first act: no core dump and no ptrace by other
// processes of mail_owner (PR_SET_DUMPABLE 0), and nothing it could
// execute gains privileges (PR_SET_NO_NEW_PRIVS, which the seccomp filter
// needs too).
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	return nil
}

// Sandbox confines every thread of the process, for good, to the system
// calls the listener makes once it holds its descriptors (the pair, the
// log, master(8)'s status channel, the listening sockets, its epoll set):
// an allow-list as OpenSSH's pre-authentication sandbox has, checked
// with strace on the listener under load, while logging, at a stop and a
// reload. Anything else kills the process (SECCOMP_RET_KILL_PROCESS):
// execve, open, fork (clone is allowed for threads only), ptrace, kill of
// another process, a socket. redial allows what a syslog logger needs to
// connect again after the syslog daemon restarted: socket(AF_UNIX) and
// connect. Harden must have run.
func Sandbox(redial bool) error {
	if sandboxArch == 0 {
		return ErrNoFilter
	}
	// The time zone is read from /etc/localtime on first use, by the
	// first log line: read it now, while open is allowed.
	time.Now().Zone()
	// no_new_privs is a thread's: set it again on the thread that
	// installs the filter; TSYNC gives both to every thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	prog := filter(redial, os.Getpid())
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("seccomp SECCOMP_SET_MODE_FILTER: %w", errno)
	}
	return nil
}

// ErrNoFilter is Sandbox's answer on an architecture it has no filter for.
var ErrNoFilter = errors.New("no seccomp filter for this architecture")

// Offsets in struct seccomp_data: nr, arch, ip, args[6]; an argument's
// low 32 bits (little-endian architectures only).
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16
)

// filter returns the BPF program: the architecture first (else kill), then
// one test per allowed call, then the calls allowed with an argument
// check, clone3 answered ENOSYS (so that a C library would fall back to
// clone), and kill for the rest.
func filter(redial bool, pid int) []unix.SockFilter {
	const (
		allow = unix.SECCOMP_RET_ALLOW
		kill  = unix.SECCOMP_RET_KILL_PROCESS
	)
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jump := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
	}
	ld := func(off uint32) unix.SockFilter { return stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }
	ret := func(k uint32) unix.SockFilter { return stmt(unix.BPF_RET|unix.BPF_K, k) }
	p := []unix.SockFilter{
		ld(offArch),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, sandboxArch, 1, 0),
		ret(kill),
		ld(offNr),
	}
	for _, nr := range allowed {
		p = append(p, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(nr), 0, 1), ret(allow))
	}
	// nr allowed when its first argument, tested with op against k, is true.
	withArg := func(nr uintptr, op uint16, k uint32) {
		p = append(p, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(nr), 0, 4),
			ld(offArg0),
			jump(unix.BPF_JMP|op|unix.BPF_K, k, 0, 1),
			ret(allow),
			ret(kill))
	}
	withArg(unix.SYS_CLONE, unix.BPF_JSET, unix.CLONE_THREAD) // threads only
	withArg(unix.SYS_TGKILL, unix.BPF_JEQ, uint32(pid))       // its own threads (preemption)
	withArg(unix.SYS_KILL, unix.BPF_JEQ, uint32(pid))         // itself (a fatal signal)
	if redial {
		withArg(unix.SYS_SOCKET, unix.BPF_JEQ, unix.AF_UNIX)
		p = append(p, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.SYS_CONNECT, 0, 1), ret(allow))
	}
	p = append(p, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.SYS_CLONE3, 0, 1),
		ret(unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)),
		ret(kill))
	return p
}

// allowedCommon are the calls of the listener and the Go runtime on every
// architecture: I/O on descriptors it holds, its epoll set, memory,
// threads, signals, time.
var allowedCommon = []uintptr{
	// The listener: the pair, the log, the status channel, accepting.
	unix.SYS_READ, unix.SYS_WRITE, unix.SYS_CLOSE, unix.SYS_SENDMSG, unix.SYS_RECVMSG,
	unix.SYS_ACCEPT4, unix.SYS_SETSOCKOPT, unix.SYS_GETSOCKOPT, unix.SYS_GETSOCKNAME,
	unix.SYS_GETPEERNAME, unix.SYS_SHUTDOWN, unix.SYS_FCNTL, unix.SYS_PPOLL,
	unix.SYS_EPOLL_CTL, unix.SYS_EPOLL_PWAIT,
	// The runtime: memory, threads, scheduling, signals, time.
	unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MADVISE, unix.SYS_FUTEX,
	unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_SCHED_YIELD,
	unix.SYS_CLOCK_GETTIME, unix.SYS_GETTIMEOFDAY, unix.SYS_GETRANDOM,
	unix.SYS_RT_SIGRETURN, unix.SYS_RT_SIGACTION, unix.SYS_RT_SIGPROCMASK,
	unix.SYS_SIGALTSTACK, unix.SYS_RESTART_SYSCALL,
	unix.SYS_GETPID, unix.SYS_GETTID, unix.SYS_EXIT, unix.SYS_EXIT_GROUP,
	// The C library, linked through cgo (package policy's os/user and
	// net): malloc, and the threads pthread_create starts for the runtime.
	unix.SYS_MPROTECT, unix.SYS_BRK, unix.SYS_MREMAP, unix.SYS_SET_ROBUST_LIST, unix.SYS_RSEQ,
}
