// Command goserver is the smallest accept+ForkExec server in Go, in one
// process: the benchmark's bound for any spawn server behind a TCP socket.
// It starts each command exactly as bench/ceiling does, with the
// connection instead of /dev/null.
//
//	goserver -p port -uid 65534 -gid 65534 -- command [args...]
//
// Binds 127.0.0.1:port (listen backlog: the kernel's somaxconn). One
// goroutine accepts, and for every connection makes the socket blocking
// and starts the command (an absolute path, no PATH search) with
// syscall.ForkExec: the uid and gid given (supplementary groups: the gid
// only), a new session, environment PATH=/usr/bin:/bin, and the connection
// on fds 0, 1 and 2. It closes its copy right after the fork and accepts
// again; a goroutine per command reaps it with wait4. No limits, no
// logging but errors: what a socket adds to the spawn ceiling, nothing more.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("p", 0, "serve on 127.0.0.1:`port`")
	uid := flag.Int("uid", 65534, "the commands' uid")
	gid := flag.Int("gid", 65534, "the commands' gid and only group")
	flag.Parse()
	argv := flag.Args()
	if *port <= 0 || *port > 65535 || len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "usage: goserver -p port [-uid N] [-gid N] -- command [args...]")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "goserver:", err)
		os.Exit(1)
	}
	sys := &syscall.SysProcAttr{Setsid: true,
		Credential: &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*gid), Groups: []uint32{uint32(*gid)}}}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "goserver: accept:", err)
			time.Sleep(time.Second)
			continue
		}
		pid, err := spawn(c.(*net.TCPConn), argv, sys)
		c.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "goserver: %s: %v\n", argv[0], err)
			continue
		}
		go func() { // reap it
			for {
				if _, err := syscall.Wait4(pid, nil, 0, nil); err != syscall.EINTR {
					return
				}
			}
		}()
	}
}

// spawn makes c's socket blocking and starts argv with it on fds 0, 1 and
// 2. The socket is close-on-exec; ForkExec's dup2 onto 0, 1, 2 clears that.
func spawn(c *net.TCPConn, argv []string, sys *syscall.SysProcAttr) (pid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	cerr := rc.Control(func(fd uintptr) {
		if err = syscall.SetNonblock(int(fd), false); err == nil {
			pid, err = syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
				Env: []string{"PATH=/usr/bin:/bin"}, Files: []uintptr{fd, fd, fd}, Sys: sys})
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return pid, err
}
