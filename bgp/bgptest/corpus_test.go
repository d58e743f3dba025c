package bgptest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/packet/bmp"
	"github.com/osrg/gobgp/v4/pkg/packet/mrt"
)

var updateCorpus = flag.Bool("update", false, "rewrite testdata/corpus from Corpus()")

const corpusDir = "testdata/corpus"

// TestCorpusCommitted: the committed corpus is exactly what Corpus()
// builds (go test -run TestCorpusCommitted -update ./bgp/bgptest/ rewrites it).
func TestCorpusCommitted(t *testing.T) {
	cases := Corpus()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] {
			t.Fatalf("duplicate case name %s", c.Name)
		}
		seen[c.Name] = true
		path := filepath.Join(corpusDir, c.Name+".txt")
		if *updateCorpus {
			if err := os.WriteFile(path, c.Format(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(got, c.Format()) {
			t.Errorf("%s differs from Corpus() (run with -update)", path)
		}
		msg, err := ReadMessage(path)
		if err != nil || !bytes.Equal(msg, c.Msg) {
			t.Errorf("%s: read back %x, %v", path, msg, err)
		}
	}
	ents, _ := os.ReadDir(corpusDir)
	for _, e := range ents {
		if !seen[strings.TrimSuffix(e.Name(), ".txt")] {
			t.Errorf("%s in %s is not in Corpus()", e.Name(), corpusDir)
		}
	}
}

// TestCorpusParserCases feeds the parser-only reproducers (MRT, BMP: not
// reachable from a BGP session, podrouter uses neither) to GoBGP's
// parsers: each must return an error, without panicking or looping.
func TestCorpusParserCases(t *testing.T) {
	for _, c := range Corpus() {
		if c.Handling != ParserError {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				defer func() {
					if r := recover(); r != nil {
						done <- nil
						t.Errorf("parser panicked: %v", r)
					}
				}()
				switch c.Kind {
				case KindMRT:
					_, err := mrt.ParseBody(c.Msg, &mrt.MRTHeader{Type: mrt.TABLE_DUMPv2, SubType: uint16(mrt.RIB_IPV4_UNICAST), Len: uint32(len(c.Msg))})
					done <- err
				case KindBMP:
					err := (&bmp.BMPStatisticsReport{}).ParseBody(&bmp.BMPMessage{}, c.Msg)
					done <- err
				}
			}()
			select {
			case err := <-done:
				if err == nil && !t.Failed() {
					t.Errorf("parser accepted %x", c.Msg)
				}
				t.Logf("%s: %v", c.Ref, err)
			case <-time.After(5 * time.Second):
				t.Fatal("parser did not return within 5s")
			}
		})
	}
}

// TestCorpusFraming: every message on the wire starts with a valid BGP
// header for its kind (the malformation is inside), except where the
// header itself is the point.
func TestCorpusFraming(t *testing.T) {
	for _, c := range Corpus() {
		if c.Kind != KindUpdate && c.Kind != KindOpen {
			continue
		}
		if len(c.Msg) < bgp.BGP_HEADER_LENGTH || !bytes.Equal(c.Msg[:16], bytes.Repeat([]byte{0xff}, 16)) {
			t.Errorf("%s: no BGP marker", c.Name)
		}
		want := byte(bgp.BGP_MSG_UPDATE)
		if c.Kind == KindOpen {
			want = bgp.BGP_MSG_OPEN
		}
		if c.Msg[18] != want {
			t.Errorf("%s: message type %d, want %d", c.Name, c.Msg[18], want)
		}
		if c.Handling == SessionReset && c.Code == 0 || c.GoBGP == SessionReset && c.GoBGPCode == 0 {
			t.Errorf("%s: session reset without an expected NOTIFICATION code", c.Name)
		}
	}
}
