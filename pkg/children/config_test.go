package children

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// trickyStrings are keys and values YAML reads as something else unless quoted, or must escape.
var trickyStrings = []string{
	"", "plain", "true", "False", "yes", "no", "on", "off", "y", "n", "null", "~", "Null",
	"1", "-1", "0x1F", "0o17", "017", "1.5", "1e3", ".inf", "-.Inf", ".nan", "1_000", "12:30:00",
	"2019-08-01", "2019-08-01T10:00:00Z", "postgres://user:p@ss@db:5432/app?sslmode=require",
	"a: b", "- item", "#comment", "a #b", "&anchor", "*alias", "!tag", "%directive", "@at", "`tick",
	"'single'", `"double"`, "{flow}", "[list]", "a,b", "?", "|", ">", " leading", "trailing ",
	"line\nbreak", "tab\there", "\r", "\x00nul", "\x1bescape", "<&>", "\u2028\u2029", "é ü ß", "日本語",
	"emoji 🚀", "\ufeffbom", "a\\b", "very long " + string(make([]byte, 0)) + "value that goes on and on and on past eighty characters to see whether anything folds",
	"SECRET_KEY", "DATABASE_URL", "key.with.dots", "key/with/slash", "10", "9", "a10", "a9",
}

// TestConfigFileIsSigsYAMLs checks ConfigFile's direct path against sigs.k8s.io/yaml, which it
// stands in for, on random settings of tricky strings, and that settings that are not all strings
// still go through sigs.k8s.io/yaml.
func TestConfigFileIsSigsYAMLs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return trickyStrings[r.IntN(len(trickyStrings))] }
	// yaml.v2 orders keys "naturally" (digit runs as numbers), an order that is not transitive
	// between keys with and without digits ("9" < "10" < "1e3" < "9"): both sides then write such
	// keys in the order the map gave them. Keys here have no digits; values are anything.
	var keys []string
	for _, k := range trickyStrings {
		if !strings.ContainsAny(k, "0123456789") {
			keys = append(keys, k)
		}
	}
	pickKey := func() string { return keys[r.IntN(len(keys))] }
	cases := []Settings{
		{},
		{"invalid": "\xff\xfe"},
		{"\xffkey": "v"},
		{"n": int64(3), "f": 1.5, "b": true, "nil": nil, "m": map[string]any{"a": []any{"x", int64(1)}}, "s": "str"},
		{"f": 2.0, "big": 1e21, "small": 1e-7, "neg": math.Copysign(0, -1)},
		{"l": []any{}, "m": map[string]any{}},
	}
	plain := []any{true, false, nil, int64(0), int64(-1), int64(1) << 62, int64(-1) << 63, int64(9), int64(10)}
	for range 2000 {
		s := Settings{}
		for range r.IntN(12) {
			if r.IntN(3) == 0 {
				s[pickKey()] = plain[r.IntN(len(plain))]
			} else {
				s[pickKey()] = pick()
			}
		}
		cases = append(cases, s)
	}
	for _, s := range cases {
		want, wantErr := yaml.Marshal(map[string]any(s))
		got, err := ConfigFile(s)
		if err != nil || wantErr != nil {
			t.Fatalf("%q: ConfigFile: %v; sigs.k8s.io/yaml: %v", s, err, wantErr)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Fatalf("%q: ConfigFile differs from sigs.k8s.io/yaml (-sigs +ConfigFile):\n%s", s, diff)
		}
	}
}
