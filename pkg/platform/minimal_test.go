package platform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// TestChildrenAreMinimalJSON walks every child that Summon builds in every golden case and fails
// on what would make Metacontroller see a difference on every sync: a status, a null, an empty
// object or list, a creationTimestamp. Children returned as observed are exempt from nothing:
// they come back from the last-applied configuration, which is what Summon built.
func TestChildrenAreMinimalJSON(t *testing.T) {
	for name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			var req metacontroller.SyncRequest
			readJSON(t, goldenDir+"/"+name+"/request.json", &req)
			resp := Sync(&req, testEnv(goldenClock))
			for _, child := range resp.Children {
				where := fmt.Sprintf("%s %s", refOf(child).group, nameOf(child))
				if _, ok := child["status"]; ok {
					t.Errorf("%s carries a status", where)
				}
				meta, _ := child["metadata"].(map[string]any)
				if _, ok := meta["creationTimestamp"]; ok {
					t.Errorf("%s carries metadata.creationTimestamp", where)
				}
				for _, problem := range notMinimal(child, "") {
					t.Errorf("%s: %s", where, problem)
				}
			}
		})
	}
}

// TestNotMinimalFindsNoise makes sure the walker itself sees what it must.
func TestNotMinimalFindsNoise(t *testing.T) {
	noisy := metacontroller.Object{
		"spec": map[string]any{
			"selector": nil,
			"strategy": map[string]any{},
			"template": map[string]any{"spec": map[string]any{
				"volumes":     []any{map[string]any{"name": "tmp", "emptyDir": map[string]any{}}},
				"tolerations": []any{},
			}},
		},
	}
	got := strings.Join(notMinimal(noisy, ""), "\n")
	for _, want := range []string{"spec.selector is null", "spec.strategy is an empty object", "spec.template.spec.tolerations is an empty list"} {
		if !strings.Contains(got, want) {
			t.Errorf("walker missed %q; it found:\n%s", want, got)
		}
	}
	if strings.Contains(got, "emptyDir") {
		t.Errorf("emptyDir: {} means something and must pass; walker said:\n%s", got)
	}
}

func notMinimal(v any, path string) []string {
	var out []string
	switch x := v.(type) {
	case nil:
		out = append(out, path+" is null")
	case map[string]any:
		if len(x) == 0 && !strings.HasSuffix(path, ".emptyDir") {
			out = append(out, path+" is an empty object")
		}
		for k, e := range x {
			out = append(out, notMinimal(e, strings.TrimPrefix(path+"."+k, "."))...)
		}
	case []any:
		if len(x) == 0 {
			out = append(out, path+" is an empty list")
		}
		for i, e := range x {
			out = append(out, notMinimal(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}
