// Package platform is Summon's pure core: given a Metacontroller sync request for a
// SummonPlatform, it returns every desired child and the full status. It reads no clock, makes no
// call and draws no random number; all of that comes in through Env. The same request and Env
// always give the same response, byte for byte.
package platform

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// Env is everything the core needs from outside the request.
type Env struct {
	// Now stamps conditions whose status changes; nothing else reads it.
	Now time.Time
	// Defaults fill what the spec leaves out and the API can't default (the image).
	Defaults v1beta1.HookDefaults
	// Credentials derives SECRET_KEY and the database and RabbitMQ passwords: the hook's
	// credentials.Deriver, or a client's stand-in for it. Nil means no master key.
	Credentials credentials.Source
	// Outside is what the hook knows of the systems outside the cluster.
	Outside Outside
	// Data is what the hook knows of the data services it may run inside the cluster.
	Data DataServices
	// Rollout is the builder wave the operator opened (builds.go); the zero Wave opens none, so
	// that a new release changes no running pod until its waves are opened.
	Rollout Wave
}

// secrets is the Env's credential source; a nil one is a hook without a master key (the zero
// Deriver), so that the zero Env is safe to use.
func (e Env) secrets() credentials.Source {
	if e.Credentials == nil {
		return credentials.Deriver{}
	}
	return e.Credentials
}

// Sync computes the desired children and the status of one SummonPlatform.
//
// On any doubt (an unreadable request, an invalid spec, a missing input, a failed migration) the
// response keeps every observed child: Metacontroller deletes whatever the response leaves out, so
// a hook that answers "nothing" on error takes the instance down.
func Sync(req *metacontroller.SyncRequest, env Env) *metacontroller.SyncResponse {
	par, err := decodeParent(req.Parent)
	if err != nil {
		return frozen(req, errorStatus(par, env, reasonRequestUnreadable, err.Error()))
	}
	if missing := missingGroups(req.Children, env.Data); len(missing) > 0 {
		where := "manifests/compositecontroller.yaml"
		if env.Data.CNPG != nil {
			where += " and, since the hook runs with --cnpg-namespace, the manifests/cnpg component"
		}
		return frozen(req, errorStatus(par, env, reasonChildrenMissing, fmt.Sprintf(
			"the request has no observed %s; check that the CompositeController declares every child resource in %s",
			strings.Join(missing, ", "), where)))
	}
	if msg := invalid(par); msg != "" {
		return frozen(req, errorStatus(par, env, reasonSpecInvalid, msg))
	}
	if par.spec.Paused {
		return frozen(req, pausedStatus(par, env))
	}
	return converge(req, par, env)
}

func missingGroups(groups metacontroller.RelativeObjects, data DataServices) []string {
	var missing []string
	for _, g := range DeclaredGroups(data) {
		if _, ok := groups[g]; !ok {
			missing = append(missing, g)
		}
	}
	return missing
}

// invalid says what is wrong with a spec, or "" when nothing is.
func invalid(par parent) string {
	if par.specErr != nil {
		return "invalid spec: " + par.specErr.Error()
	}
	errs := v1beta1.Validate(&v1beta1.SummonPlatform{ObjectMeta: par.meta, Spec: par.spec})
	if len(errs) == 0 {
		return ""
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return "invalid spec: " + strings.Join(msgs, "; ")
}

// frozen answers with every observed child as it is. The beat cap still applies: "as observed"
// never means two beats.
func frozen(req *metacontroller.SyncRequest, st v1beta1.Status) *metacontroller.SyncResponse {
	var out []metacontroller.Object
	for _, g := range slices.Sorted(maps.Keys(req.Children)) {
		byName := req.Children[g]
		for _, k := range slices.Sorted(maps.Keys(byName)) {
			if obj := byName[k]; obj != nil {
				out = append(out, children.AsObserved(obj))
			}
		}
	}
	return &metacontroller.SyncResponse{Status: st, Children: capBeats(out)}
}
