package k8s_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/k8s/apply"
	"github.com/podrouter/podrouter/k8s/k8stest"
)

// TestDeployManifestsAndRBAC applies the kustomize build of
// deploy/kubernetes to a real API server, then runs the adapter with a
// token of the podrouter ServiceAccount: what it needs works, the rest is
// forbidden.
func TestDeployManifestsAndRBAC(t *testing.T) {
	srv := k8stest.Start(t)
	admin := srv.Client(t)
	objs := manifests(t)
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ConfigMap", "DaemonSet"} {
		if !kinds[k] {
			t.Errorf("manifests lack a %s", k)
		}
	}
	ctx := context.Background()
	a, err := apply.New(srv.Admin)
	if err != nil {
		t.Fatal(err)
	}
	// Namespaced objects can only be dry-run in a namespace that exists.
	var namespaces []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			namespaces = append(namespaces, o)
		}
	}
	for _, dryRun := range []bool{true, false} {
		if _, err := a.Apply(ctx, namespaces, dryRun); err != nil {
			t.Fatal(err)
		}
	}
	// Every object of the build gets through server-side dry-run, and the
	// dry run stores none of them.
	accepted, err := a.Apply(ctx, objs, true)
	if err != nil {
		t.Fatalf("server-side dry-run of the kustomize build:\n%v", err)
	}
	if got, want := idsOf(accepted), idsOf(objs); !slices.Equal(got, want) {
		t.Fatalf("server-side dry-run answered for\n%v\nwant\n%v", got, want)
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		ri, err := a.Resource(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s after the dry run: err = %v, want NotFound", apply.ObjectID(o), err)
		}
	}
	if _, err := a.Apply(ctx, objs, false); err != nil {
		t.Fatalf("server-side apply of the kustomize build:\n%v", err)
	}
	checkDaemonSet(t, admin)

	for _, name := range []string{secretName, "unrelated"} {
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"password": []byte(name + "-pw")},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	srv.CreateNode(t, "n1", []string{"10.244.1.0/24"})
	srv.CreateNode(t, "n2", []string{"10.244.2.0/24"})

	// The daemon runs with its pod's token, bound to the pod on node n1.
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "podrouter-n1"},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "podrouter",
			Containers: []corev1.Container{{Name: "podrouter", Image: "podrouter:latest"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa := srv.PodTokenConfig(t, pod)
	h := &steered{}
	h.set(reconciled(1, established("10.0.0.1")))
	s, _ := startAdapter(t, sa, "n1", h)

	t.Run("allowed: watch own node, read the secret, condition, events", func(t *testing.T) {
		eventually(t, "state and password via the service account", func() (bool, string) {
			st, _, pw, _ := s.last()
			return len(st.PodCIDRs) == 1 && pw == secretName+"-pw", fmt.Sprintf("%+v %q", st, pw)
		})
		eventually(t, "condition patched by the service account", func() (bool, string) {
			cd, err := condition(admin, "n1")
			return err == nil && cd != nil && cd.Status == corev1.ConditionTrue, fmt.Sprintf("%+v %v", cd, err)
		})
		eventually(t, "event created by the service account", func() (bool, string) {
			return nodeEvent(admin, "n1", health.EventSessionUp, "10.0.0.1")
		})
		bs, err := k8s.NewForConfig(k8s.Config{NodeName: "n1", Namespace: ns, PasswordSecret: secretName}, sa, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if snap, err := bs.Bootstrap(ctx); err != nil || snap.Password != secretName+"-pw" {
			t.Errorf("bootstrap as the service account: %+v, %v", snap, err)
		}
		w, _ := startServiceCIDRs(t, sa)
		waitPrefixes(t, w, "service CIDRs listed and watched by the service account", "10.96.0.0/16")
		// Uninstall detection: its namespace and DaemonSet, by name.
		c := kubernetes.NewForConfigOrDie(sa)
		byName := metav1.ListOptions{FieldSelector: "metadata.name=podrouter"}
		for what, call := range map[string]func() error{
			"get its namespace":          func() error { _, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); return err },
			"list its namespace by name": func() error { _, err := c.CoreV1().Namespaces().List(ctx, byName); return err },
			"get its daemonset": func() error {
				_, err := c.AppsV1().DaemonSets(ns).Get(ctx, "podrouter", metav1.GetOptions{})
				return err
			},
			"watch its daemonset by name": func() error {
				w, err := c.AppsV1().DaemonSets(ns).Watch(ctx, byName)
				if err == nil {
					w.Stop()
				}
				return err
			},
		} {
			if err := call(); err != nil {
				t.Errorf("%s as the service account: %v", what, err)
			}
		}
		u := startUninstall(t, sa, ns, "podrouter")
		checkUninstall(t, u, false, "installed: no uninstall, as the service account")
	})

	t.Run("denied", func(t *testing.T) {
		c := kubernetes.NewForConfigOrDie(sa)
		for what, call := range map[string]func() error{
			"list secrets": func() error {
				_, err := c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"get another secret": func() error {
				_, err := c.CoreV1().Secrets(ns).Get(ctx, "unrelated", metav1.GetOptions{})
				return err
			},
			"list secrets in kube-system": func() error {
				_, err := c.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
				return err
			},
			"update the password secret": func() error {
				_, err := c.CoreV1().Secrets(ns).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName}}, metav1.UpdateOptions{})
				return err
			},
			"patch another node's spec": func() error {
				_, err := c.CoreV1().Nodes().Patch(ctx, "n2", types.StrategicMergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
				return err
			},
			"patch its own node's labels": func() error {
				_, err := c.CoreV1().Nodes().Patch(ctx, "n1", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
				return err
			},
			"delete a node": func() error {
				return c.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{})
			},
			"list pods": func() error {
				_, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
				return err
			},
			"create a configmap": func() error {
				_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
				return err
			},
			"delete events": func() error {
				return c.CoreV1().Events("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			},
			"get a servicecidr": func() error {
				_, err := c.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
				return err
			},
			"create a servicecidr": func() error {
				_, err := c.NetworkingV1().ServiceCIDRs().Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "x"},
					Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.99.0.0/24"}}}, metav1.CreateOptions{})
				return err
			},
			"delete a servicecidr": func() error {
				return c.NetworkingV1().ServiceCIDRs().Delete(ctx, "kubernetes", metav1.DeleteOptions{})
			},
			"list services": func() error {
				_, err := c.CoreV1().Services("").List(ctx, metav1.ListOptions{})
				return err
			},
			"list namespaces": func() error {
				_, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
				return err
			},
			"get another namespace": func() error {
				_, err := c.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
				return err
			},
			"list daemonsets": func() error {
				_, err := c.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"delete its daemonset": func() error {
				return c.AppsV1().DaemonSets(ns).Delete(ctx, "podrouter", metav1.DeleteOptions{})
			},
		} {
			if err := call(); !apierrors.IsForbidden(err) {
				t.Errorf("%s: err = %v, want Forbidden", what, err)
			}
		}
		// RBAC allows nodes/status cluster-wide; the admission policy
		// narrows it to the pod's own node (it may take a moment to load).
		forge := []byte(`{"status":{"conditions":[{"type":"PodrouterReady","status":"True","reason":"Forged"}]}}`)
		deniedByPolicy := func(err error) bool {
			return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "only update the status of the node its pod runs on")
		}
		eventually(t, "admission policy loaded (dry-run probe)", func() (bool, string) {
			_, err := c.CoreV1().Nodes().Patch(ctx, "n2", types.StrategicMergePatchType, forge, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
			return deniedByPolicy(err), fmt.Sprint(err)
		})
		if _, err := c.CoreV1().Nodes().Patch(ctx, "n2", types.StrategicMergePatchType, forge, metav1.PatchOptions{}, "status"); !deniedByPolicy(err) {
			t.Errorf("patch another node's status: err = %v, want Forbidden by the policy", err)
		}
		unbound := kubernetes.NewForConfigOrDie(srv.ServiceAccountConfig(t, ns, "podrouter"))
		if _, err := unbound.CoreV1().Nodes().Patch(ctx, "n1", types.StrategicMergePatchType, forge, metav1.PatchOptions{}, "status"); !deniedByPolicy(err) {
			t.Errorf("status patch with a token not bound to a pod on the node: err = %v, want Forbidden", err)
		}
		// With the policy in force, the daemon still updates its own node.
		h.set(reconciled(1, down("10.0.0.1")))
		eventually(t, "own node's condition still patched under the policy", func() (bool, string) {
			cd, err := condition(admin, "n1")
			return err == nil && cd != nil && cd.Reason == health.ReasonNoSessions, fmt.Sprintf("%+v %v", cd, err)
		})
		n2, err := admin.CoreV1().Nodes().Get(ctx, "n2", metav1.GetOptions{})
		if err != nil || n2.Spec.Unschedulable || len(n2.Status.Conditions) > 0 {
			t.Errorf("node n2 changed by the service account: %+v %+v %v", n2.Spec, n2.Status.Conditions, err)
		}
	})
}

// idsOf returns the objectID of each of objs, in order.
func idsOf(objs []*unstructured.Unstructured) []string {
	var ids []string
	for _, o := range objs {
		ids = append(ids, apply.ObjectID(o))
	}
	return ids
}

// checkDaemonSet asserts the security properties of the applied DaemonSet.
func checkDaemonSet(t *testing.T, c kubernetes.Interface) {
	t.Helper()
	ds, err := c.AppsV1().DaemonSets(ns).Get(context.Background(), "podrouter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.ServiceAccountName != "podrouter" || spec.TerminationGracePeriodSeconds == nil {
		t.Errorf("pod spec: hostNetwork %v serviceAccount %q grace %v", spec.HostNetwork, spec.ServiceAccountName, spec.TerminationGracePeriodSeconds)
	}
	ctr := spec.Containers[0]
	sc := ctr.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("security context: %+v", sc)
	} else {
		for _, capName := range []corev1.Capability{"NET_ADMIN", "BPF", "PERFMON", "NET_RAW"} {
			if !slices.Contains(sc.Capabilities.Add, capName) {
				t.Errorf("capability %s not added: %v", capName, sc.Capabilities.Add)
			}
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") || slices.Contains(sc.Capabilities.Add, "SYS_ADMIN") {
			t.Errorf("capabilities: %+v", sc.Capabilities)
		}
	}
	if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" ||
		ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %+v readiness %+v", ctr.LivenessProbe, ctr.ReadinessProbe)
	}
	if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil {
		t.Error("no preStop hook")
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for _, p := range []string{"/sys/fs/bpf", "/etc/cni/net.d", "/etc/podrouter"} {
		if mounts[p] == "" {
			t.Errorf("%s not mounted: %v", p, mounts)
		}
	}
}
