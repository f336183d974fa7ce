// Package argocd tests the Argo CD health check of docs/argocd/health.lua with gopher-lua, the
// Lua interpreter Argo CD itself embeds, against the status of every golden sync case.
package argocd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// health runs the check on an object, as Argo CD does: the object is the global obj, and the
// script returns a table with status and message.
func health(t *testing.T, obj map[string]any) (status, message string) {
	t.Helper()
	script, err := os.ReadFile("health.lua")
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		t.Fatalf("running health.lua: %v", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, not a table", L.Get(-1).Type())
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message"))
}

// toLua converts decoded JSON as Argo CD's Lua VM does: objects and arrays become tables,
// numbers float64.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

// Every golden case's answer, as Metacontroller writes it back (status plus observedGeneration),
// maps to the health Argo CD should show.
func TestHealthOfEveryGoldenStatus(t *testing.T) {
	want := map[string]string{
		"postgres-in-cluster":                        "Progressing",
		"postgres-without-cnpg":                      "Degraded",
		"postgres-backup-running":                    "Progressing",
		"postgres-backup-completed-migration-starts": "Progressing",
		"postgres-backup-failed":                     "Degraded",
		"qa-own-data-ready":                          "Healthy",
		"redis-external":                             "Progressing",
		"redis-on":                                   "Healthy",
		"redis-to-external":                          "Progressing",
		"autoscaling-frozen-keeps-the-hpa-count":     "Degraded",
		"autoscaling-on-above-the-bounds":            "Progressing",
		"autoscaling-on-below-the-bounds":            "Progressing",
		"autoscaling-on-inside-the-bounds":           "Healthy",
		"autoscaling-steady-after-the-hpa-scaled-up": "Healthy",
		"autoscaling-turned-off":                     "Progressing",
		"back-to-migrated-version":                   "Progressing",
		"beat-disabled":                              "Progressing",
		"config-change":                              "Progressing",
		"externals-created":                          "Progressing",
		"externals-failing":                          "Degraded",
		"externals-steady":                           "Healthy",
		"fresh-install":                              "Progressing",
		"input-secret-missing":                       "Degraded",
		"input-secrets-and-shared-database":          "Progressing",
		"invalid-spec":                               "Degraded",
		"job-kept-as-record-after-round-trip":        "Progressing",
		"backup-best-effort-failed":                  "Progressing",
		"backup-completed-migration-starts":          "Progressing",
		"backup-failed":                              "Degraded",
		"backup-never":                               "Progressing",
		"backup-required-but-unavailable":            "Degraded",
		"backup-running":                             "Progressing",
		"builders-held":                              "Healthy",
		"builders-held-unrecorded":                   "Healthy",
		"builders-user-change-passes-through":        "Progressing",
		"builders-wave-open":                         "Healthy",
		"externals-from-before-owner-marks":          "Healthy",
		"externals-owned-by-another":                 "Degraded",
		"input-secret-for-another-instance":          "Degraded",
		"input-secret-not-marked":                    "Degraded",
		"input-secret-of-a-neighbour":                "Degraded",
		"legacy-beat-observed":                       "Progressing",
		"longest-name":                               "Healthy",
		"migration-failed":                           "Degraded",
		"migration-running":                          "Progressing",
		"migration-starts":                           "Progressing",
		"migration-succeeded":                        "Progressing",
		"missing-child-group":                        "Degraded",
		"new-version-while-old-serves":               "Progressing",
		"paused":                                     "Suspended",
		"steady-ready":                               "Healthy",
		"unknown-child-type":                         "Degraded",
	}
	dirs, err := filepath.Glob("../../testdata/sync/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden case found (%v)", err)
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			expected, ok := want[name]
			if !ok {
				t.Fatalf("golden case %s has no expected health here: add it", name)
			}
			var req struct {
				Parent map[string]any `json:"parent"`
			}
			var resp struct {
				Status map[string]any `json:"status"`
			}
			readJSON(t, filepath.Join(dir, "request.json"), &req)
			readJSON(t, filepath.Join(dir, "response.json"), &resp)
			obj := req.Parent
			meta, _ := obj["metadata"].(map[string]any)
			resp.Status["observedGeneration"] = meta["generation"]
			obj["status"] = resp.Status
			status, message := health(t, obj)
			if status != expected {
				t.Errorf("health %q (%s), want %q; phase %v", status, message, expected, resp.Status["phase"])
			}
			if status != "Healthy" && message == "" {
				t.Errorf("%s health without a message", status)
			}
		})
	}
}

func TestHealthWaitsForTheSyncOfTheLatestGeneration(t *testing.T) {
	tests := map[string]struct {
		obj  map[string]any
		want string
	}{
		"no status yet is progressing": {
			obj: map[string]any{"metadata": map[string]any{"generation": 1.0}}, want: "Progressing",
		},
		"a Ready status of an older generation is progressing": {
			obj: map[string]any{"metadata": map[string]any{"generation": 3.0}, "status": map[string]any{
				"phase": "Ready", "observedGeneration": 2.0,
				"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			}},
			want: "Progressing",
		},
		"a Ready status of the current generation is healthy": {
			obj: map[string]any{"metadata": map[string]any{"generation": 3.0}, "status": map[string]any{
				"phase": "Ready", "observedGeneration": 3.0,
				"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			}},
			want: "Healthy",
		},
		"phase Ready without its condition is progressing": {
			obj: map[string]any{"metadata": map[string]any{"generation": 1.0}, "status": map[string]any{
				"phase": "Ready", "observedGeneration": 1.0,
			}},
			want: "Progressing",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, msg := health(t, tc.obj); got != tc.want {
				t.Errorf("health %q (%s), want %q", got, msg, tc.want)
			}
		})
	}
}

func readJSON(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
}
