package main

import (
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// cleanEnv is the whole environment of every server and of the load
// generator, as `env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C` gives.
var cleanEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}

// proc is a process the runner started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited and been reaped
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// registry holds every process the runner started, so that all of them are
// stopped, by PID, on every way out.
type registry struct {
	mu      sync.Mutex
	closing bool
	list    []*proc
}

// start starts cmd in its own process group (so that a Ctrl-C at the
// terminal reaches the runner only, which then stops everything in order)
// with the clean environment, and records it.
func (r *registry) start(name string, cmd *exec.Cmd) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil, errors.New("shutting down")
	}
	cmd.Env = cleanEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	r.list = append(r.list, p)
	return p, nil
}

// stopping reports whether stopAll has begun.
func (r *registry) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// stopAll stops every recorded process, newest first, and refuses new ones.
func (r *registry) stopAll() {
	r.mu.Lock()
	r.closing = true
	list := append([]*proc(nil), r.list...)
	r.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		stop(list[i])
	}
}

// stop ends p: SIGTERM, up to 3 s to exit, then SIGKILL. Whatever p had
// started and left behind (found by parent PID beforehand, and matched by
// start time afterwards so that a reused PID is never hit) gets SIGKILL.
func stop(p *proc) {
	if p.exited() {
		return
	}
	below := descendantsOf(p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	for _, d := range below {
		if st, err := readStat(d.pid); err == nil && st.start == d.start {
			syscall.Kill(d.pid, syscall.SIGKILL)
		}
	}
}
