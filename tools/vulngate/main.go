package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

type message struct {
	Config *struct {
		DB             string `json:"db"`
		DBLastModified string `json:"db_last_modified"`
		ScannerVersion string `json:"scanner_version"`
		GoVersion      string `json:"go_version"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
			Receiver string `json:"receiver"`
		} `json:"trace"`
	} `json:"finding"`
}

type finding struct {
	module, version, fixed, symbol string
}

func main() {
	allowPath := flag.String("allow", ".govulncheck-allow", "allow file: OSV ID and reason per line")
	flag.Parse()
	allow, err := readAllow(*allowPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	called, summaries, cfg, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	fmt.Println(cfg)
	ids := slices.Sorted(maps.Keys(called))
	notAllowed := 0
	for _, id := range ids {
		f := called[id]
		verdict := "NOT ALLOWED"
		if why, ok := allow[id]; ok {
			verdict = "allowed: " + why
		} else {
			notAllowed++
		}
		fixed := f.fixed
		if fixed == "" {
			fixed = "no fixed version"
		}
		fmt.Printf("%s %s@%s (fixed: %s), called via %s: %s -- %s\n", id, f.module, f.version, fixed, f.symbol, summaries[id], verdict)
	}
	for id := range allow {
		if _, ok := called[id]; !ok {
			fmt.Printf("allow entry %s matches no finding any more: remove it\n", id)
		}
	}
	fmt.Printf("%d called vulnerabilities, %d not allowed\n", len(ids), notAllowed)
	if notAllowed > 0 {
		os.Exit(1)
	}
}

func read(r io.Reader) (map[string]finding, map[string]string, string, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	called := map[string]finding{}
	summaries := map[string]string{}
	cfg := ""
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, "", fmt.Errorf("govulncheck output: %w", err)
		}
		switch {
		case m.Config != nil:
			cfg = fmt.Sprintf("govulncheck %s, %s, database %s modified %s", m.Config.ScannerVersion, m.Config.GoVersion, m.Config.DB, m.Config.DBLastModified)
		case m.OSV != nil:
			summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0 && m.Finding.Trace[0].Function != "":
			t := m.Finding.Trace[0]
			sym := t.Package + "." + t.Function
			if t.Receiver != "" {
				sym = t.Package + "." + strings.TrimPrefix(t.Receiver, "*") + "." + t.Function
			}
			if _, seen := called[m.Finding.OSV]; !seen {
				called[m.Finding.OSV] = finding{module: t.Module, version: t.Version, fixed: m.Finding.FixedVersion, symbol: sym}
			}
		}
	}
	return called, summaries, cfg, nil
}

func readAllow(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, why, _ := strings.Cut(line, " ")
		if strings.TrimSpace(why) == "" {
			return nil, fmt.Errorf("%s:%d: %s has no reason", path, i+1, id)
		}
		out[id] = strings.TrimSpace(why)
	}
	return out, nil
}
