//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "podrouter-bench: needs Linux (network namespaces, eBPF)")
	os.Exit(1)
}
