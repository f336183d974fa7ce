package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
)

const instancesFile = "testdata/set-version/instances.yaml"

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestSetVersionRewritesOnlyTheVersionOfTheInstancesTaken(t *testing.T) {
	const from, to = "108912-6e2f8b7-release-2019-8", "109004-a41c9d0-release-2019-9"
	data, err := os.ReadFile(instancesFile)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		pick versionPick
		// want are the lines of the file that change, by line number, and what they become.
		want map[int]string
	}{
		"every instance, each in its own quoting style, comments kept": {
			pick: versionPick{percent: 100},
			want: map[int]string{
				13: "  version: " + to + "   # bumped by CI",
				24: `  version: "` + to + `" # double-quoted`,
				41: "  version: '" + to + "'",
			},
		},
		"only the canaries": {
			pick: versionPick{percent: 100, selector: mustSelector(t, "tier=canary")},
			want: map[int]string{13: "  version: " + to + "   # bumped by CI"},
		},
		"a wave of 0 percent takes no one": {
			pick: versionPick{percent: 0},
			want: map[int]string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, changes, _, err := setVersion(instancesFile, data, to, tc.pick)
			if err != nil {
				t.Fatal(err)
			}
			before, after := strings.Split(string(data), "\n"), strings.Split(string(out), "\n")
			if len(before) != len(after) {
				t.Fatalf("the file went from %d to %d lines", len(before), len(after))
			}
			got := map[int]string{}
			for i := range before {
				if before[i] != after[i] {
					got[i+1] = after[i]
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("changed lines (-want +got):\n%s", diff)
			}
			if len(changes) != len(tc.want) {
				t.Errorf("%d changes reported for %d lines changed: %+v", len(changes), len(tc.want), changes)
			}
			for _, c := range changes {
				if c.From != from || c.To != to {
					t.Errorf("change %+v: want %s -> %s", c, from, to)
				}
			}
		})
	}
}

func TestSetVersionQuotesAPlainVersionYAMLWouldReadAsANumber(t *testing.T) {
	in := "apiVersion: summon.forklift.dev/v1beta1\nkind: SummonPlatform\nmetadata:\n  name: a\nspec:\n  version: v1 # plain\n"
	out, _, _, err := setVersion("a.yaml", []byte(in), "2024.10", versionPick{percent: 100})
	if err != nil {
		t.Fatal(err)
	}
	if want := "  version: \"2024.10\" # plain\n"; !strings.HasSuffix(string(out), want) {
		t.Errorf("got:\n%s\nwant it to end with %q", out, want)
	}
}

func TestSetVersionRefusesWhatItCantEditInPlace(t *testing.T) {
	in := "apiVersion: summon.forklift.dev/v1beta1\nkind: SummonPlatform\nmetadata:\n  name: a\nspec:\n  version: >-\n    v1\n"
	if _, _, _, err := setVersion("a.yaml", []byte(in), "v2", versionPick{percent: 100}); err == nil || !strings.Contains(err.Error(), "a.yaml:6") {
		t.Errorf("a folded version: err = %v, want one naming a.yaml:6", err)
	}
}

// Waves of set-version only grow: an instance moved at 5% is in 25% and 100% too.
func TestVersionWavesOnlyGrow(t *testing.T) {
	for i := range 500 {
		name := "car" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
		prev := false
		for _, pct := range []int{0, 5, 25, 50, 100} {
			in := versionPick{percent: pct}.takes("summon-prod", name, nil)
			if prev && !in {
				t.Fatalf("%s is in a smaller wave but not in %d%%", name, pct)
			}
			prev = in
		}
	}
}
