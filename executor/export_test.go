package executor

import "spawnd/ipc"

// Serve, Drain and Running drive an executor from its tests without the
// supervision of Run; the root binary does not need them.

// Running returns how many commands of the current services are running.
func (e *Executor) Running() int { return int(e.running.Load()) }

// Serve speaks the protocol with one listener over conn until the listener
// goes (end of file: it returns nil), breaks the protocol (it logs one
// warning, closes every fd the message carried and returns the
// *ipc.Violation) or stops reading what it is sent. It shuts conn down and
// does not close it. Commands keep running after Serve returns, and are
// reaped by the next Serve or Drain; results that could not be delivered
// are kept and sent with Seq 0 to the next listener after its Hello,
// Welcome and Service messages. Run serves the listeners it starts; Serve
// is for a listener a test started.
func (e *Executor) Serve(conn *ipc.Conn) error {
	s := e.attach(conn)
	e.loop(func() bool { return s.ended })
	return s.err
}

// Drain serves until no command is running.
func (e *Executor) Drain() {
	e.loop(func() bool { return len(e.cmds) == 0 })
}
