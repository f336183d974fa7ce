package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/platform"
)

func instance(name string, b *v1beta1.BuildersStatus, ready bool, l map[string]string) waveInstance {
	return waveInstance{Namespace: "prod", Name: name, UID: "uid-" + name, Labels: l, Builders: b, Ready: ready}
}

func TestWaveProgress(t *testing.T) {
	const a, b = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
	wave := platform.Wave{Revision: b, Selector: "tier=canary"}
	canary := map[string]string{"tier": "canary"}
	fleet := []waveInstance{
		instance("rolled", &v1beta1.BuildersStatus{Revision: b, Available: b}, true, canary),
		instance("rolling", &v1beta1.BuildersStatus{Revision: b, Available: b}, false, canary),
		instance("still-held", &v1beta1.BuildersStatus{Revision: a, Available: b, Held: true}, true, canary),
		instance("old-hook", &v1beta1.BuildersStatus{Revision: a, Available: a}, true, canary),
		instance("not-in-wave", &v1beta1.BuildersStatus{Revision: a, Available: b, Held: true}, true, nil),
	}
	done, pending := waveProgress(wave, fleet)
	names := func(is []waveInstance) []string {
		var out []string
		for _, i := range is {
			out = append(out, i.Name+": "+pendingReason(wave, i))
		}
		return out
	}
	if diff := cmp.Diff([]string{"rolled: not Ready: -"}, names(done)); diff != "" {
		t.Errorf("done (-want +got):\n%s", diff)
	}
	want := []string{
		"rolling: not Ready: -",
		"still-held: still held on revision " + a,
		"old-hook: the hook offers revision " + a + ", not the wave's " + b,
	}
	if diff := cmp.Diff(want, names(pending)); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
}

func TestWavesTableCountsRevisionsAndHeldInstances(t *testing.T) {
	const a, b = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
	fleet := []waveInstance{
		instance("car2", &v1beta1.BuildersStatus{Revision: a, Available: b, Held: true}, true, nil),
		instance("car1", &v1beta1.BuildersStatus{Revision: b, Available: b}, true, map[string]string{"tier": "canary"}),
	}
	got := wavesTable(platform.Wave{Revision: b, Selector: "tier=canary"}, fleet)
	want := `wave open: revision bbbbbbbbbbbb, 0% of the fleet, and instances matching tier=canary
INSTANCE   REVISION      AVAILABLE     HELD  IN WAVE  READY
prod/car1  bbbbbbbbbbbb  bbbbbbbbbbbb  no    yes      True
prod/car2  aaaaaaaaaaaa  bbbbbbbbbbbb  yes   no       True
2 instances: 1 on aaaaaaaaaaaa, 1 on bbbbbbbbbbbb; 1 held
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestAvailableRevision(t *testing.T) {
	one := []waveInstance{instance("a", &v1beta1.BuildersStatus{Available: "r1"}, true, nil), instance("b", nil, true, nil)}
	if r, err := availableRevision(one); r != "r1" || err != nil {
		t.Errorf("one revision: %q, %v", r, err)
	}
	two := append(one, instance("c", &v1beta1.BuildersStatus{Available: "r2"}, true, nil))
	if _, err := availableRevision(two); err == nil || !strings.Contains(err.Error(), "--revision") {
		t.Errorf("two revisions: %v, want an error that asks for --revision", err)
	}
	if _, err := availableRevision(nil); err == nil {
		t.Error("no instance: no error")
	}
}
