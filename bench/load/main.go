// Command load opens connections to a command-per-connection server, checks
// each reply and prints one JSON object: connections, failures (with the
// first error), connections per second and latency percentiles.
//
//	load -addr 127.0.0.1:10025 -c 16 -d 3s -n 100000 -expect 'ok\n'
//
// A run stops at whichever comes first, the duration or the connection
// count; connections in flight then finish. The exit status is 0 when every
// connection succeeded, 1 when any failed, 2 on a usage error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"spawnd/bench/loadgen"
)

func main() {
	addr := flag.String("addr", "", "server `address`: host:port, or an absolute unix socket path")
	conc := flag.Int("c", 1, "connections in flight at once")
	dur := flag.Duration("d", 3*time.Second, "start no connection after this long")
	maxConns := flag.Int("n", 100000, "start no more than this many connections")
	expect := flag.String("expect", `ok\n`, "exact reply of every connection (Go string escapes allowed)")
	timeout := flag.Duration("timeout", 10*time.Second, "limit on one connection, dial to end of file")
	flag.Parse()
	if *addr == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: load -addr ADDR [-c N] [-d DURATION] [-n COUNT] [-expect TEXT] [-timeout DURATION]")
		os.Exit(2)
	}
	want, err := strconv.Unquote(`"` + *expect + `"`)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: -expect %q: bad escape\n", *expect)
		os.Exit(2)
	}
	r, err := loadgen.Run(loadgen.Config{
		Addr:        *addr,
		Concurrency: *conc,
		Duration:    *dur,
		MaxConns:    *maxConns,
		Expect:      want,
		ConnTimeout: *timeout,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Failures > 0 {
		os.Exit(1)
	}
}
