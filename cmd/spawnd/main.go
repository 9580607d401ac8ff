package main

import (
	"fmt"
	"os"
)

// version is set at build time by the Makefile.
var version = "dev"

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			os.Exit(runServe(args[1:]))
		case "check":
			os.Exit(runCheck(args[1:]))
		case "version":
			fmt.Println("spawnd", version)
			return
		}
	}
	// Anything else is a Postfix master(8) command line:
	// spawnd [generic daemon options] user=NAME[:GROUP] argv=COMMAND...
	os.Exit(runDaemon(args))
}
