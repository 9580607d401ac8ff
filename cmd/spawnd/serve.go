package main

import "fmt"

func runServe(args []string) int {
	fmt.Println("fatal: serve: not built yet")
	return 1
}
