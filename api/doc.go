// Package api is podrouter's local API: the versioned wire types (JSON
// field names are the tags, not the Go names) and a client. The daemon
// serves it on a unix socket (localAPI.socket, mode 0600, never TCP); the
// CLI and the end-to-end tests read it with Client.
//
//	GET  /v1/status   Status
//	POST /v1/drain    DrainReply; the daemon then drains and exits
//	GET  /v1/monitor  MonitorEvent stream (NDJSON), filtered by MonitorFilter
//
// It also holds the wire types of `podrouter bpf … -o json` (bpf.go),
// which read the pinned maps directly.
//
// Owns: the wire format, its version and the client.
//
// Imports (podrouter): health (its enums are part of the format, written
// as their text).
package api
