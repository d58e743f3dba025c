// Go >= 1.24 makes TCP listeners MPTCP, on which TCP_MD5SIG and IP_TTL
// (GTSM) fail: BGP sessions need plain TCP.
//
//go:debug multipathtcp=0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

var version = "dev"

func main() {
	err := execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "podrouter:", err)
	var ue usageError
	if asUsage(err, &ue) {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", ue.cmd)
		os.Exit(2)
	}
	os.Exit(1)
}

// execute runs the command line args, writing to out and errOut.
func execute(ctx context.Context, args []string, out, errOut io.Writer) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	return root.ExecuteContext(ctx)
}

// usageError is a command line the command cannot run: exit status 2.
type usageError struct {
	cmd string // the command's path, for "Run '… --help'"
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// asUsage reports whether err is a usage error (exit status 2).
func asUsage(err error, ue *usageError) bool { return errors.As(err, ue) }
