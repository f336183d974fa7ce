package external

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Two parents whose names start alike over more than the cut keeps: before, the cut was trimmed
// of trailing separators and only 32 bits of hash told them apart. The whole "namespace/name"
// goes into 80 bits now, so they differ even where the readable part is the same.
func TestLongNamesThatStartAlikeDiffer(t *testing.T) {
	long := strings.Repeat("a", 50)
	pairs := map[string][2][2]string{
		"a cut that ends in a separator":           {{long + "-b", "x"}, {long + "-", "bx"}},
		"the same namespace, names beyond the cut": {{long, strings.Repeat("b", 20) + "1"}, {long, strings.Repeat("b", 20) + "2"}},
		"a dash moved between namespace and name":  {{"a-b", "c"}, {"a", "b-c"}},
	}
	for sentence, p := range pairs {
		t.Run(sentence, func(t *testing.T) {
			a, b := NamesFor("acme-", p[0][0], p[0][1]), NamesFor("acme-", p[1][0], p[1][1])
			for _, f := range []struct{ kind, a, b string }{
				{"bucket", a.Bucket, b.Bucket}, {"IAM user", a.IAMUser, b.IAMUser},
				{"role", a.DatabaseRole, b.DatabaseRole}, {"database", a.Database, b.Database},
				{"vhost", a.RabbitVhost, b.RabbitVhost},
			} {
				if f.a == f.b {
					t.Errorf("both parents get the %s %q", f.kind, f.a)
				}
			}
		})
	}
}

var (
	bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	iamName    = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)
	pgName     = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
)

// Every name fits its system, for the longest namespace and name Kubernetes allows.
func TestNamesFitTheirSystems(t *testing.T) {
	for _, in := range [][2]string{{"a", "b"}, {strings.Repeat("n", 63), strings.Repeat("m", 40)}, {"shop-eu", "car-1"}} {
		n := NamesFor("acme-prod-", in[0], in[1])
		if !bucketName.MatchString(n.Bucket) || !iamName.MatchString(n.IAMUser) || !pgName.MatchString(n.Database) || n.Database != n.DatabaseRole {
			t.Errorf("%v: names outside their systems' rules: %+v", in, n)
		}
	}
}

// Instances created before the 80-bit names keep theirs: the names their status records are
// read back when they are the legacy derivation of that very namespace and name, and only those
// may be claimed unmarked. Anything else a status says is ignored.
func TestRecordedNamesKeepAnInstancesData(t *testing.T) {
	legacy := LegacyNamesFor("acme-", "shop", "car1")
	fresh := NamesFor("acme-", "shop", "car1")
	other := LegacyNamesFor("acme-", "victim", "car1")
	tests := map[string]struct {
		rec           Recorded
		want          Names
		wantInherited []string
	}{
		"a new instance gets the new names and inherits nothing": {want: fresh},
		"an instance from before keeps its legacy names and may mark them": {
			rec:           Recorded{Bucket: legacy.Bucket, IAMUser: legacy.IAMUser, RabbitVhost: legacy.RabbitVhost, Database: legacy.Database},
			want:          legacy,
			wantInherited: []string{legacy.Bucket, legacy.IAMUser, legacy.RabbitVhost, legacy.Database},
		},
		"an instance recorded with the new names keeps them": {
			rec:  Recorded{Bucket: fresh.Bucket, IAMUser: fresh.IAMUser, Database: fresh.Database},
			want: fresh,
		},
		"a status naming another instance's resources is ignored": {
			rec:  Recorded{Bucket: other.Bucket, IAMUser: other.IAMUser, RabbitVhost: other.RabbitVhost, Database: other.Database},
			want: fresh,
		},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			got, inherited := ResolveNames("acme-", "shop", "car1", tt.rec)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantInherited, inherited); diff != "" {
				t.Errorf("inherited (-want +got):\n%s", diff)
			}
		})
	}
	if legacy == fresh {
		t.Fatal("the legacy and the new names are the same: the test proves nothing")
	}
}

// Claim's table: who may change what it found.
func TestClaim(t *testing.T) {
	in := Instance{UID: "new", AdoptFromUID: "old", Inherited: []string{"legacy"}}
	tests := map[string]struct {
		name                string
		mark                Mark
		found, unmarkedOurs bool
		want                Claim
		wantNotOurs         Ownership
	}{
		"its own mark is ours":                             {mark: Mark{UID: "new"}, found: true, want: Ours},
		"a released mark of the adopted UID is taken over": {mark: Mark{UID: "old", Retained: true}, found: true, want: Remark},
		"a live mark of the adopted UID is refused":        {mark: Mark{UID: "old"}, found: true, wantNotOurs: OwnedByAnotherInstance},
		"another instance's mark is refused":               {mark: Mark{UID: "victim"}, found: true, wantNotOurs: OwnedByAnotherInstance},
		"another instance's released mark is refused":      {mark: Mark{UID: "victim", Retained: true}, found: true, wantNotOurs: OwnedByAnotherInstance},
		"no mark is refused":                               {name: "x", wantNotOurs: NotCreatedBySummon},
		"no mark on an inherited name is marked":           {name: "legacy", want: Remark},
		"no mark where the provider knows it ours":         {name: "x", unmarkedOurs: true, want: Remark},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			got, err := in.Claim("S", "thing", tt.name, tt.mark, tt.found, tt.unmarkedOurs)
			var notOurs Ownership
			if e, ok := err.(*Error); ok {
				notOurs = e.NotOurs
				if e.Retryable {
					t.Error("a refusal must not be retryable")
				}
				if tt.mark.UID == "victim" && strings.Contains(e.Error(), "victim") && !tt.mark.Retained {
					t.Errorf("a live owner's UID is shown: %v", e)
				}
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if notOurs != tt.wantNotOurs || (err == nil && got != tt.want) {
				t.Errorf("got %v, %q; want %v, %q", got, notOurs, tt.want, tt.wantNotOurs)
			}
		})
	}
}

// The test hook really shortens the hash, so that a collision test can find a pair.
func TestShortHashFindsACollision(t *testing.T) {
	defer SetHashCharsForTest(2)()
	seen := map[string]string{}
	for i := range 5000 {
		ns := strings.Repeat("c", 60) + fmt.Sprintf("%03d", i)
		n := NamesFor("", ns, "app").Database
		if prev, ok := seen[n]; ok {
			t.Logf("%s and %s share %s", prev, ns, n)
			return
		}
		seen[n] = ns
	}
	t.Fatal("no collision with a 10-bit hash in 5000 names")
}
