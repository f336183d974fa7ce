package children

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamesFitKubernetesLimits(t *testing.T) {
	tests := map[string]string{
		"a short name is used as it is":          "car1-qa",
		"a name at the cut-off is used as it is": strings.Repeat("a", maxChildName-longestSuffix),
		"one character longer is cut and hashed": strings.Repeat("a", maxChildName-longestSuffix+1),
		"the longest legal parent name":          "a" + strings.Repeat("b", 61) + "c",
		"a long name with a dash at the cut":     strings.Repeat("a", 25) + "-" + strings.Repeat("b", 37),
	}
	for sentence, parent := range tests {
		t.Run(sentence, func(t *testing.T) {
			n := NamesFor(parent)
			all := []string{n.Config(), n.TLS(), n.Ingress(), n.MigrationJob("108912-6e2f8b7-release-2019-8", 12), n.AWSCredentials(), n.PostgresOwner()}
			for _, c := range slices.Concat(AppComponents, []Component{Migrations, Redis, Postgres}) {
				all = append(all, n.Of(c))
			}
			// CloudNativePG refuses a Cluster whose name is longer than 50 characters; its
			// Services add -rw, -ro and -r.
			if cluster := n.Of(Postgres); len(cluster) > 50 {
				t.Errorf("the CNPG Cluster name %q is %d characters; CloudNativePG takes at most 50", cluster, len(cluster))
			}
			for _, name := range all {
				if len(name) > maxChildName {
					t.Errorf("%q is %d characters; a StatefulSet's pods can't carry more than %d", name, len(name), maxChildName)
				}
				// Service names are DNS-1035 labels, the strictest rule any child name meets.
				if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
					t.Errorf("%q is not a DNS-1035 label: %v", name, errs)
				}
			}
			if len(parent) <= maxChildName-longestSuffix && n.Of(Web) != parent+"-web" {
				t.Errorf("a short parent name should be kept: got %q", n.Of(Web))
			}
		})
	}
}

func TestLongNamesThatShareAPrefixDoNotShareChildren(t *testing.T) {
	prefix := strings.Repeat("x", 50)
	a, b := NamesFor(prefix+"-alpha"), NamesFor(prefix+"-bravo")
	if a.Of(Web) == b.Of(Web) {
		t.Fatalf("two parents share the child name %q", a.Of(Web))
	}
}

func TestMigrationJobNamesDifferPerVersionAndAttempt(t *testing.T) {
	n := NamesFor("car1-qa")
	seen := map[string]string{}
	for _, c := range []struct {
		version string
		attempt int32
	}{{"v1", 0}, {"v1", 1}, {"v2", 0}, {"v2", 1}} {
		name := n.MigrationJob(c.version, c.attempt)
		key := c.version + "/" + string(rune('0'+c.attempt))
		if other, ok := seen[name]; ok {
			t.Errorf("%s and %s share the Job name %q", other, key, name)
		}
		seen[name] = key
	}
	if again := NamesFor("car1-qa").MigrationJob("v1", 0); again != n.MigrationJob("v1", 0) {
		t.Errorf("the Job name of one version and attempt must be stable: %q, then %q", n.MigrationJob("v1", 0), again)
	}
}
