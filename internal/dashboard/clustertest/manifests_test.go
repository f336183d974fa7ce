package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/forklift-dev/summon/internal/dashboard"
)

func TestTheDashboardManifestsApplyWithAServerDryRun(t *testing.T) {
	k := kube(t)
	// A dry run creates nothing, so the namespace the manifests go into is created for real from
	// the hook's manifests, as the install creates it: with the restricted Pod Security Standard,
	// which the dashboard's Deployment must pass without a warning.
	if _, stderr, err := k.kubectl(t, "apply", "-f", filepath.Join(repo, "manifests", "namespace.yaml")); err != nil {
		t.Fatalf("kubectl apply -f manifests/namespace.yaml: %v\n%s", err, stderr)
	}
	stdout, stderr, err := k.kubectl(t, "apply", "-k", filepath.Join(repo, "manifests", "dashboard"), "--dry-run=server")
	t.Logf("kubectl apply -k manifests/dashboard/ --dry-run=server:\n%s", stdout)
	if err != nil {
		t.Fatalf("kubectl apply -k manifests/dashboard/ --dry-run=server: %v\n%s", err, stderr)
	}
	for _, kind := range []string{"serviceaccount/summon-dashboard", "clusterrole.rbac.authorization.k8s.io/summon-dashboard",
		"clusterrolebinding.rbac.authorization.k8s.io/summon-dashboard", "service/summon-dashboard", "deployment.apps/summon-dashboard",
		"networkpolicy.networking.k8s.io/summon-dashboard"} {
		if !strings.Contains(stdout, kind) {
			t.Errorf("the dry run did not apply %s", kind)
		}
	}
	var warnings []string
	for _, line := range strings.Split(stderr, "\n") {
		// kubectl's note on objects another test applied without it says nothing about the
		// manifests.
		if strings.HasPrefix(line, "Warning:") && !strings.Contains(line, "last-applied-configuration annotation") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) > 0 {
		t.Errorf("kubectl apply -k manifests/dashboard/ --dry-run=server warned:\n%s", strings.Join(warnings, "\n"))
	}
}

// readOnly are the only verbs the dashboard's ClusterRole may grant.
var readOnly = []string{"get", "list", "watch"}

func TestTheDashboardsClusterRoleReadsAndNeverTouchesSecrets(t *testing.T) {
	k := kube(t)
	k.installDashboard(t)
	role, err := k.cs.RbacV1().ClusterRoles().Get(t.Context(), "summon-dashboard", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the ClusterRole back: %v", err)
	}
	if role.AggregationRule != nil {
		t.Errorf("the ClusterRole aggregates other roles: %+v", role.AggregationRule)
	}
	granted := map[string]bool{}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("the ClusterRole grants non-resource URLs %v", r.NonResourceURLs)
		}
		if len(r.ResourceNames) > 0 {
			t.Errorf("rule %+v names resources; the dashboard reads every one", r)
		}
		for _, v := range r.Verbs {
			if !slices.Contains(readOnly, v) {
				t.Errorf("the ClusterRole grants the verb %q on %v", v, r.Resources)
			}
		}
		for _, res := range r.Resources {
			if res == "secrets" || res == "*" || strings.Contains(res, "/") {
				t.Errorf("the ClusterRole grants %v on %q", r.Verbs, res)
			}
			for _, g := range r.APIGroups {
				if g == "*" {
					t.Errorf("the ClusterRole grants %q in every API group", res)
				}
				granted[g+"/"+res] = true
			}
		}
	}
	want := []string{"summon.forklift.dev/summonplatforms", "apps/deployments", "apps/statefulsets", "batch/jobs", "/pods", "/events"}
	for _, w := range want {
		if !granted[w] {
			t.Errorf("the ClusterRole grants nothing on %s, which the dashboard watches", w)
		}
	}
	if len(granted) != len(want) {
		t.Errorf("the ClusterRole grants %v, want exactly %v", granted, want)
	}

	// What the API server's own authorizer decides for the ServiceAccount.
	user := fmt.Sprintf("system:serviceaccount:%s:%s", dashboardNamespace, dashboardAccount)
	for _, tc := range []struct {
		verb, group, resource, subresource string
		allowed                            bool
	}{
		{"watch", "summon.forklift.dev", "summonplatforms", "", true},
		{"list", "", "events", "", true},
		{"get", "", "secrets", "", false},
		{"list", "", "secrets", "", false},
		{"create", "apps", "deployments", "", false},
		{"patch", "summon.forklift.dev", "summonplatforms", "status", false},
		{"delete", "", "pods", "", false},
		{"create", "", "pods", "exec", false},
		{"get", "", "pods", "log", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + dashboardNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: "summon-qa", Verb: tc.verb, Group: tc.group, Resource: tc.resource, Subresource: tc.subresource,
			},
		}}
		got, err := k.cs.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.allowed {
			t.Errorf("%s %s %s/%s in summon-qa: allowed=%v, want %v (%s)", user, tc.verb, tc.resource, tc.subresource, got.Status.Allowed, tc.allowed, got.Status.Reason)
		}
	}
}

func TestAUserWhoCantReadTheFleetIsToldWhatIsMissing(t *testing.T) {
	k := kube(t)
	nobody := k.user(t, "summon-nobody")
	tests := map[string]struct {
		namespace string
		want      []string
	}{
		"every namespace": {"", []string{
			"not allowed to list summonplatforms in every namespace", "not allowed to list events in every namespace",
			"manifests/dashboard/clusterrole.yaml", "or choose one namespace that you can read",
		}},
		"one namespace": {"summon-qa", []string{`not allowed to list pods in namespace "summon-qa"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := dashboard.Run(context.Background(), nobody.Config(), dashboard.Options{
				Listen: "127.0.0.1:0", Namespace: tc.namespace, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			})
			if err == nil {
				t.Fatal("the dashboard ran for a user who can read nothing")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error doesn't say %q:\n%v", w, err)
				}
			}
			if errors.Is(err, context.Canceled) {
				t.Errorf("the error is a cancellation: %v", err)
			}
		})
	}
}

// The dashboard has no login: its NetworkPolicy selects its pods and admits only the ingress
// controller (docs/dashboard.md), to its one port.
func TestTheDashboardsNetworkPolicyAdmitsOnlyTheIngressController(t *testing.T) {
	k := kube(t)
	k.installDashboard(t)
	np, err := k.cs.NetworkingV1().NetworkPolicies("summon-system").Get(t.Context(), "summon-dashboard", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the NetworkPolicy back: %v", err)
	}
	dep, err := k.cs.AppsV1().Deployments("summon-system").Get(t.Context(), "summon-dashboard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("the NetworkPolicy's podSelector %v does not select the dashboard's pods %v", np.Spec.PodSelector, dep.Spec.Template.Labels)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 || len(np.Spec.Ingress[0].Ports) != 1 {
		t.Fatalf("want one rule from one peer to one port, got %+v", np.Spec.Ingress)
	}
	from := np.Spec.Ingress[0].From[0]
	if from.NamespaceSelector == nil || from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "ingress-nginx" ||
		from.PodSelector == nil || from.PodSelector.MatchLabels["app.kubernetes.io/name"] != "ingress-nginx" || from.IPBlock != nil {
		t.Errorf("the peer is %+v, want ingress-nginx's pods in its namespace", from)
	}
	if p := np.Spec.Ingress[0].Ports[0]; p.Port == nil || p.Port.String() != "http" {
		t.Errorf("the port is %+v, want the dashboard's http port", p)
	}
}

// TestTheNamespacedComponentBindsTheDashboardToOneNamespace builds the overlay docs/dashboard.md
// shows for a team that wants the dashboard to see one namespace, and applies it with a server
// dry run: the read-only ClusterRole is bound by a RoleBinding in that namespace, no
// ClusterRoleBinding is left, and the dashboard is started for that namespace alone.
func TestTheNamespacedComponentBindsTheDashboardToOneNamespace(t *testing.T) {
	k := kube(t)
	if _, stderr, err := k.kubectl(t, "apply", "-f", filepath.Join(repo, "manifests", "namespace.yaml")); err != nil {
		t.Fatalf("kubectl apply -f manifests/namespace.yaml: %v\n%s", err, stderr)
	}
	k.namespace(t, "team-a")
	overlay := t.TempDir()
	rel := func(target string) string {
		abs, err := filepath.Abs(target)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(overlay, abs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	kustomization := fmt.Sprintf("resources: [%s]\ncomponents: [%s]\n",
		rel(filepath.Join(repo, "manifests", "dashboard")), rel(filepath.Join(repo, "manifests", "dashboard", "namespaced")))
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}

	built, stderr, err := k.kubectl(t, "kustomize", overlay)
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr)
	}
	if strings.Contains(built, "kind: ClusterRoleBinding") {
		t.Errorf("the namespaced overlay still binds the dashboard cluster-wide:\n%s", built)
	}
	if !strings.Contains(built, "- --namespace=team-a") {
		t.Errorf("the namespaced overlay does not start the dashboard with --namespace=team-a:\n%s", built)
	}

	stdout, stderr, err := k.kubectl(t, "apply", "-k", overlay, "--dry-run=server")
	if err != nil {
		t.Fatalf("kubectl apply -k <namespaced overlay> --dry-run=server: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "rolebinding.rbac.authorization.k8s.io/summon-dashboard") {
		t.Errorf("the dry run did not apply the RoleBinding:\n%s", stdout)
	}
}
