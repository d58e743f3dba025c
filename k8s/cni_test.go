package k8s

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCNIConfigRender(t *testing.T) {
	c := CNIConfig{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")}, MTU: 8950}
	b, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "cniVersion": "1.0.0",
  "name": "podrouter",
  "plugins": [
    {
      "type": "ptp",
      "mtu": 8950,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [
          [
            {
              "subnet": "10.244.1.0/24"
            }
          ],
          [
            {
              "subnet": "fd00:10:244:1::/64"
            }
          ]
        ],
        "routes": [
          {
            "dst": "0.0.0.0/0"
          },
          {
            "dst": "::/0"
          }
        ]
      }
    }
  ]
}
`
	if string(b) != want {
		t.Errorf("conflist:\n%s\nwant:\n%s", b, want)
	}
	if !json.Valid(b) {
		t.Error("not valid JSON")
	}
	if _, err := (CNIConfig{}).Render(); err == nil {
		t.Error("rendered a conflist without pod CIDRs")
	}
}

func TestWriteFileIfChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "net.d", "10-podrouter.conflist")
	for i, step := range []struct {
		data      string
		wantWrote bool
	}{{"a", true}, {"a", false}, {"b", true}, {"b", false}} {
		var before time.Time
		if fi, err := os.Stat(path); err == nil {
			before = fi.ModTime()
		}
		wrote, err := WriteFileIfChanged(path, []byte(step.data), 0o644)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if wrote != step.wantWrote {
			t.Errorf("step %d: wrote = %v, want %v", i, wrote, step.wantWrote)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !step.wantWrote && !fi.ModTime().Equal(before) {
			t.Errorf("step %d: file touched although unchanged", i)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("step %d: mode %v", i, fi.Mode())
		}
		if b, _ := os.ReadFile(path); string(b) != step.data {
			t.Errorf("step %d: content %q", i, b)
		}
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
}
