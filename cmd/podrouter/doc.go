// Command podrouter is the node routing daemon's command line, on cobra:
// `podrouter run` turns flags and the config file into a config.Config
// (config.Load) and starts the daemon (daemon.Run); `check` validates the
// same; `status`, `drain` and `monitor` talk to a running daemon over its
// local API (package api) and render what they get; `bpf …` reads the
// pinned eBPF maps and links (package datapath) and renders them; every
// command has its own --help, -o json where it prints, and `completion
// bash|zsh|fish`.
//
// Owns: flags, subcommands and rendering. Nothing of the daemon's
// behaviour lives here.
//
// Imports (podrouter): api, config, daemon, datapath, health.
package main
