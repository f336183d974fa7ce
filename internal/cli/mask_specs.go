package cli

import (
	"encoding/base64"
	"maps"
	"reflect"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/children"
)

// The masks of a Secret value, as kubectl diff writes them: only whether a value changes shows.
const (
	masked       = "***"
	maskedBefore = "*** (before)"
	maskedAfter  = "*** (after)"
)

// maskSecret is a Secret ready to print: every value masked. The app config file shows as its
// setting names, each value masked, so that which settings exist can be read and no value can.
// Any other object is returned as it is.
func maskSecret(obj map[string]any) map[string]any {
	_, after := maskSecretPair(nil, obj)
	return after
}

// maskSecretPair masks two versions of one Secret (either may be nil) for a diff: a value that
// differs between them is "*** (before)" in one and "*** (after)" in the other, as kubectl diff
// masks them; the app config file is compared setting by setting.
func maskSecretPair(before, after map[string]any) (map[string]any, map[string]any) {
	if !isSecret(before) && !isSecret(after) {
		return before, after
	}
	b, a := copyMap(before), copyMap(after)
	for _, field := range []string{"data", "stringData"} {
		bd, _ := b[field].(map[string]any)
		ad, _ := a[field].(map[string]any)
		keys := map[string]bool{}
		for k := range bd {
			keys[k] = true
		}
		for k := range ad {
			keys[k] = true
		}
		for k := range keys {
			bv, inB := bd[k]
			av, inA := ad[k]
			if k == children.ConfigFileName {
				bs, bok := settingsOf(bv, field, inB)
				as, aok := settingsOf(av, field, inA)
				if bok && aok {
					mb, ma := maskMaps(bs, as)
					setIf(bd, k, mb, inB)
					setIf(ad, k, ma, inA)
					continue
				}
			}
			mb, ma := maskValues(bv, av, inB, inA)
			setIf(bd, k, mb, inB)
			setIf(ad, k, ma, inA)
		}
	}
	return b, a
}

func isSecret(obj map[string]any) bool {
	return obj != nil && obj["kind"] == "Secret" && obj["apiVersion"] == "v1"
}

// settingsOf reads an app config file value as its settings; absent counts as readable (and
// empty), so that an added file still shows its setting names.
func settingsOf(v any, field string, present bool) (map[string]any, bool) {
	if !present {
		return nil, true
	}
	s, ok := v.(string)
	if !ok {
		return nil, false
	}
	raw := []byte(s)
	if field == "data" {
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, false
		}
		raw = dec
	}
	var settings map[string]any
	if err := yaml.Unmarshal(raw, &settings); err != nil {
		return nil, false
	}
	if settings == nil {
		settings = map[string]any{}
	}
	return settings, true
}

// maskMaps masks two sets of settings key by key.
func maskMaps(before, after map[string]any) (map[string]any, map[string]any) {
	mb, ma := map[string]any{}, map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		_, inA := after[k]
		mb[k], ma[k] = maskValues(before[k], after[k], true, inA)
		if !inA {
			delete(ma, k)
		}
	}
	for k := range after {
		if _, inB := before[k]; !inB {
			ma[k] = masked
		}
	}
	return mb, ma
}

func maskValues(b, a any, inB, inA bool) (any, any) {
	if inB && inA && !reflect.DeepEqual(b, a) {
		return maskedBefore, maskedAfter
	}
	return masked, masked
}

func setIf(m map[string]any, k string, v any, ok bool) {
	if ok && m != nil {
		m[k] = v
	}
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopyJSON(m)
}
