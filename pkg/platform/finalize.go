package platform

import (
	"fmt"
	"strings"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// FinalizePlan is what the finalize hook must tear down for one parent.
type FinalizePlan struct {
	Instance external.Instance
	Policy   v1beta1.DeletionPolicy
	// WantsDatabase says the instance had a database on the shared server.
	WantsDatabase bool
}

// PlanFinalize reads a finalize request. A spec the hook can't read or trust counts as
// deletionPolicy Retain: on any doubt, data is kept.
func PlanFinalize(req *metacontroller.SyncRequest, env Env) FinalizePlan {
	par, err := decodeParent(req.Parent)
	plan := FinalizePlan{Policy: v1beta1.DeletionPolicyRetain}
	if err != nil {
		return plan
	}
	plan.Instance = instanceOf(par, env, req.Children)
	if invalid(par) == "" {
		plan.WantsDatabase = par.spec.Database.Shared != nil
		if par.spec.DeletionPolicy == v1beta1.DeletionPolicyDelete {
			plan.Policy = v1beta1.DeletionPolicyDelete
		}
	} else {
		// The database can't be told apart from a missing one without a readable spec; asking
		// the provider to revoke a login that doesn't exist is harmless.
		plan.WantsDatabase = true
	}
	return plan
}

// Teardown is what the finalize hook's calls came to.
type Teardown struct {
	// Remaining says, in words, what still exists that must go (a bucket that still holds
	// objects, a user a call failed to delete).
	Remaining []string
	Failures  []Failure
	// LeftAlone says, in words, what was found under the instance's names but is not its own
	// (another instance's, or not made by Summon): it was neither changed nor waited for.
	LeftAlone []string
}

// finalizePoll is how soon Metacontroller asks again while something is left.
const finalizePoll = 10

// Finalize answers a finalize request: finalized only once nothing is left, every child kept
// meanwhile (Kubernetes' garbage collector removes them with the parent), and a status that says
// what is left.
func Finalize(req *metacontroller.SyncRequest, env Env, t Teardown) *metacontroller.SyncResponse {
	par, err := decodeParent(req.Parent)
	if err != nil {
		return frozen(req, errorStatus(par, env, reasonRequestUnreadable, err.Error()))
	}
	st, c := carried(par, env)
	done := len(t.Remaining) == 0 && len(t.Failures) == 0
	switch {
	case done && len(t.LeftAlone) > 0:
		st.Message = "deleted: access outside the cluster is revoked and the data was handled per deletionPolicy; left alone, as not this instance's: " +
			strings.Join(t.LeftAlone, "; ")
	case done:
		st.Message = "deleted: access outside the cluster is revoked and the data was handled per deletionPolicy"
	case len(t.Failures) > 0:
		st.Message = "deleting: " + strings.TrimPrefix(failureMessage(t.Failures), "external resources not ready: ")
	default:
		st.Message = fmt.Sprintf("deleting: waiting for %s", strings.Join(t.Remaining, "; "))
	}
	c.set(v1beta1.ConditionReady, false, reasonDeleting, st.Message)
	st.Conditions = c.list
	resp := frozen(req, st)
	resp.Finalized = done
	if !done {
		resp.ResyncAfterSeconds = finalizePoll
	}
	return resp
}
