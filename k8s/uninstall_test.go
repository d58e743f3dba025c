package k8s_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/k8s/k8stest"
)

// startUninstall runs an uninstall watcher for DaemonSet ds in ns as rc
// until the test ends.
func startUninstall(t *testing.T, rc *rest.Config, ns, ds string) *k8s.Uninstall {
	t.Helper()
	u, err := k8s.NewUninstall(rc, ns, ds, time.Minute, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = u.Run(ctx); close(done) }() // Run returns nil when ctx ends
	t.Cleanup(func() { cancel(); <-done })
	return u
}

func checkUninstall(t *testing.T, u *k8s.Uninstall, want bool, what string) {
	t.Helper()
	eventually(t, what, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		got, why := u.Check(ctx)
		return got == want, why
	})
}

func daemonSet(name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x:1"}}},
			},
		},
	}
}

// TestUninstall against a real API server (no controller-manager: a
// deleted namespace stays Terminating, as while its contents go): a
// rollout leaves both objects, so no uninstall; deleting the DaemonSet or
// the namespace is one. When the daemon may no longer read the objects at
// exit (kubectl delete -k removes the RBAC too), the watches' last view
// decides.
func TestUninstall(t *testing.T) {
	srv := k8stest.Start(t)
	admin := srv.Client(t)
	ctx := context.Background()
	mkNS := func(name string) {
		t.Helper()
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkDS := func(ns, name string) {
		t.Helper()
		if _, err := admin.AppsV1().DaemonSets(ns).Create(ctx, daemonSet(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("daemonset deleted", func(t *testing.T) {
		mkNS("u1")
		mkDS("u1", "podrouter")
		u := startUninstall(t, srv.Admin, "u1", "podrouter")
		checkUninstall(t, u, false, "installed: no uninstall")
		// A rolling update changes the DaemonSet, never deletes it.
		if _, err := admin.AppsV1().DaemonSets("u1").Patch(ctx, "podrouter", "application/strategic-merge-patch+json",
			[]byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}}}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		checkUninstall(t, u, false, "rollout restart: no uninstall")
		if err := admin.AppsV1().DaemonSets("u1").Delete(ctx, "podrouter", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		checkUninstall(t, u, true, "daemonset deleted: uninstall")
	})

	t.Run("namespace deleted", func(t *testing.T) {
		mkNS("u2")
		mkDS("u2", "podrouter")
		u := startUninstall(t, srv.Admin, "u2", "podrouter")
		checkUninstall(t, u, false, "installed: no uninstall")
		if err := admin.CoreV1().Namespaces().Delete(ctx, "u2", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		checkUninstall(t, u, true, "namespace terminating: uninstall")
	})

	t.Run("access gone at exit", func(t *testing.T) {
		mkNS("u3")
		mkDS("u3", "podrouter")
		sa := grantUninstall(t, admin, srv, "u3")
		u := startUninstall(t, sa, "u3", "podrouter")
		checkUninstall(t, u, false, "installed, as the service account: no uninstall")
		// kubectl delete -k removes the RBAC too: by the SIGTERM the
		// daemon may not read its namespace any more. The watch made
		// before still sees it go.
		if err := admin.RbacV1().ClusterRoleBindings().Delete(ctx, "u3-uninstall", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		c := kubernetes.NewForConfigOrDie(sa)
		eventually(t, "reading the namespace forbidden", func() (bool, string) {
			_, err := c.CoreV1().Namespaces().Get(ctx, "u3", metav1.GetOptions{})
			return apierrors.IsForbidden(err), fmt.Sprint(err)
		})
		if err := admin.CoreV1().Namespaces().Delete(ctx, "u3", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		checkUninstall(t, u, true, "namespace terminating, seen by the watch though a read is forbidden")
	})

	t.Run("never watched", func(t *testing.T) {
		// No access at all (manifests older than the detection): always a
		// restart, the safe mistake.
		mkNS("u4")
		if _, err := admin.CoreV1().ServiceAccounts("u4").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podrouter"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		u := startUninstall(t, srv.ServiceAccountConfig(t, "u4", "podrouter"), "u4", "podrouter")
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if got, why := u.Check(ctx); got {
			t.Errorf("uninstall reported without access: %s", why)
		}
	})
}

// grantUninstall gives ServiceAccount ns/podrouter what deploy/kubernetes
// grants for the detection (its namespace and its DaemonSet, by name) and
// returns its REST config.
func grantUninstall(t *testing.T, admin kubernetes.Interface, srv *k8stest.Server, ns string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podrouter"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	subj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "podrouter", Namespace: ns}}
	read := []string{"get", "list", "watch"}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-uninstall"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, ResourceNames: []string{ns}, Verbs: read}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-uninstall"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: ns + "-uninstall"}, Subjects: subj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "uninstall"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, ResourceNames: []string{"podrouter"}, Verbs: read}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "uninstall"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "uninstall"}, Subjects: subj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv.ServiceAccountConfig(t, ns, "podrouter")
}
