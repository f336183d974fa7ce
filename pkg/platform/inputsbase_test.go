package platform

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// goldenSpecs returns the spec of every golden sync request's parent, as decodeParent cuts it out.
func goldenSpecs(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	specs := map[string]json.RawMessage{}
	for name, req := range goldenRequests(t) {
		par, err := decodeParent(req.Parent)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(par.rawSpec) > 0 {
			specs[name] = par.rawSpec
		}
	}
	return specs
}

var hashDefaults = v1beta1.HookDefaults{Image: "registry.example.com/app"}

// FuzzSpecHashIsTheMapsOne gives inputsBase any spec text: its bytes must be inputsBaseByMaps's,
// whichever way it took. A byte of difference would be a restart of every instance's pods.
func FuzzSpecHashIsTheMapsOne(f *testing.F) {
	for _, spec := range goldenSpecs(f) {
		f.Add(string(spec))
	}
	for _, seed := range []string{
		"", "null", "[]", `"x"`, "{}", " { } ", "{}x",
		`{"version":"v1","replicas":{"web":3},"image":"app"}`,
		`{"a":1,"b":-0,"c":0,"d":123456789012345,"e":1234567890123456,"f":1.0,"g":1e2,"h":-5,"i":1E400}`,
		`{"a":"<b>&</b>","b":"\u2028","c":"` + "\u2029" + `"}`,
		`{"a":"fish & chips"}`, `{"a":"1 > 0"}`, `{"a":"` + "\u2028" + `"}`, `{"&":1}`,
		`{"a":12345678901234567}`, `{"a":-9007199254740993}`, `{"a":100000000000000000000000}`,
		`{"a\u0062":1,"ab":2}`, `{"a":"\u00e9","b":"é"}`, "{\"a\":\"\xff\"}",
		`{"b":1,"a":2,"b":3}`, `{"version":"v1","version":"v2"}`, `{"a":{"y":1,"x":[{"d":1,"c":2},[],{}]}}`,
		`{"<":1}`, `{"a":[1,"2",true,false,null,{"z":null}]}`, "{\n\t\"a\" : [ 1 , 2 ] \r\n}",
		`{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
		`{"a":01}`, `{"a":[1,]}`, `{"a":"\x"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		got := inputsBase(json.RawMessage(spec), hashDefaults)
		want := inputsBaseByMaps(json.RawMessage(spec), hashDefaults)
		if !bytes.Equal(got, want) {
			t.Fatalf("inputsBase wrote\n%s\nthe maps write\n%s\nfor the spec %q", got, want, spec)
		}
	})
}

// TestEveryGoldenSpecIsHashedWithoutDecoding checks that the quick way is the one the goldens'
// specs take, and that it writes the maps' bytes for each.
func TestEveryGoldenSpecIsHashedWithoutDecoding(t *testing.T) {
	for name, spec := range goldenSpecs(t) {
		t.Run(name, func(t *testing.T) {
			if _, ok := children.CanonicalObject(nil, string(spec), notTemplateInputs...); !ok {
				t.Fatalf("the spec is left to the maps: %s", spec)
			}
			if got, want := inputsBase(spec, hashDefaults), inputsBaseByMaps(spec, hashDefaults); !bytes.Equal(got, want) {
				t.Fatalf("inputsBase wrote\n%s\nthe maps write\n%s", got, want)
			}
		})
	}
}
