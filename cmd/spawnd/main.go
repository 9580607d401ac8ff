package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

// version is set at build time by the Makefile.
var version = "dev"

func main() {
	// The live heap is a few hundred KiB; with the default GOGC of 100 the
	// heap grows to the runtime's 4 MiB floor before it is collected,
	// which showed as 4 MiB more RSS after the first few thousand
	// connections. 25 puts the floor at 1 MiB, at no CPU cost that the
	// benchmark can see (bench/README.md, Performance). GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	os.Exit(run(os.Args[1:]))
}

// The main goroutine stays on the main thread, where the executor's loop
// forks every child (executor's invariant 7).
func init() { runtime.LockOSThread() }

func run(args []string) int {
	switch append(args, "")[0] { // the first argument, or ""
	case "serve":
		return runServe(args[1:])
	case "check":
		return runCheck(args[1:])
	case "version":
		fmt.Println("spawnd", version)
		return 0
	}
	// Anything else is a Postfix master(8) command line:
	// spawnd [generic daemon options] user=NAME[:GROUP] argv=COMMAND...
	return runDaemon(args)
}
