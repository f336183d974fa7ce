package dashboard

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// fleet is a small fleet in every state the fleet page tells apart.
func fleet() []Platform {
	return []Platform{
		testPlatform("summon-qa", "car1-qa", ready("108912-release-2019-9", 3*time.Hour)...),
		testPlatform("summon-qa", "car2-qa", ready("108912-release-2019-10", 2*time.Hour)...),
		testPlatform("summon-prod", "acme", with(failedMigration("108913-release-2019-10", "108912-release-2019-9", 10*time.Minute), []platformOption{hostname("acme.example.com")})...),
		testPlatform("summon-prod", "beta", migrating("108913-release-2019-10", "108912-release-2019-9", time.Minute)...),
		testPlatform("summon-prod", "zeta", phase(v1beta1.PhaseError, "invalid spec: spec.replicas.celeryBeat: must be 0 or 1")),
		testPlatform("summon-prod", "fresh"),
	}
}

func names(rows []fleetRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Namespace+"/"+r.Name)
	}
	return out
}

func TestFleetPageOrderAndFilters(t *testing.T) {
	tests := map[string]struct {
		query string
		want  []string
	}{
		"by default instances in error or with a failed migration come first, then namespace and name": {
			query: "",
			want:  []string{"summon-prod/acme", "summon-prod/zeta", "summon-prod/beta", "summon-prod/fresh", "summon-qa/car1-qa", "summon-qa/car2-qa"},
		},
		"the phase filter keeps one phase": {
			query: "phase=Error",
			want:  []string{"summon-prod/acme", "summon-prod/zeta"},
		},
		"the phase filter for no status keeps the instances the hook has not synced": {
			query: "phase=none",
			want:  []string{"summon-prod/fresh"},
		},
		"the namespace filter keeps one namespace": {
			query: "namespace=summon-qa",
			want:  []string{"summon-qa/car1-qa", "summon-qa/car2-qa"},
		},
		"the version filter matches the wanted, migrated or deployed version": {
			query: "version=108912-release-2019-9",
			want:  []string{"summon-prod/acme", "summon-prod/beta", "summon-qa/car1-qa"},
		},
		"search matches every word, case-insensitively, in names, hosts and messages": {
			query: "q=ACME.example+backofflimit",
			want:  []string{"summon-prod/acme"},
		},
		"search that matches nothing shows nothing": {
			query: "q=no-such-thing",
			want:  []string{},
		},
		"a wanted version column sorts versions as numbers, not as text": {
			query: "sort=wanted&namespace=summon-qa",
			want:  []string{"summon-qa/car1-qa", "summon-qa/car2-qa"},
		},
		"a descending sort reverses the column and keeps namespace and name as the tie break": {
			query: "sort=wanted&order=desc",
			want:  []string{"summon-prod/fresh", "summon-prod/zeta", "summon-prod/acme", "summon-prod/beta", "summon-qa/car2-qa", "summon-qa/car1-qa"},
		},
		"sorting by the last change puts the oldest first": {
			query: "sort=changed&namespace=summon-qa",
			want:  []string{"summon-qa/car1-qa", "summon-qa/car2-qa"},
		},
		"sorting by phase follows the state machine": {
			query: "sort=phase",
			want:  []string{"summon-prod/beta", "summon-qa/car1-qa", "summon-qa/car2-qa", "summon-prod/acme", "summon-prod/zeta", "summon-prod/fresh"},
		},
		"an unknown sort column is the default order": {
			query: "sort=secret",
			want:  []string{"summon-prod/acme", "summon-prod/zeta", "summon-prod/beta", "summon-prod/fresh", "summon-qa/car1-qa", "summon-qa/car2-qa"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			m := fleetPage(fleet(), parseFleetQuery(v), now)
			if diff := cmp.Diff(tc.want, names(m.Rows)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFleetPageCountsTheWholeFleetWhateverTheFilter(t *testing.T) {
	m := fleetPage(fleet(), fleetQuery{Phase: "Ready"}, now)
	got := map[string]int{}
	var active []string
	for _, c := range m.Counts {
		got[c.Phase] = c.Count
		if c.Active {
			active = append(active, c.Phase)
		}
	}
	want := map[string]int{"Initializing": 0, "Migrating": 1, "Deploying": 0, "Ready": 2, "Error": 2, "No status": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Ready"}, active); diff != "" {
		t.Errorf("active counts (-want +got):\n%s", diff)
	}
	if m.Total != 6 {
		t.Errorf("total = %d, want 6", m.Total)
	}
	for _, c := range m.Counts {
		// A count links to its phase, and the active one back to the whole fleet.
		want := "/?phase=" + c.Phase
		switch c.Phase {
		case "Ready":
			want = "/"
		case "No status":
			want = "/?phase=none"
		}
		if c.Href != want {
			t.Errorf("count %s links to %q, want %q", c.Phase, c.Href, want)
		}
	}
}

func TestFleetRowsSayWhatIsWrong(t *testing.T) {
	m := fleetPage(fleet(), fleetQuery{Search: "acme"}, now)
	if len(m.Rows) != 1 {
		t.Fatalf("rows = %v", names(m.Rows))
	}
	got := m.Rows[0]
	got.search = ""
	want := fleetRow{
		Namespace: "summon-prod", Name: "acme", Href: "/instances/summon-prod/acme",
		Wanted: "108913-release-2019-10", Migrated: "108912-release-2019-9", Deployed: "108912-release-2019-9",
		Phase: "Error", PhaseClass: "phase-error", MigrationFailed: true, Trouble: true,
		Ready: "False", ReadyReason: "MigrationFailed",
		ReadyMessage: "the migration of 108913-release-2019-10 failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
		Changed:      now.Add(-10 * time.Minute), ChangedAge: "10m",
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(fleetRow{})); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
}

func TestFleetColumnLinksToggleTheOrderAndKeepTheFilters(t *testing.T) {
	m := fleetPage(fleet(), fleetQuery{Phase: "Error", Sort: "name"}, now)
	got := map[string]column{}
	for _, c := range m.Columns {
		got[c.Key] = c
	}
	if c := got["name"]; c.Order != "asc" || c.Href != "/?order=desc&phase=Error&sort=name" {
		t.Errorf("the sorted column: %+v", c)
	}
	if c := got["phase"]; c.Order != "" || c.Href != "/?phase=Error&sort=phase" {
		t.Errorf("another column: %+v", c)
	}
	if m.ClearHref != "/?sort=name" {
		t.Errorf("clear filters links to %q, want the same order without filters", m.ClearHref)
	}
}

func TestFleetFilterOptionsComeFromTheFleet(t *testing.T) {
	m := fleetPage(fleet(), fleetQuery{Version: "retired-1"}, now)
	var ns, vs []string
	for _, o := range m.Namespaces {
		ns = append(ns, o.Value)
	}
	for _, o := range m.Versions {
		if o.Selected {
			vs = append(vs, "*"+o.Value)
		} else {
			vs = append(vs, o.Value)
		}
	}
	if diff := cmp.Diff([]string{"", "summon-prod", "summon-qa"}, ns); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	// Highest first; a bookmarked version the fleet no longer runs stays selected.
	want := []string{"", "v1", "*retired-1", "108913-release-2019-10", "108912-release-2019-10", "108912-release-2019-9"}
	if diff := cmp.Diff(want, vs); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := map[string]struct {
		a, b string
		want int
	}{
		"digits compare as numbers":        {"release-2019-9", "release-2019-10", -1},
		"equal strings are equal":          {"108912-6e2f8b7", "108912-6e2f8b7", 0},
		"text compares as text":            {"alpha", "beta", -1},
		"a prefix comes first":             {"v1", "v1.2", -1},
		"leading zeros break only the tie": {"v007", "v7", -1},
		"longer numbers are larger":        {"9999", "10000", -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := naturalCompare(tc.a, tc.b); got != tc.want {
				t.Errorf("naturalCompare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := naturalCompare(tc.b, tc.a); got != -tc.want {
				t.Errorf("naturalCompare(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}
