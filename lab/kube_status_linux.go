package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
)

// kubeStatus prints what an operator checks in the Kubernetes lab: the
// control plane's processes, each node's kube-proxy mode, the Nodes,
// Services and EndpointSlices as kubectl shows them, and a request from a
// pod to the echo Service by ClusterIP (curl, both families) and by name
// (the pod's resolver asks the dns Service).
func (l *Lab) kubeStatus(ctx context.Context, w io.Writer, section func(title, body string, err error)) error {
	s := l.Spec
	var errs []error
	section(fmt.Sprintf("kubernetes control plane (namespace %s, state %s)", s.ToRNS(1), s.kubeDir()), l.controlPlaneStatus(), nil)
	var kp strings.Builder
	for n := 1; n <= s.Nodes; n++ {
		mode, err := l.ProxyMode(ctx, n)
		pid, _ := readPid(s.kubeProxyPidfile(n)) // missing: 0
		fmt.Fprintf(&kp, "%s: kube-proxy pid %d rss %s, curl %s/proxyMode: %s", NodeName(n), pid, ProcRSS(pid), KubeProxyMetricsAddr, mode)
		if err != nil {
			fmt.Fprintf(&kp, " (%v)", err)
			errs = append(errs, err)
		}
		kp.WriteString("\n")
	}
	section("kube-proxy", kp.String(), nil)
	kubectl := fmt.Sprintf("ip netns exec %s %s --kubeconfig %s", s.ToRNS(1), s.kubeBin("kubectl"), s.adminKubeconfig())
	for _, args := range [][]string{{"get", "nodes,svc,endpointslices", "-A", "-o", "wide"}} {
		out, err := l.Kubectl(ctx, args...)
		section(kubectl+" "+strings.Join(args, " "), out, err)
		errs = append(errs, err)
	}
	echo, err := l.ServiceIPs(ctx, EchoService)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	client := s.PodNS(1, 1)
	var urls []string
	for _, a := range echo {
		urls = append(urls, "http://"+hostPort(a, 80)+"/")
	}
	urls = append(urls, "http://"+ServiceName(EchoService)+"/")
	for _, u := range urls {
		out, err := Exec(ctx, client, "curl", "-sS", "--max-time", "3", u)
		section(fmt.Sprintf("ip netns exec %s curl %s   (the answer: backend pod, client address it saw)", client, u), out, err)
		errs = append(errs, err)
	}
	out, err := Exec(ctx, client, "dig", "+short", "+tries=1", "+timeout=2", ServiceName(EchoService), "A", ServiceName(EchoService), "AAAA")
	section(fmt.Sprintf("ip netns exec %s dig +short %s A %s AAAA   (cat /etc/netns/%s/resolv.conf: nameserver %s)",
		client, ServiceName(EchoService), ServiceName(EchoService), client, DNSServiceIPs()[0]), out, err)
	errs = append(errs, err)
	fmt.Fprintf(w, "=== logs: %s/*.log (control plane), %s (kube-proxy, backends)\n", s.kubeDir(), filepath.Join(s.StateDir(), "node<n>", "kube"))
	return errors.Join(errs...)
}

// hostPort joins an address and a port ("[fd00::1]:80").
func hostPort(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }
