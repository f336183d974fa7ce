package platform

import (
	"encoding/json"
	"errors"
	"slices"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// Customize answers the customize hook for one parent: the related objects every sync request
// must carry. Summon reads its input Secrets from the request's related objects, so it asks for
// exactly those Secrets (spec.secrets and the urlSecrets of spec.database and spec.redis), by name,
// in the parent's namespace, as one rule; with none it asks for nothing.
//
// Metacontroller sends the named Secrets whatever they say; the sync core then reads only those
// that consent to being this instance's inputs (InputRefusal). A rule can't narrow the names with
// a labelSelector: Metacontroller (v4.17) refuses a rule with both, failing the parent's every
// sync, and a labelSelector alone would send every input Secret of the namespace to every instance
// (and wake them all on any change of one).
//
// A spec that can't be read asks for nothing rather than failing: the sync hook then reports the
// spec's error in the status, where the user looks. Only a parent without a name or a namespace
// is refused. With hooks version v2 a rule by name without a namespace matches Secrets of that
// name in every namespace, which would hand another tenant's Secret to this instance.
func Customize(parentJSON json.RawMessage) (metacontroller.CustomizeResponse, error) {
	resp := metacontroller.CustomizeResponse{RelatedResources: []metacontroller.RelatedResourceRule{}}
	par, err := decodeParent(parentJSON)
	if err != nil {
		return resp, err
	}
	if par.meta.Namespace == "" {
		return resp, errors.New("the parent has no metadata.namespace; a SummonPlatform is namespaced")
	}
	if par.specErr != nil {
		return resp, nil
	}
	var names []string
	for _, n := range par.spec.Secrets {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, ref := range []*v1beta1.SecretKeyRef{par.spec.Database.URLSecret, redisURLSecret(par.spec.Redis)} {
		if ref != nil && !slices.Contains(names, ref.Name) {
			names = append(names, ref.Name)
		}
	}
	if len(names) == 0 {
		// A rule with a namespace and no names selects every Secret of the namespace.
		return resp, nil
	}
	resp.RelatedResources = append(resp.RelatedResources, metacontroller.RelatedResourceRule{
		APIVersion: "v1",
		Resource:   "secrets",
		Namespace:  par.meta.Namespace,
		Names:      names,
	})
	return resp, nil
}

func redisURLSecret(r *v1beta1.Redis) *v1beta1.SecretKeyRef {
	if r == nil {
		return nil
	}
	return r.URLSecret
}
