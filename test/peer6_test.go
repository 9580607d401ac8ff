package test

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServePeerEnvironmentIPv6: a service on [::1]:port with
// peer_environment gets the client's and the server's IPv6 address and
// port, read from the connection, in the same variables as for IPv4.
func TestServePeerEnvironmentIPv6(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine (%v): cannot test IPv6 peer variables", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := fmt.Sprintf("[::1]:%d", port)
	probe, ready := probeService(t)
	StartServe(t, Config{
		Master: fmt.Sprintf("%s inet n n n - - spawnd -o peer_environment=yes user=nobody argv=/usr/bin/env\n", addr) + probe,
		Ready:  []string{ready},
	})
	var conn net.Conn
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err = net.Dial("tcp6", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().(*net.TCPAddr)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	conn.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(conn)
	conn.Close()
	env := map[string]string{}
	for _, kv := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range map[string]string{"PROTO": "TCP", "TCPREMOTEIP": "::1", "TCPREMOTEPORT": strconv.Itoa(local.Port),
		"TCPLOCALIP": "::1", "TCPLOCALPORT": strconv.Itoa(port)} {
		if env[k] != v {
			t.Errorf("%s=%q, want %q (environment %v)", k, env[k], v, env)
		}
	}
}
