package children

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// templateAnnotationsByAsObserved is what TemplateAnnotationsAsObserved stands for: the pod
// template annotations of the object AsObserved builds.
func templateAnnotationsByAsObserved(observed metacontroller.Object) (map[string]string, bool) {
	spec, _ := AsObserved(observed)["spec"].(map[string]any)
	tpl, ok := spec["template"].(map[string]any)
	if !ok {
		return nil, false
	}
	meta, _ := tpl["metadata"].(map[string]any)
	return StringValues(meta["annotations"]), true
}

// observedWeb is a web Deployment as Metacontroller sends it back: with lastApplied (a JSON
// text) as its last-applied annotation when it is not empty, and a template annotation of the
// live object's own that the last applied one lacks.
func observedWeb(t testing.TB, lastApplied string) metacontroller.Object {
	t.Helper()
	spec := v1beta1.Spec{Version: "v1"}.Defaulted(v1beta1.HookDefaults{Image: "registry.example/app"})
	obj, err := ToObject(WebDeployment(NewPlatform("shop", "shop", spec), Release{Version: "v1"}, 2))
	if err != nil {
		t.Fatal(err)
	}
	tpl := obj["spec"].(map[string]any)["template"].(map[string]any)
	metacontroller.SetAnnotation(tpl, "kubectl.kubernetes.io/restartedAt", "2026-12-05T10:00:00Z")
	if lastApplied != "" {
		metacontroller.SetAnnotation(obj, LastAppliedAnnotation, lastApplied)
	}
	return obj
}

// FuzzTemplateAnnotationsAreAsObserveds gives TemplateAnnotationsAsObserved a last-applied
// annotation of any text: whenever it answers (ok), its answer is AsObserved's.
func FuzzTemplateAnnotationsAreAsObserveds(f *testing.F) {
	applied, err := json.Marshal(observedWeb(f, ""))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(applied),
		"", // no annotation: the live template
		"not JSON",
		`{"kind":"Deployment","apiVersion":"apps/v1"}`,
		`{"kind":"StatefulSet","apiVersion":"apps/v1","spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":null}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":"x"}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"metadata":null}}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"metadata":{"annotations":{"a":1,"b":"c"}}}}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"metadata":{"annotations":{"a":"b"}}}},"spec":{"replicas":1}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","Spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"metadata":{"annotations":{"a":"b","a":"c"}}}}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, lastApplied string) {
		obj := observedWeb(t, lastApplied)
		got, hasTemplate, ok := TemplateAnnotationsAsObserved(obj)
		if !ok {
			return
		}
		want, wantTemplate := templateAnnotationsByAsObserved(obj)
		if hasTemplate != wantTemplate {
			t.Fatalf("has a template: %v, AsObserved's object: %v", hasTemplate, wantTemplate)
		}
		if wantTemplate && !reflect.DeepEqual(got, want) {
			t.Fatalf("template annotations differ from AsObserved's (-AsObserved +read):\n%s", cmp.Diff(want, got))
		}
	})
}

// TestTemplateAnnotationsAsObservedReadsTheCommonCases checks that the narrow read answers for
// the objects a Ready instance's syncs see, so that the core does not fall back every time.
func TestTemplateAnnotationsAsObservedReadsTheCommonCases(t *testing.T) {
	applied, err := json.Marshal(observedWeb(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	for name, lastApplied := range map[string]string{
		"a last-applied annotation of the same kind": string(applied),
		"no last-applied annotation":                 "",
	} {
		t.Run(name, func(t *testing.T) {
			obj := observedWeb(t, lastApplied)
			got, hasTemplate, ok := TemplateAnnotationsAsObserved(obj)
			want, _ := templateAnnotationsByAsObserved(obj)
			if !ok || !hasTemplate || !reflect.DeepEqual(got, want) || len(got) == 0 {
				t.Fatalf("ok %v, template %v, %v; want AsObserved's %v", ok, hasTemplate, got, want)
			}
		})
	}
}
