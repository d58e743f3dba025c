package main

import "context"

func cmdLab(ctx context.Context, args []string) error { return usageError{"lab: not wired yet"} }
