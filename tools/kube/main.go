// Command kube is the upstream Kubernetes components, built from
// k8s.io/kubernetes at the version pinned in go.mod, in one binary for
// podrouter's tests and lab. The component is the first argument, or the
// name the binary is called by (a symlink kube-proxy -> kube works):
//
//	kube apiserver|controller-manager|scheduler|kubelet|proxy|kubectl [flags]
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // CronJob time zones, as the apiserver and controller-manager mains

	"github.com/spf13/cobra"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as the components' mains
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client metrics, as the components' mains
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as the components' mains
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var commands = map[string]func() *cobra.Command{
	"apiserver":          func() *cobra.Command { return apiserver.NewAPIServerCommand() },
	"controller-manager": func() *cobra.Command { return controllermanager.NewControllerManagerCommand() },
	"scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubelet":            func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"proxy":              func() *cobra.Command { return proxy.NewProxyCommand() },
	"kubectl":            func() *cobra.Command { return kubectl.NewDefaultKubectlCommand() },
}

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "kube-")
	args := os.Args[1:]
	if _, ok := commands[name]; !ok {
		if len(args) == 0 {
			usage()
		}
		name, args = strings.TrimPrefix(args[0], "kube-"), args[1:]
	}
	newCmd, ok := commands[name]
	if !ok {
		usage()
	}
	// Each command reads os.Args itself (kubectl's plugin lookup, cobra's
	// default arguments): give it the argv its own main would see.
	os.Args = append([]string{"kube-" + name}, args...)
	if name == "kubectl" {
		// As k8s.io/kubernetes/cmd/kubectl does.
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) //nolint:errcheck // best effort, as upstream
		if err := cli.RunNoErrOutput(newCmd()); err != nil {
			kubectlutil.CheckErr(err)
		}
		return
	}
	os.Exit(cli.Run(newCmd()))
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: kube %s [flags]\n", strings.Join(names, "|"))
	os.Exit(2)
}
