// Go >= 1.24 makes TCP listeners MPTCP, on which TCP_MD5SIG and IP_TTL
// (GTSM) fail: BGP sessions need plain TCP.
//
//go:debug multipathtcp=0

// Command podrouter is the node routing daemon and its operator CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

const usage = `podrouter — BGP node routing for bare-metal Kubernetes

Usage:
  podrouter run --config FILE [flags]   run the daemon (flags override the file)
  podrouter status [--socket PATH] [-o json]
                                        one-screen status of the running daemon
  podrouter drain [--socket PATH]       withdraw pod CIDRs, close BGP sessions with a
                                        NOTIFICATION, remove the default route, exit
  podrouter monitor [--socket PATH] [--type T]... [--from IP] [--to IP] [-v] [-o json]
                                        live datapath events (from-endpoint, to-network,
                                        from-network, to-endpoint, drop, to-stack)
  podrouter check --config FILE         validate a config file and exit
  podrouter bpf stats|endpoint list|ct list|nexthop list|hook list [--pin-dir DIR] [-o json]
                                        read the pinned eBPF maps and links directly
  podrouter bpf ct list|flush [--ip A] [--port N] [--proto tcp|udp|icmp|icmpv6] [--pin-dir DIR] [-o json]
                                        list or delete conntrack entries (flush: all
                                        unless filtered)
  podrouter lab up|down|status [flags]  the network-namespace lab (FRR ToR, 3 nodes, pods;
                                        --kubernetes [--proxy-mode iptables|nftables]: with a
                                        control plane, kube-proxy and Services)
  podrouter version
`

var version = "dev"

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "podrouter:", err)
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "podrouter:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:])
	case "check":
		return cmdCheck(args[1:])
	case "status":
		return cmdStatus(ctx, args[1:])
	case "drain":
		return cmdDrain(ctx, args[1:])
	case "monitor":
		return cmdMonitor(ctx, args[1:])
	case "bpf":
		return cmdBPF(args[1:])
	case "lab":
		return cmdLab(ctx, args[1:])
	case "version":
		fmt.Println(version)
		return nil
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}
