package platform

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// TestEveryBuiltChildConvertsAsTheConverterDoes runs every golden request with each child the
// builders make converted twice, by the answer's children.Converter (its strings shared with the
// children before) and by the unstructured converter it replaces (children.ToObjectByConverter), and wants the same map from both: every builder, on
// every state the goldens hold. pkg/children's fuzz test covers random objects of the same types.
func TestEveryBuiltChildConvertsAsTheConverterDoes(t *testing.T) {
	seen := 0
	defer func(was func(*children.Converter, any) (metacontroller.Object, error)) { toObject = was }(toObject)
	toObject = func(conv *children.Converter, typed any) (metacontroller.Object, error) {
		seen++
		got, err := conv.ToObject(typed)
		want, wantErr := children.ToObjectByConverter(typed)
		if err != nil || wantErr != nil {
			t.Errorf("%T: ToObject: %v; the converter: %v", typed, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%T: ToObject differs from the converter (-converter +ToObject):\n%s", typed, cmp.Diff(want, got))
		}
		return got, err
	}
	for name := range goldenCases {
		var req metacontroller.SyncRequest
		readJSON(t, filepath.Join(goldenDir, name, "request.json"), &req)
		Sync(&req, goldenEnv(name))
	}
	if seen < 100 {
		t.Errorf("the goldens built %d children: the check did not run", seen)
	}
	t.Logf("%d children built by the goldens, each the converter's", seen)
}
