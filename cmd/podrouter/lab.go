package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/podrouter/podrouter/lab"
)

// cmdLab drives the network-namespace lab: podrouter lab up|down|status.
func cmdLab(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"lab: want up, down or status"}
	}
	fs := flag.NewFlagSet("lab "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "lab", "lab instance name (prefixes every namespace)")
	tors := fs.Int("tors", 1, "number of ToR routers (1 or 2; 2 gives ECMP on the nodes)")
	nodes := fs.Int("nodes", 3, "number of nodes")
	pods := fs.Int("pods", 2, "pods per node")
	speaker := fs.String("speaker", lab.SpeakerPodrouter, "node BGP speaker: podrouter or bird")
	datapath := fs.Bool("datapath", false, "enable podrouter's eBPF fast path in the nodes")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch args[0] {
	case "up":
		l, err := lab.Up(ctx, lab.Spec{
			Name: *name, ToRs: *tors, Nodes: *nodes, PodsPerNode: *pods,
			Speaker: *speaker, Datapath: *datapath,
		}, log)
		if err != nil {
			return err
		}
		return l.Status(ctx, os.Stdout)
	case "down":
		return lab.Down(ctx, *name)
	case "status":
		l, err := lab.Load(*name)
		if err != nil {
			return err
		}
		return l.WithLogger(log).Status(ctx, os.Stdout)
	}
	return usageError{"lab: want up, down or status"}
}
