package main

import "fmt"

func runCheck(args []string) int {
	fmt.Println("fatal: check: not built yet")
	return 1
}
