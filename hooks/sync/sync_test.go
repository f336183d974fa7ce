package sync

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// TestTheDebugLinesNameGroupsAndChildrenOnlyWhenLogged: the debug attributes of a sync say how
// many objects each group holds and which children the answer has, and are built only when a
// line at debug level is written.
func TestTheDebugLinesNameGroupsAndChildrenOnlyWhenLogged(t *testing.T) {
	observed := metacontroller.RelativeObjects{
		"Secret.v1":          {"ns/a-config": {"data": map[string]any{"SECRET_KEY": "c2VjcmV0"}}},
		"Deployment.apps/v1": {},
	}
	answer := []metacontroller.Object{
		{"kind": "Secret", "metadata": map[string]any{"name": "a-config"}, "data": map[string]any{"SECRET_KEY": "c2VjcmV0"}},
		{"kind": "Service", "metadata": map[string]any{"name": "a-web"}},
	}
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var out bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: level}))
		log.Debug("sync", slog.Any("observed", groupSizes(observed)), slog.Any("children", childNames(answer)))
		if level == slog.LevelInfo {
			if out.Len() != 0 {
				t.Errorf("at info level a debug line was written: %s", out.String())
			}
			continue
		}
		var line struct {
			Observed map[string]int `json:"observed"`
			Children []string       `json:"children"`
		}
		if err := json.Unmarshal(out.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"Secret.v1": 1, "Deployment.apps/v1": 0}
		if diff := cmp.Diff(want, line.Observed); diff != "" {
			t.Errorf("observed groups (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"Secret/a-config", "Service/a-web"}, line.Children); diff != "" {
			t.Errorf("children (-want +got):\n%s", diff)
		}
		if bytes.Contains(out.Bytes(), []byte("c2VjcmV0")) {
			t.Errorf("the debug line holds a Secret's data: %s", out.String())
		}
	}
}
