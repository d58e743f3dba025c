// Package config owns podrouter's configuration file: its schema
// (schema.go), strict parsing (load.go, walk.go), defaults (defaults.go)
// and validation (validate.go). The pipeline runs once, in this order:
// decode into typed values (net/netip addresses and prefixes,
// time.Duration) → the command line's Overrides → defaults → validation.
// Every error names the offending field by its YAML path.
//
// Every input is bounded: the file (MaxFileSize) and password files
// (MaxPasswordFile) are read only if regular files, without blocking; list
// sizes are capped; YAML aliases cannot expand past a node budget; node.name
// is a DNS subdomain. Validation runs in n log n of the config's size.
//
// Owns: the file format and what a valid config is. The kernel-route and
// datapath defaults and limits are the actuators' own constants.
//
// Imports (podrouter): datapath, routes (their defaults and limits only).
package config
