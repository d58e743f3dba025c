package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The document is walked along the Config type before it is decoded. The
// walk gives every node its YAML path, so that errors name fields exactly;
// refuses unknown fields; bounds alias expansion (a YAML bomb); and parses
// the typed leaves (addresses, prefixes, durations) with messages that
// name the field, blanking a bad one so that decoding goes on and reports
// the remaining problems too.

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[time.Duration]()
	addrType     = reflect.TypeFor[netip.Addr]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	addrPortType = reflect.TypeFor[netip.AddrPort]()
)

// maxNodes bounds the nodes one walk visits, aliases expanded: a real
// config has a few hundred; a billion-laughs document is refused here
// before anything expands it in memory.
const maxNodes = 200_000

var errTooManyNodes = fmt.Errorf("the document expands to more than %d YAML nodes (aliases?): refused", maxNodes)

type walker struct {
	budget   int
	problems []string
	keys     map[int][]string  // line -> paths of the keys on it
	values   map[string]string // path -> scalar value
}

func newWalker() *walker {
	return &walker{budget: maxNodes, keys: map[int][]string{}, values: map[string]string{}}
}

// problem records a bad value: "path: msg (line N)".
func (w *walker) problem(path string, n *yaml.Node, format string, a ...any) {
	w.problems = append(w.problems, fmt.Sprintf("%s: %s (line %d)", path, fmt.Sprintf(format, a...), n.Line))
}

// durationProblem records a bad duration the way the decoder words its
// own type errors: "path: line N: msg".
func (w *walker) durationProblem(path string, n *yaml.Node, format string, a ...any) {
	w.problems = append(w.problems, fmt.Sprintf("%s: line %d: %s", path, n.Line, fmt.Sprintf(format, a...)))
}

// walk visits n, which decodes into a value of type t at path.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) error {
	if w.budget--; w.budget < 0 {
		return errTooManyNodes
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return w.walk(n.Alias, t, path)
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := w.walk(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	want := kindOf(t)
	if got := kindName(n.Kind); got != want {
		w.durationProblem(path, n, "want %s, got %s", want, got)
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		w.values[path] = n.Value
		w.leaf(n, t, path)
	case yaml.MappingNode:
		return w.mapping(n, t, path)
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// kindOf is the YAML node kind a value of type t is written as.
func kindOf(t reflect.Type) string {
	switch {
	case isLeafType(t):
		return "a scalar"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		return "a mapping"
	case t.Kind() == reflect.Slice:
		return "a list"
	}
	return "a scalar"
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a scalar"
}

func isLeafType(t reflect.Type) bool {
	return t == addrType || t == prefixType || t == addrPortType
}

// mapping walks a mapping decoded into struct type t.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) error {
	fields := yamlFields(t)
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" { // "<<: *defaults"
			if err := w.merge(v, t, path); err != nil {
				return err
			}
			kept = append(kept, k, v)
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		w.keys[k.Line] = append(w.keys[k.Line], p)
		ft, ok := fields[k.Value]
		if !ok {
			w.problems = append(w.problems, fmt.Sprintf("unknown field %q (line %d)", clip(p), k.Line))
			continue // dropped: the decoder would stop at it
		}
		if err := w.walk(v, ft, p); err != nil {
			return err
		}
		kept = append(kept, k, v)
	}
	n.Content = kept
	return nil
}

func (w *walker) merge(v *yaml.Node, t reflect.Type, path string) error {
	if w.budget--; w.budget < 0 {
		return errTooManyNodes
	}
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		return w.mapping(v, t, path)
	case yaml.SequenceNode:
		for _, c := range v.Content {
			if err := w.merge(c, t, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaf parses a scalar of a typed leaf; a bad one is reported and blanked.
func (w *walker) leaf(n *yaml.Node, t reflect.Type, path string) {
	v := n.Value
	switch t {
	case durationType:
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			w.durationProblem(path, n, "want a duration like \"9s\", got %q", clip(v))
		case d < 0:
			w.durationProblem(path, n, "negative duration %q", v)
		default:
			n.Tag = "!!str" // "0" is a duration too
			return
		}
		n.Value, n.Tag = "0s", "!!str"
	case addrType:
		if _, err := netip.ParseAddr(v); err != nil && v != "" {
			w.problem(path, n, "want an IP address, got %q", clip(v))
			n.Value = ""
		}
		n.Tag = "!!str"
	case prefixType:
		if _, err := netip.ParsePrefix(v); err != nil && v != "" {
			w.problem(path, n, "invalid CIDR %q", clip(v))
			n.Value = ""
		}
		n.Tag = "!!str"
	case addrPortType:
		if _, err := netip.ParseAddrPort(v); err != nil && v != "" {
			w.problem(path, n, "want ip:port, got %q", clip(v))
			n.Value = ""
		}
		n.Tag = "!!str"
	}
}

// yamlFields maps the YAML keys of struct type t to their field types,
// inline structs flattened.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// name rewrites one of the decoder's "line N: ..." messages so that it
// names the field at that line by its path ("bgp.peers[0].asn: line 6:
// cannot unmarshal !!str `many` into uint32").
func (w *walker) name(m string) string {
	var line int
	if _, err := fmt.Sscanf(m, "line %d:", &line); err != nil || len(w.keys[line]) == 0 {
		return m
	}
	cands := w.keys[line]
	best := cands[len(cands)-1]
	for _, p := range cands {
		if v, ok := w.values[p]; ok && v != "" && (strings.Contains(m, "`"+v+"`") || strings.Contains(m, "\""+v+"\"")) {
			best = p
		}
	}
	return best + ": " + m
}
