package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The lab backend is the server every lab pod (and node, and ToR 1) runs
// with Spec.Kubernetes, so that Services have something real to reach and
// every answer names who gave it and whom it saw:
//
//	HTTP on BackendHTTPPort   GET / -> "<name> <client ip:port>\n"
//	TCP  on BackendEchoPort   each line L -> "<name> <client ip:port> L\n"
//	UDP  on BackendEchoPort   each datagram D -> "<name> <client ip:port> D"
//
// The client address tells a test whether the packet was masqueraded
// (externalTrafficPolicy Cluster, hairpin) or not (Local). It listens on
// the wildcard address of both families. It is built into the lab command
// only, never into the daemon.

// BackendConfig configures RunBackend.
type BackendConfig struct {
	// Name is what every answer starts with (the pod's name).
	Name string
	// HTTPPort and EchoPort default to BackendHTTPPort and BackendEchoPort.
	HTTPPort, EchoPort int
}

// Bounds of what the backend reads.
const (
	backendMaxLine     = 4096
	backendIdleTimeout = 10 * time.Minute
)

// RunBackend serves until ctx ends.
func RunBackend(ctx context.Context, cfg BackendConfig, log *slog.Logger) error {
	if cfg.Name == "" || strings.ContainsAny(cfg.Name, " \n") {
		return fmt.Errorf("backend name %q: want a non-empty word", cfg.Name)
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = BackendHTTPPort
	}
	if cfg.EchoPort == 0 {
		cfg.EchoPort = BackendEchoPort
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	hl, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(cfg.HTTPPort))
	if err != nil {
		return err
	}
	el, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(cfg.EchoPort))
	if err != nil {
		hl.Close()
		return err
	}
	uc, err := lc.ListenPacket(ctx, "udp", ":"+strconv.Itoa(cfg.EchoPort))
	if err != nil {
		hl.Close()
		el.Close()
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s\n", cfg.Name, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       backendIdleTimeout,
	}
	log.Info("backend serving", "name", cfg.Name, "http", cfg.HTTPPort, "echo", cfg.EchoPort)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := srv.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		errs <- serveEcho(ctx, el, cfg.Name)
	}()
	go func() {
		defer wg.Done()
		errs <- serveUDPEcho(uc, cfg.Name)
	}()
	var err0 error
	select {
	case <-ctx.Done():
	case err0 = <-errs:
	}
	srv.Close()
	el.Close()
	uc.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err0
}

func serveEcho(ctx context.Context, l net.Listener, name string) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("echo accept: %w", err)
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			sc := bufio.NewScanner(c)
			sc.Buffer(make([]byte, 0, 512), backendMaxLine)
			for {
				_ = c.SetReadDeadline(time.Now().Add(backendIdleTimeout)) // a closed conn fails the Scan below
				if !sc.Scan() {
					return
				}
				if _, err := fmt.Fprintf(c, "%s %s %s\n", name, c.RemoteAddr(), sc.Text()); err != nil {
					return
				}
			}
		}()
	}
}

func serveUDPEcho(c net.PacketConn, name string) error {
	buf := make([]byte, backendMaxLine)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("udp echo: %w", err)
		}
		reply := fmt.Sprintf("%s %s %s", name, from, buf[:n])
		_, _ = c.WriteTo([]byte(reply), from) // a lost reply is the client's timeout
	}
}
