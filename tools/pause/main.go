package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var version = "dev"

func main() {
	for _, a := range os.Args[1:] {
		if strings.EqualFold(a, "-v") {
			fmt.Println("pause (podrouter tools/pause)", version)
			return
		}
	}
	if os.Getpid() != 1 {
		// Not an error: pause also runs outside sandboxes.
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			fmt.Fprintln(os.Stderr, "Shutting down, got signal:", sig)
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child. SIGCHLD coalesces, so one signal may
// stand for many children: loop until none is left to collect.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return // no child exited (0) or none at all (ECHILD)
		}
	}
}
