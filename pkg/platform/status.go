package platform

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// Condition reasons, in one place so that status readers can rely on them.
const (
	reasonRequestUnreadable = "RequestUnreadable"
	reasonChildrenMissing   = "ChildrenMissing"
	reasonSpecInvalid       = "SpecInvalid"
	reasonInputMissing      = "InputMissing"
	reasonInputNotAllowed   = "InputNotAllowed"
	reasonUnknownChildren   = "UnknownChildren"
	reasonPaused            = "Paused"
	reasonValid             = "Valid"
	reasonPreparing         = "Preparing"
	reasonMigrating         = "Migrating"
	reasonMigrated          = "Succeeded"
	reasonMigrationFailed   = "MigrationFailed"
	reasonRollingOut        = "RollingOut"
	reasonAwaitingMigration = "AwaitingMigration"
	reasonRolledOut         = "RolledOut"
	reasonReady             = "Ready"
	reasonExternalError     = "ExternalError"
	reasonExternalReady     = "Ensured"
	reasonExternalPending   = "Pending"
	reasonDeleting          = "Deleting"
	reasonProviderMissing   = "ProviderMissing"
	// A resource outside the cluster under this instance's name is not this instance's: the
	// providers changed nothing of it (see docs/security.md).
	reasonOwnedByAnotherInstance = "OwnedByAnotherInstance"
	reasonNotCreatedBySummon     = "NotCreatedBySummon"
	reasonOwnedByAnotherAccount  = "OwnedByAnotherAccount"
)

// MigrationFailed says whether a status reports that the spec's version failed to migrate, so that
// readers of the status (summonctl, the dashboard) don't match the reason themselves.
func MigrationFailed(st v1beta1.Status) bool {
	c := meta.FindStatusCondition(st.Conditions, v1beta1.ConditionMigrated)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonMigrationFailed
}

// ReasonMigrationFailed is the reason of the Migrated (and Ready) condition while the migration of
// spec.version has failed: summonctl retry-migration acts only then.
const ReasonMigrationFailed = reasonMigrationFailed

// conditions sets conditions on a status the way Kubernetes does: lastTransitionTime moves only
// when a condition's status changes. A timestamp that moved on every sync would make every status
// write trigger the next sync.
type conditions struct {
	list       []metav1.Condition
	now        time.Time
	generation int64
}

func (c *conditions) set(typ string, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&c.list, metav1.Condition{
		Type:               typ,
		Status:             status,
		ObservedGeneration: c.generation,
		LastTransitionTime: metav1.NewTime(c.now.UTC().Truncate(time.Second)),
		Reason:             reason,
		Message:            message,
	})
}

func (c *conditions) remove(typ string) { meta.RemoveStatusCondition(&c.list, typ) }

// carried is the status as last written, minus what Metacontroller writes itself: the starting
// point of every new status, so that nothing the hook remembers is lost.
func carried(par parent, env Env) (v1beta1.Status, *conditions) {
	st := par.status
	st.ObservedGeneration = 0
	c := &conditions{list: append([]metav1.Condition(nil), st.Conditions...), now: env.Now, generation: par.meta.Generation}
	return st, c
}

// errorStatus is the status of a request the hook refuses to act on.
func errorStatus(par parent, env Env, reason, message string) v1beta1.Status {
	st, c := carried(par, env)
	st.Phase, st.Message = v1beta1.PhaseError, message
	if reason == reasonSpecInvalid {
		c.set(v1beta1.ConditionValid, false, reason, message)
	}
	c.set(v1beta1.ConditionReady, false, reason, message)
	st.Conditions = c.list
	return st
}

// pausedStatus keeps the phase and says that the instance is frozen.
func pausedStatus(par parent, env Env) v1beta1.Status {
	st, c := carried(par, env)
	if st.Phase == "" {
		st.Phase = v1beta1.PhaseInitializing
	}
	st.Message = "paused: every child is kept as observed until spec.paused is false"
	c.set(v1beta1.ConditionPaused, true, reasonPaused, st.Message)
	st.Conditions = c.list
	return st
}
