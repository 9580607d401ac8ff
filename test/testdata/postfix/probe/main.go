// Command probe is a stand-in Postfix daemon for the integration tests: run
// by master(8) from daemon_directory, it records what master(8) handed it
// (argv, environment, credentials, descriptors and their flags, signal
// mask; not the ignored signals, which Go's runtime replaces by its own
// handlers before main runs) as JSON in $MAIL_CONFIG/probe/SERVICE.PID.json, serves one client
// with the line "probe PID", and exits.
//
// Words after the generic options change what it does:
//
//	status   send master(8)'s TAKEN and AVAIL status records around the client
//	exit=N   exit with status N after the client
//	linger   after the client, wait up to 30 seconds for end of file on the
//	         status channel or a SIGTERM, and record in
//	         $MAIL_CONFIG/probe/SERVICE.PID.end what came, in order
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// master(8)'s descriptors.
const (
	statusFd = 5
	listenFd = 6
)

// Fd is what the probe found at one descriptor.
type Fd struct {
	Target    string // readlink of /proc/self/fd/N
	Flags     string // the flags line of /proc/self/fdinfo/N, octal
	Nonblock  bool
	SockType  int  // SO_TYPE, 0 when not a socket
	Listening bool // SO_ACCEPTCONN
}

// Report is the probe's record of its start.
type Report struct {
	Args       []string
	Env        []string
	Uid, Gid   int
	Groups     []int
	Cwd        string
	Umask      string
	SigIgn     string
	SigBlk     string
	Pid        int
	Ppid       int
	Pgid, Sid  int
	Fds        map[int]Fd
	Generation string
}

func main() {
	var r Report
	r.Fds = fds()
	r.Args = os.Args
	r.Env = os.Environ()
	r.Uid, r.Gid = os.Getuid(), os.Getgid()
	r.Groups, _ = os.Getgroups()
	r.Cwd, _ = os.Getwd()
	r.Pid, r.Ppid = os.Getpid(), os.Getppid()
	r.Pgid, _ = syscall.Getpgid(0)
	r.Sid = sid()
	r.Generation = os.Getenv("GENERATION")
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "Umask":
				r.Umask = strings.TrimSpace(v)
			case "SigIgn":
				r.SigIgn = strings.TrimSpace(v)
			case "SigBlk":
				r.SigBlk = strings.TrimSpace(v)
			}
		}
	}

	service := filepath.Base(os.Args[0])
	var status, linger bool
	code := 0
	for i := 1; i < len(os.Args); i++ {
		switch a := os.Args[i]; {
		case a == "-n" && i+1 < len(os.Args):
			service = os.Args[i+1]
		case a == "status":
			status = true
		case a == "linger":
			linger = true
		case strings.HasPrefix(a, "exit="):
			code, _ = strconv.Atoi(strings.TrimPrefix(a, "exit="))
		}
	}
	dir := filepath.Join(os.Getenv("MAIL_CONFIG"), "probe")
	base := filepath.Join(dir, fmt.Sprintf("%s.%d", strings.ReplaceAll(service, "/", "_"), r.Pid))
	b, _ := json.MarshalIndent(r, "", "\t")
	os.WriteFile(base+".json.tmp", b, 0o644)
	os.Rename(base+".json.tmp", base+".json")

	var sigs chan os.Signal
	if linger {
		sigs = make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
	}
	gen, _ := strconv.ParseUint(r.Generation, 8, 32)
	if fd, ok := accept(30 * time.Second); ok {
		if status {
			notify(r.Pid, uint32(gen), 0)
		}
		syscall.Write(fd, []byte(fmt.Sprintf("probe %d\n", r.Pid)))
		syscall.Close(fd)
		if status {
			notify(r.Pid, uint32(gen), 1)
			// master(8) counts the service as used when it reads TAKEN;
			// an exit it reaps before that read is "bad command startup".
			// Leave it the time to read, as a daemon that served does.
			time.Sleep(500 * time.Millisecond)
		}
	}
	if linger {
		end := make(chan string, 2)
		go func() {
			<-sigs
			end <- "SIGTERM"
		}()
		go func() {
			var buf [1]byte
			n, err := syscall.Read(statusFd, buf[:])
			end <- fmt.Sprintf("status channel read %d %v", n, err)
		}()
		// Both may come (postfix stop signals, then master(8) exits): record
		// what arrives within a second of the first.
		var got []string
		select {
		case what := <-end:
			got = append(got, what)
			select {
			case what := <-end:
				got = append(got, what)
			case <-time.After(time.Second):
			}
		case <-time.After(30 * time.Second):
			got = append(got, "nothing after 30s")
		}
		what := strings.Join(got, "; ")
		os.WriteFile(base+".end", []byte(what+"\n"), 0o644)
	}
	os.Exit(code)
}

// sid returns the session id from /proc/self/stat.
func sid() int {
	b, _ := os.ReadFile("/proc/self/stat")
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 3 {
			n, _ := strconv.Atoi(f[3])
			return n
		}
	}
	return -1
}

// fds describes descriptors 0 to 63 with raw system calls, before the Go
// runtime opens any of its own.
func fds() map[int]Fd {
	out := map[int]Fd{}
	buf := make([]byte, 4096)
	for n := 0; n < 64; n++ {
		k, err := syscall.Readlink("/proc/self/fd/"+strconv.Itoa(n), buf)
		if err != nil {
			continue
		}
		f := Fd{Target: string(buf[:k])}
		if info, err := syscall.Open("/proc/self/fdinfo/"+strconv.Itoa(n), syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
			k, _ := syscall.Read(info, buf)
			syscall.Close(info)
			for _, line := range strings.Split(string(buf[:max(k, 0)]), "\n") {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					f.Flags = strings.TrimSpace(v)
					fl, _ := strconv.ParseUint(f.Flags, 8, 32)
					f.Nonblock = fl&syscall.O_NONBLOCK != 0
				}
			}
		}
		if t, err := syscall.GetsockoptInt(n, syscall.SOL_SOCKET, syscall.SO_TYPE); err == nil {
			f.SockType = t
			l, _ := syscall.GetsockoptInt(n, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
			f.Listening = l == 1
		}
		out[n] = f
	}
	return out
}

// accept waits for a client on the listening descriptor, which master(8)
// made non-blocking.
func accept(timeout time.Duration) (int, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		fd, _, err := syscall.Accept(listenFd)
		if err == nil {
			return fd, true
		}
		if err != syscall.EAGAIN && err != syscall.EINTR {
			return -1, false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1, false
}

// notify writes one master(8) status record: pid, generation, avail.
func notify(pid int, gen uint32, avail int32) {
	var b [12]byte
	binary.NativeEndian.PutUint32(b[0:], uint32(pid))
	binary.NativeEndian.PutUint32(b[4:], gen)
	binary.NativeEndian.PutUint32(b[8:], uint32(avail))
	syscall.Write(statusFd, b[:])
}
