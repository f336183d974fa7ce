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

// fuzzParents seeds a parent fuzzer with every golden case's parent and some shapes that tripped
// decoders before.
func fuzzParents(f *testing.F) {
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
	for _, s := range []string{
		`{"metadata":{"name":"x","namespace":"y"},"spec":{"version":"v1","deletionPolicy":"Delete","secrets":["a","a"]}}`,
		`{"metadata":{"name":"x","namespace":"y"},"spec":{"version":"v1","deletionPolicy":"delete"}}`,
		`{"metadata":{"name":"x","namespace":"y"},"spec":{"version":"v1","database":{"urlSecret":{"name":"db","key":""}}}}`,
		`{"metadata":{"name":"x"},"spec":{"version":"v1","secrets":["a"]}}`,
		`{"metadata":{"name":"x","namespace":"y","deletionTimestamp":"never"}}`,
		`null`, `[]`, `{}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzFinalize feeds arbitrary parents being deleted, next to the children of a running instance,
// to the finalize core. Whatever the parent holds, the plan deletes data only for a readable, valid
// spec that asks for Delete, and the answer keeps every child until it finalizes.
func FuzzFinalize(f *testing.F) {
	var steady metacontroller.SyncRequest
	b, err := os.ReadFile(filepath.Join(goldenDir, "steady-ready", "request.json"))
	if err != nil {
		f.Fatal(err)
	}
	if err := metacontroller.Decode(b, &steady); err != nil {
		f.Fatal(err)
	}
	observed := 0
	for _, byName := range steady.Children {
		observed += len(byName)
	}
	fuzzParents(f)
	f.Fuzz(func(t *testing.T, parent []byte) {
		req := steady
		req.Parent = json.RawMessage(parent)
		req.Finalizing = true
		env := testEnv(goldenClock)
		plan := PlanFinalize(&req, env)
		if plan.Policy == v1beta1.DeletionPolicyDelete {
			par, err := decodeParent(parent)
			if err != nil || invalid(par) != "" || par.spec.DeletionPolicy != v1beta1.DeletionPolicyDelete {
				t.Fatalf("the plan deletes data for a parent that does not ask for it: %q", parent)
			}
		}
		for _, teardown := range []Teardown{{}, {Remaining: []string{"a bucket"}}} {
			resp := Finalize(&req, env, teardown)
			if resp.Status == nil || resp.Children == nil {
				t.Fatalf("no status or null children for parent %q", parent)
			}
			if _, err := json.Marshal(resp); err != nil {
				t.Fatalf("response does not encode: %v", err)
			}
			if len(resp.Children) != observed {
				t.Fatalf("finalize kept %d of %d children for parent %q", len(resp.Children), observed, parent)
			}
			// An unreadable parent is never finalized: what it owned can't be known to be gone.
			_, unreadable := decodeParent(parent)
			if want := len(teardown.Remaining) == 0 && unreadable == nil; resp.Finalized != want {
				t.Fatalf("finalized = %v with %v left (parent readable: %v), want %v", resp.Finalized, teardown.Remaining, unreadable == nil, want)
			}
		}
	})
}

// FuzzCustomize feeds arbitrary parents to the customize core. It either refuses the parent or
// relates Secrets of the parent's own namespace only (a rule without a namespace would hand out
// another tenant's Secrets), and only those the spec names (inputs, the database's and Redis' URL
// Secrets).
func FuzzCustomize(f *testing.F) {
	fuzzParents(f)
	f.Fuzz(func(t *testing.T, parent []byte) {
		resp, err := Customize(parent)
		if resp.RelatedResources == nil {
			t.Fatalf("a null relatedResources list for %q", parent)
		}
		if err != nil {
			if len(resp.RelatedResources) > 0 {
				t.Fatalf("a refused parent relates %v", resp.RelatedResources)
			}
			return
		}
		par, perr := decodeParent(parent)
		if perr != nil {
			t.Fatalf("customize accepted a parent the core can't read: %q", parent)
		}
		named := map[string]bool{}
		for _, n := range par.spec.Secrets {
			named[n] = true
		}
		if ref := par.spec.Database.URLSecret; ref != nil {
			named[ref.Name] = true
		}
		if r := par.spec.Redis; r != nil && r.URLSecret != nil {
			named[r.URLSecret.Name] = true
		}
		for _, rule := range resp.RelatedResources {
			if rule.Namespace == "" || rule.Namespace != par.meta.Namespace {
				t.Fatalf("a rule for namespace %q, not the parent's %q: %q", rule.Namespace, par.meta.Namespace, parent)
			}
			if len(rule.Names) == 0 {
				t.Fatalf("a rule without names relates every Secret of the namespace: %q", parent)
			}
			for _, n := range rule.Names {
				if !named[n] {
					t.Fatalf("relates %q, which the spec does not name", n)
				}
			}
		}
	})
}
