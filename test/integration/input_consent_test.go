package integration

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// TestInputSecretsNeedConsentThroughTheAPIServer is the attack of issue 17 through the real API
// server and the hook server: whoever may write a SummonPlatform names a Secret of the namespace
// that is not handed to it (a neighbour's config Secret, an unmarked Secret, an input handed to
// the neighbour). Each is refused with InputNotAllowed, no byte of it reaches the instance's
// config Secret, and every child keeps running; the instance's own marked input works.
func TestInputSecretsNeedConsentThroughTheAPIServer(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	c := k.client(t, nil)
	hook := startHookServer(t)
	mc := &standIn{t: t, c: c, hookURL: hook.url, token: hook.token}
	ctx := t.Context()

	ns := fmt.Sprintf("summon-consent-%d", cliRuns.Add(1))
	ensureNamespace(t, c, ns)
	input := func(name, value string, labels, annotations map[string]string) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
			StringData: map[string]string{"DATABASE_URL": value, "NEIGHBOUR_ONLY": value}}
		if err := c.Create(ctx, s); err != nil {
			t.Fatalf("creating Secret %s: %v", name, err)
		}
	}
	marked := map[string]string{v1beta1.LabelInput: "true"}
	platform := func(name string, secrets ...string) client.ObjectKey {
		t.Helper()
		p := readObjects(t, repoFile(t, "examples", "qa.yaml"))[0]
		p.SetNamespace(ns)
		p.SetName(name)
		_ = unstructured.SetNestedStringSlice(p.Object, secrets, "spec", "secrets")
		_ = unstructured.SetNestedField(p.Object, name+".example.com", "spec", "hostname")
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
		return client.ObjectKeyFromObject(p)
	}
	version := readObjects(t, repoFile(t, "examples", "qa.yaml"))[0].Object["spec"].(map[string]any)["version"].(string)

	// The neighbour, car2-qa, runs with its own input, handed to it alone.
	const neighbourURL = "postgres://car2_qa:neighbour-password@postgres:5432/car2_qa"
	input("car2-qa-inputs", neighbourURL, marked, map[string]string{v1beta1.AnnotationInputFor: "car2-qa"})
	car2 := platform("car2-qa", "car2-qa-inputs")
	mc.converge(car2, version)

	// car1-qa runs with its own marked input.
	input("car1-qa-inputs", "postgres://car1_qa:own@postgres:5432/car1_qa", marked, map[string]string{v1beta1.AnnotationInputFor: "car1-qa"})
	car1 := platform("car1-qa", "car1-qa-inputs")
	mc.converge(car1, version)

	// An unmarked Secret with the neighbour's URL in it, and the neighbour's config Secret with
	// the marks added (by whoever may label Secrets here): Summon's own Secrets are never inputs.
	input("team-settings", neighbourURL, nil, nil)
	neighbourConfig := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: children.NamesFor("car2-qa").Config()}, neighbourConfig); err != nil {
		t.Fatal(err)
	}
	labelled := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"},"annotations":{%q:"*"}}}`, v1beta1.LabelInput, v1beta1.AnnotationInputFor)
	if err := c.Patch(ctx, neighbourConfig, client.RawPatch(types.MergePatchType, []byte(labelled))); err != nil {
		t.Fatal(err)
	}

	config := func() map[string][]byte {
		t.Helper()
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: children.NamesFor("car1-qa").Config()}, s); err != nil {
			t.Fatal(err)
		}
		return s.Data
	}
	childCount := func() int {
		t.Helper()
		n := 0
		for _, kind := range []string{"DeploymentList", "StatefulSetList", "ServiceList", "SecretList"} {
			gv := schema.GroupVersion{Version: "v1"}
			if strings.HasPrefix(kind, "Deployment") || strings.HasPrefix(kind, "StatefulSet") {
				gv = schema.GroupVersion{Group: "apps", Version: "v1"}
			}
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(gv.WithKind(kind))
			if err := c.List(ctx, l, client.InNamespace(ns), client.MatchingLabels{children.LabelInstance: "car1-qa"}); err != nil {
				t.Fatal(err)
			}
			n += len(l.Items)
		}
		return n
	}
	before, childrenBefore := config(), childCount()

	tests := map[string]struct {
		secret string
		reason string
	}{
		"the neighbour's config Secret, even labelled, is refused": {secret: neighbourConfig.Name, reason: "never inputs"},
		"an unmarked Secret is refused":                            {secret: "team-settings", reason: "label it summon.forklift.dev/input=true"},
		"an input handed to the neighbour only is refused":         {secret: "car2-qa-inputs", reason: "not one for car1-qa"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			setSecrets(t, c, car1, tc.secret)
			st := mc.sync(car1)
			ready := meta.FindStatusCondition(st.Conditions, v1beta1.ConditionReady)
			if ready == nil || ready.Reason != "InputNotAllowed" || !strings.Contains(ready.Message, tc.secret) || !strings.Contains(ready.Message, tc.reason) {
				t.Errorf("Ready condition = %+v, want reason InputNotAllowed naming %s and saying %q", ready, tc.secret, tc.reason)
			}
			after := config()
			for k, v := range after {
				if !bytes.Equal(v, before[k]) {
					t.Errorf("the config Secret's %s changed", k)
				}
				if bytes.Contains(v, []byte("neighbour-password")) || bytes.Contains(v, neighbourConfig.Data[k]) {
					t.Errorf("the config Secret's %s holds the neighbour's data", k)
				}
			}
			if got := childCount(); got != childrenBefore {
				t.Errorf("%d children after the refusal, want every one of the %d kept", got, childrenBefore)
			}
		})
	}

	// Back to its own input: Ready again.
	setSecrets(t, c, car1, "car1-qa-inputs")
	mc.converge(car1, version)
}

// setSecrets replaces a SummonPlatform's spec.secrets.
func setSecrets(t *testing.T, c client.Client, key client.ObjectKey, names ...string) {
	t.Helper()
	p := &unstructured.Unstructured{}
	p.SetGroupVersionKind(schema.FromAPIVersionAndKind(v1beta1.APIVersion, v1beta1.Kind))
	p.SetNamespace(key.Namespace)
	p.SetName(key.Name)
	patch := fmt.Sprintf(`{"spec":{"secrets":[%q]}}`, strings.Join(names, `","`))
	if err := c.Patch(t.Context(), p, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("setting spec.secrets of %s: %v", key, err)
	}
}
