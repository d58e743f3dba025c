package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/podrouter/podrouter/health"
)

// servicesCollector renders how Services pass the fast path: the
// destinations handed to the kernel stack, kube-proxy's mode, and the fast
// path's nf_conntrack lookup mode.
type servicesCollector struct {
	passCIDRs, serviceCIDRs, synced, proxy, kernelCT *prometheus.Desc
}

func newServicesCollector() *servicesCollector {
	return &servicesCollector{
		passCIDRs: desc("services", "pass_cidrs",
			"Destination prefixes the fast path hands to the kernel stack (datapath.passCIDRs and the cluster's Service CIDRs)."),
		serviceCIDRs: desc("services", "service_cidrs",
			"Service CIDRs learned from the cluster's ServiceCIDR objects."),
		synced: desc("services", "service_cidrs_synced",
			"1 once the ServiceCIDR objects were listed (only while they are learned)."),
		proxy: desc("services", "kube_proxy_info",
			"kube-proxy as found on this node: mode as it reports it (\"\" when absent) and state "+
				"(absent, supported, unsupported); absent when not probed.", "mode", "state"),
		kernelCT: desc("datapath", "kernel_conntrack_info",
			"The fast path's nf_conntrack lookup mode in force: nat (flows netfilter translates go to the stack) "+
				"or any (every flow nf_conntrack knows); auto 1 when chosen from kube-proxy's mode.", "mode", "auto"),
	}
}

func (c *servicesCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.passCIDRs, c.serviceCIDRs, c.synced, c.proxy, c.kernelCT} {
		ch <- d
	}
}

func (c *servicesCollector) collect(ch chan<- prometheus.Metric, v health.Services, dp health.DatapathState) {
	gauge := sender(ch, prometheus.GaugeValue)
	if v.Learned {
		gauge(c.serviceCIDRs, float64(len(v.ServiceCIDRs)))
		synced := 0.0
		if v.Synced {
			synced = 1
		}
		gauge(c.synced, synced)
	}
	if v.Proxy != health.ProxyNotProbed {
		gauge(c.proxy, 1, v.ProxyMode, v.Proxy.String())
	}
	if dp != health.DatapathActive {
		return
	}
	gauge(c.passCIDRs, float64(len(v.PassCIDRs)))
	if v.KernelConntrack != "" {
		auto := "0"
		if v.KernelConntrackAuto {
			auto = "1"
		}
		gauge(c.kernelCT, 1, v.KernelConntrack, auto)
	}
}
