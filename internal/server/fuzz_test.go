package server

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// FuzzHooks posts arbitrary bodies to every hook. Whatever arrives, a hook answers 200 with a
// strictly decodable v2 response, or refuses it with 400 or 413 (which change nothing); it never
// fails with a 500, and a 200 never carries a null children list.
func FuzzHooks(f *testing.F) {
	for _, seed := range []string{
		filepath.Join("..", "..", "examples", "requests", "fresh-install.json"),
		filepath.Join("..", "..", "testdata", "sync", "invalid-spec", "request.json"),
		filepath.Join("..", "..", "testdata", "sync", "legacy-beat-observed", "request.json"),
	} {
		b, err := os.ReadFile(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"parent":{"metadata":{"name":"x","namespace":"y"},"spec":{"version":"v1"}},"children":null}`))
	f.Add([]byte(`{"parent":null}`))
	f.Add([]byte(`{}`))
	s, _ := testServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, hook := range []string{"/sync", "/finalize", "/customize"} {
			rec := post(s, hook, body)
			switch rec.Code {
			case http.StatusOK:
				if hook == "/customize" {
					continue
				}
				r := decodeStrict(t, rec.Body.Bytes())
				if r.Children == nil {
					t.Fatalf("%s answered 200 with a null children list for %q", hook, body)
				}
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			default:
				t.Fatalf("%s answered %d for %q: %s", hook, rec.Code, body, rec.Body)
			}
		}
	})
}
