package bgptest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Format renders a case as the committed corpus file: '#' header lines
// saying what it is, then the message in hex, 32 bytes a line.
func (c Case) Format() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# name: %s\n# kind: %s\n# rule: %s\n# ref: %s\n# handling: %s", c.Name, c.Kind, c.Rule, c.Ref, c.Handling)
	if c.Handling == SessionReset {
		fmt.Fprintf(&b, " %d/%d", c.Code, c.Subcode)
	}
	b.WriteString("\n")
	if c.Deviation != "" {
		fmt.Fprintf(&b, "# gobgp v4: %s", c.GoBGP)
		if c.GoBGP == SessionReset {
			fmt.Fprintf(&b, " %d/%d", c.GoBGPCode, c.GoBGPSubco)
		}
		fmt.Fprintf(&b, " (%s)\n", c.Deviation)
	}
	h := hex.EncodeToString(c.Msg)
	for len(h) > 64 {
		b.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	b.WriteString(h + "\n")
	return b.Bytes()
}

// ReadMessage reads the message bytes of a corpus file (header lines
// skipped).
func ReadMessage(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var h strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		h.WriteString(line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(h.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return b, nil
}
