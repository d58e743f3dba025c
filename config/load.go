package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Load reads a config file and runs the pipeline once, in this order:
// decode (strict: unknown fields, duplicate keys, a second document and
// values of the wrong type are errors) → the command line's overrides →
// defaults → validation, and reads the password files. Every read is
// bounded (MaxFileSize, MaxPasswordFile) and only regular files are read,
// so a device or a FIFO named by mistake fails at once. Every error names
// its field by its YAML path.
func Load(path string, o Overrides) (*Config, error) {
	b, err := readRegular(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return load(b, o)
}

// Parse is Load of a file's content, without overrides.
func Parse(b []byte) (*Config, error) { return load(b, Overrides{}) }

// maxReported bounds how many problems one error lists.
const maxReported = 50

func load(b []byte, o Overrides) (*Config, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("parse config: %d bytes, at most %d", len(b), MaxFileSize)
	}
	c, err := decode(b)
	if err != nil {
		return nil, err
	}
	o.apply(c)
	c.ApplyDefaults()
	var e errs
	e.add(c.Validate())
	e.add(c.readPasswords())
	if err := joinCapped(flatten(e), maxReported); err != nil {
		return nil, err
	}
	return c, nil
}

// decode parses b strictly into a Config, without defaults.
func decode(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var root yaml.Node
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return &c, nil // empty: every required field will say so
	} else if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, fmt.Errorf("parse config: after the first document: %w", err)
		}
		return nil, fmt.Errorf("parse config: a second YAML document (line %d): the config is one document", line)
	}
	w := newWalker()
	if err := w.walk(&root, configType, ""); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	problems := w.problems
	if err := root.Decode(&c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("parse config: %w", err)
		}
		for _, m := range te.Errors {
			problems = append(problems, w.name(m))
		}
	}
	if len(problems) > 0 {
		if len(problems) > maxReported {
			problems = append(problems[:maxReported:maxReported], fmt.Sprintf("and %d more", len(problems)-maxReported))
		}
		return nil, fmt.Errorf("parse config: %s", strings.Join(problems, "; "))
	}
	return &c, nil
}

// readPasswords reads every peer's password file (bounded; regular files
// only) into the peer.
func (c *Config) readPasswords() error {
	var e errs
	read := func(p *Peer, f string) {
		if p.PasswordFile == "" {
			return
		}
		pw, err := ReadPassword(p.PasswordFile)
		if err != nil {
			e.addf(f+".passwordFile", "%v", err)
			return
		}
		p.password = pw
	}
	for i := range c.BGP.Peers {
		read(&c.BGP.Peers[i], fmt.Sprintf("bgp.peers[%d]", i))
	}
	if c.BGP.AutoPeers.Enabled {
		read(&c.BGP.AutoPeers.Peer, "bgp.autoPeers")
	}
	return errors.Join(e...)
}

// ReadPassword reads a TCP-MD5 password file (trailing newline stripped):
// a regular file of at most MaxPasswordFile bytes holding 1 to
// MaxPasswordLen bytes of password.
func ReadPassword(path string) (string, error) {
	b, err := readRegular(path, MaxPasswordFile)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if len(pw) > MaxPasswordLen {
		return "", fmt.Errorf("password in %s is longer than TCP_MD5SIG_MAXKEYLEN (%d)", path, MaxPasswordLen)
	}
	return pw, nil
}

// readRegular reads a regular file of at most limit bytes. It opens
// without blocking (a FIFO without a writer would block a plain open) and
// refuses anything that is not a regular file: a device such as /dev/zero
// never ends, a FIFO may never deliver.
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, at most %d", path, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// flatten turns joined errors back into a list.
func flatten(es []error) []error {
	var out []error
	for _, e := range es {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			out = append(out, flatten(j.Unwrap())...)
			continue
		}
		out = append(out, e)
	}
	return out
}

// joinCapped joins at most max errors and says how many more there were.
func joinCapped(es []error, max int) error {
	if len(es) > max {
		n := len(es) - max
		es = append(es[:max:max], fmt.Errorf("and %d more problems", n))
	}
	return errors.Join(es...)
}
