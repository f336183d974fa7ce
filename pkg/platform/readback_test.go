package platform

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// What a client of the cluster reads back from a config Secret must be everything the hook put
// into it: with those values instead of the master key, Sync answers byte for byte the same, in
// every golden case (the config file, its hash in every pod template, the status).
func TestGeneratedCredentialsGiveBackTheHooksAnswer(t *testing.T) {
	sawSecrets := 0
	for name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			var req metacontroller.SyncRequest
			readJSON(t, filepath.Join(goldenDir, name, "request.json"), &req)
			env := goldenEnv(name)
			want := Sync(&req, env)
			file, ok := configFileOf(t, want)
			if !ok {
				return
			}
			known, err := GeneratedCredentials(file)
			if err != nil {
				t.Fatal(err)
			}
			sawSecrets += len(known)
			env.Credentials = credentials.Known{Values: known, Fallback: credentials.Placeholder{}}
			got := Sync(&req, env)
			if diff := cmp.Diff(encode(t, want), encode(t, got)); diff != "" {
				t.Errorf("the answer with the values read back differs from the hook's (-hook +read back):\n%s", diff)
			}
		})
	}
	if sawSecrets == 0 {
		t.Error("no golden case had a generated secret to read back")
	}
}

func TestGeneratedCredentialsOfAFileThatIsNoMappingIsAnErrorWithoutItsContent(t *testing.T) {
	_, err := GeneratedCredentials([]byte("- hunter2-is-my-password\n"))
	if err == nil {
		t.Fatal("a list was read as a config file")
	}
	if got := err.Error(); strings.Contains(got, "hunter2") {
		t.Errorf("the error should say what is wrong without the file's content: %q", got)
	}
}

// configFileOf finds the app config file in a response.
func configFileOf(t *testing.T, resp *metacontroller.SyncResponse) ([]byte, bool) {
	t.Helper()
	for _, obj := range resp.Children {
		if refOf(obj).group != GroupSecret || labelsOf(obj)[children.LabelComponent] != string(children.AppConfig) {
			continue
		}
		data, _ := obj["data"].(map[string]any)
		enc, ok := data[children.ConfigFileName].(string)
		if !ok {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			t.Fatal(err)
		}
		return b, true
	}
	return nil, false
}
