package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBackend runs the lab backend on loopback ports and checks each
// protocol's answer: the name, the client address it saw, the payload.
func TestBackend(t *testing.T) {
	ports := make([]int, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunBackend(ctx, BackendConfig{Name: "n1p1", HTTPPort: ports[0], EchoPort: ports[1]}, nil)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("backend: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("backend did not stop")
		}
	}()
	var body string
	for i := 0; ; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0]))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if i == 50 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.HasPrefix(body, "n1p1 127.0.0.1:") {
		t.Errorf("http answer %q", body)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, line := range []string{"one", "two words"} {
		fmt.Fprintf(c, "%s\n", line)
		got, err := r.ReadString('\n')
		if err != nil || got != fmt.Sprintf("n1p1 %s %s\n", c.LocalAddr(), line) {
			t.Errorf("tcp echo of %q: %q %v", line, got, err)
		}
	}
	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // a failure shows as the read error
	if _, err := u.Write([]byte("dgram")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 256)
	n, err := u.Read(b)
	if err != nil || string(b[:n]) != fmt.Sprintf("n1p1 %s dgram", u.LocalAddr()) {
		t.Errorf("udp echo: %q %v", b[:n], err)
	}
	if err := RunBackend(context.Background(), BackendConfig{Name: "two words"}, nil); err == nil {
		t.Error("a name with a space accepted")
	}
}
