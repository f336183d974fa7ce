package platform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// FuzzSyncParent feeds arbitrary parent objects, next to the children of a running instance, to
// the pure core. Whatever the parent holds, Sync must answer with a status and a children list,
// and when it answers Error it must keep every running workload.
func FuzzSyncParent(f *testing.F) {
	var steady metacontroller.SyncRequest
	b, err := os.ReadFile(filepath.Join(goldenDir, "steady-ready", "request.json"))
	if err != nil {
		f.Fatal(err)
	}
	if err := metacontroller.Decode(b, &steady); err != nil {
		f.Fatal(err)
	}
	for name := range goldenCases {
		var req metacontroller.SyncRequest
		b, err := os.ReadFile(filepath.Join(goldenDir, name, "request.json"))
		if err != nil {
			f.Fatal(err)
		}
		if err := metacontroller.Decode(b, &req); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(req.Parent))
	}
	f.Add([]byte(`{"metadata":{"name":"x"},"spec":{"version":"v1","config":{"A":[1]}}}`))
	f.Add([]byte(`{"metadata":{"name":"x"},"spec":null,"status":{"migratedVersion":7}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, parent []byte) {
		req := steady
		req.Parent = json.RawMessage(parent)
		resp := Sync(&req, testEnv(goldenClock))
		if resp.Status == nil || resp.Children == nil {
			t.Fatalf("no status or null children for parent %q", parent)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
		st := resp.Status.(v1beta1.Status)
		if st.Phase != v1beta1.PhaseError {
			return
		}
		if dropped := droppedWorkloads(&req, resp); len(dropped) > 0 {
			t.Fatalf("Error (%s) dropped %v", st.Message, dropped)
		}
	})
}
