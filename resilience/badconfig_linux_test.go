package resilience

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A minimal valid config for a node in a namespace of its own.
const goodConfig = `node: {name: node1, routerID: 192.168.255.1}
podCIDRs: ["10.0.1.0/24"]
bgp:
  asn: 65001
  listenPort: -1
  api: {address: ""}
  peers:
    - {address: 192.168.1.0, asn: 65100}
localAPI: {socket: SOCKDIR/podrouter.sock}
metrics: {address: "127.0.0.1:19842"}
`

// hostState is what a refused config must leave alone in the namespace.
func hostState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"}, {"ip", "-br", "link"}, {"ss", "-Hltnu"}} {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v %s", argv, err, out)
		}
		b.Write(out)
	}
	return b.String()
}

// Test 14: the hostile-config table. Each bad config goes to `podrouter
// run` in a namespace of its own (with its address space capped at 3 GiB
// so that an unbounded read cannot take the machine down): it must exit
// non-zero within 2 s naming the field, peak RSS under 200 MB, and leave
// the namespace's routes, links and listeners as they were.
func TestBadConfig(t *testing.T) {
	requireLab(t)
	ns := fmt.Sprintf("rcfg%04d", rand.IntN(10000))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	dir := t.TempDir()
	good := strings.ReplaceAll(goodConfig, "SOCKDIR", dir)

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	var cidrs strings.Builder
	// Under the 1 MiB file limit, so that the field's own bound is what
	// refuses it (the file limit has its case below).
	for i := range 40000 {
		fmt.Fprintf(&cidrs, "%q,", fmt.Sprintf("10.%d.%d.0/24", 64+i/65536, (i/256)%256)+"") // distinct /24s
		_ = i
	}
	manyCIDRs := "[" + strings.TrimSuffix(cidrs.String(), ",") + "]"
	// Billion laughs inside a known field: nine levels of nine aliases.
	bomb := "datapath:\n  passCIDRs:\n    - &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	prev := "a"
	for i := range 8 {
		name := fmt.Sprintf("b%d", i)
		bomb += fmt.Sprintf("    - &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", name, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	huge := filepath.Join(dir, "huge.yaml")
	hf, _ := os.Create(huge)
	hf.WriteString(good + "# ")
	hf.Write(bytes.Repeat([]byte("x"), 64<<20))
	hf.Close()

	type tc struct {
		name, conf, path, want string
	}
	peerOpt := func(opt string) string {
		return strings.Replace(good, "{address: 192.168.1.0, asn: 65100}", "{address: 192.168.1.0, asn: 65100, "+opt+"}", 1)
	}
	cases := []tc{
		{"password file a character device (/dev/zero)", peerOpt("passwordFile: /dev/zero"), "", "passwordFile"},
		{"password file a FIFO with no writer", peerOpt("passwordFile: " + fifo), "", "passwordFile"},
		{"password file of 64 MiB", peerOpt("passwordFile: " + huge), "", "passwordFile"},
		{"40,000 pod CIDRs", strings.Replace(good, `podCIDRs: ["10.0.1.0/24"]`, "podCIDRs: "+manyCIDRs, 1), "", "podCIDRs"},
		{"node.name of 512 KiB", strings.Replace(good, "name: node1", "name: "+strings.Repeat("n", 512<<10), 1), "", "node.name"},
		{"YAML bomb (aliases, 9^9 nodes)", good + bomb, "", "alias|datapath.passCIDRs"},
		{"duplicate key", good + "bgp: {asn: 65002}\n", "", "bgp"},
		{"trailing document", good + "---\nnode: {name: other}\n", "", "document"},
		{"wrong type", strings.Replace(good, "asn: 65001", "asn: [1, 2]", 1), "", "bgp.asn"},
		{"zone ID on a global address", strings.Replace(good, "address: 192.168.1.0", "address: \"2001:db8::1%up1\"", 1), "", "bgp.peers[0].address"},
		{"a peer that is the node itself", strings.Replace(good, "address: 192.168.1.0", "address: 192.168.255.1", 1), "", "bgp.peers[0].address"},
		{"config file a character device", "", "/dev/zero", "config"},
		{"config file a FIFO with no writer", "", fifo, "config"},
		{"config file of 64 MiB", "", huge, "config"},
	}
	before := hostState(t, ns)
	var worst time.Duration
	var worstRSS int64
	failed := 0
	var misses []string
	for _, c := range cases {
		path := c.path
		if path == "" {
			path = filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(path, []byte(c.conf), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// GNU time forks the daemon and reports its own peak RSS (the
		// rusage of a process forked by this test would include the
		// test's memory, which the child shares until it execs).
		rssFile := filepath.Join(dir, "rss")
		os.Remove(rssFile)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "/usr/bin/time", "-q", "-f", "%M", "-o", rssFile,
			"prlimit", "--as=3221225472", "--", podrouterBin, "run", "--config", path)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = time.Second
		// Kill the whole group on timeout: time, prlimit and the daemon.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		timedOut := ctx.Err() != nil
		cancel()
		rss := int64(-1) // unknown: killed before time could write it
		if b, err := os.ReadFile(rssFile); err == nil {
			if kb, err := strconv.ParseInt(strings.TrimSpace(tailLines(string(b), 1)), 10, 64); err == nil {
				rss = kb * 1024
			}
		}
		msg := strings.TrimSpace(tailLines(out.String(), 3))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		named := false
		for _, w := range strings.Split(c.want, "|") {
			named = named || strings.Contains(out.String(), w)
		}
		ok := err != nil && !timedOut && took < 2*time.Second && rss >= 0 && rss < 200<<20 && named
		worst = max(worst, took)
		worstRSS = max(worstRSS, rss)
		t.Logf("%-45s exit=%v in %s, max RSS %d MB, names %q: %v | %s", c.name, err, took.Round(time.Millisecond), rss>>20, c.want, ok, msg)
		if !ok {
			failed++
			misses = append(misses, c.name)
		}
	}
	after := hostState(t, ns)
	unchanged := before == after
	if !unchanged {
		t.Errorf("host state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	report(t, "14 bad config", failed == 0 && unchanged,
		"%d/%d refused in < 2 s naming the field (worst %s, max RSS %d MB), host changed: %v%s … target all, < 2 s, < 200 MB, unchanged",
		len(cases)-failed, len(cases), worst.Round(time.Millisecond), worstRSS>>20, !unchanged, missList(misses))
}

func missList(m []string) string {
	if len(m) == 0 {
		return ""
	}
	return "; missed: " + strings.Join(m, ", ")
}
