package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths lists every command below root, as argument lists.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if sub.Hidden {
			continue
		}
		p := append(append([]string(nil), prefix...), sub.Name())
		out = append(out, p)
		out = append(out, commandPaths(sub, p)...)
	}
	return out
}

// TestHelpGolden: every command has its own --help, which exits 0 and
// prints what testdata/help/<command>.golden holds (go test -run
// TestHelpGolden -update rewrites them after a deliberate change).
func TestHelpGolden(t *testing.T) {
	paths := append([][]string{{}}, commandPaths(newRootCmd(), nil)...)
	if len(paths) < 15 {
		t.Fatalf("only %d commands found: %q", len(paths), paths)
	}
	for _, p := range paths {
		name := strings.Join(append([]string{"podrouter"}, p...), "_")
		t.Run(name, func(t *testing.T) {
			for _, flag := range []string{"--help", "-h"} {
				var out, errOut bytes.Buffer
				if err := execute(t.Context(), append(append([]string(nil), p...), flag), &out, &errOut); err != nil {
					t.Fatalf("%s %s: %v (want exit status 0)", strings.Join(p, " "), flag, err)
				}
				if errOut.Len() != 0 || !strings.Contains(out.String(), "Usage:") {
					t.Fatalf("%s %s: stdout %q stderr %q", strings.Join(p, " "), flag, out.String(), errOut.String())
				}
				if flag == "--help" {
					golden(t, "help/"+name, out.Bytes())
				}
			}
		})
	}
}

// TestCompletion: `podrouter completion bash|zsh|fish` prints a script for
// the shell, and the shell's completion request completes commands and
// flag values.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		if err := execute(t.Context(), []string{"completion", shell}, &out, &out); err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		if !strings.Contains(out.String(), "podrouter") || out.Len() < 1000 {
			t.Errorf("completion %s: %d bytes, no podrouter in it", shell, out.Len())
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "st"}, []string{"status"}},
		{[]string{"__complete", "bpf", ""}, []string{"stats", "endpoint", "ct", "nexthop", "hook"}},
		{[]string{"__complete", "status", "-o", ""}, []string{"table", "json"}},
		{[]string{"__complete", "monitor", "--type", ""}, []string{"drop", "to-stack"}},
		{[]string{"__complete", "run", "--shutdown-mode", ""}, []string{"graceful-restart", "drain"}},
	} {
		var out bytes.Buffer
		if err := execute(t.Context(), tc.args, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w+"\t") && !strings.Contains(out.String(), w+"\n") {
				t.Errorf("%q: no %q in\n%s", tc.args, w, out.String())
			}
		}
	}
}

// TestUsageErrors: a bad command line is a usage error (exit status 2),
// naming the command; a bad -o value too.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--bogus"},
		{"status", "-o", "yaml"},
		{"bpf", "ct", "list", "--proto", "sctp"},
		{"monitor", "--type", "everything"},
		{"run", "--config", "x.yaml", "--router-id", "router1"},
		{"status", "extra"},
		{"bpf", "frobnicate"},
		{"frobnicate"},
		{"bpf", "ct", "list", "extra"},
	} {
		err := execute(t.Context(), args, &bytes.Buffer{}, &bytes.Buffer{})
		var ue usageError
		if !asUsage(err, &ue) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
