package main

import "fmt"

func runDaemon(args []string) int {
	fmt.Println("fatal: Postfix mode: not built yet")
	return 1
}
