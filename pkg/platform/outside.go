package platform

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// Outside is what the core knows of the systems outside the cluster: which are switched on, the
// addresses the app uses to reach them, and what this sync's calls (if any) came to. The calls
// themselves happen in the hook handlers; the core only reads their outcome.
type Outside struct {
	AWS      bool `json:"aws,omitempty"`
	RabbitMQ bool `json:"rabbitmq,omitempty"`
	Postgres bool `json:"postgres,omitempty"`
	// BucketPrefix makes bucket names unique to one organisation.
	BucketPrefix string `json:"bucketPrefix,omitempty"`
	// AWSRegion is written into the app's settings.
	AWSRegion string `json:"awsRegion,omitempty"`
	// RabbitAMQPAddr is the host:port the app's Celery and Channels connect to.
	RabbitAMQPAddr string `json:"rabbitAMQPAddress,omitempty"`
	// Ensured is the outcome of this sync's calls; nil when the hook made none. It is never part
	// of a HookProfile.
	Ensured *Ensured `json:"-"`
}

// Ensured is the outcome of one round of ensure calls.
type Ensured struct {
	// Failures say, per system, what could not be done; never with a secret in them.
	Failures []Failure
	// NewAccessKey is a fresh IAM access key to keep in the credentials Secret, when the one the
	// Secret held was missing or no longer valid.
	NewAccessKey *AccessKey
}

// Failure is one system that could not be brought to the wanted state.
type Failure struct {
	System    string
	Message   string
	Retryable bool
	// NotOurs is set when the failure is a resource that is not this instance's (another
	// instance's, or not made by Summon): nothing of it was changed.
	NotOurs external.Ownership
}

// AccessKey is an IAM access key.
type AccessKey struct {
	ID     string
	Secret string
}

// Any says whether any system is switched on.
func (o Outside) Any() bool { return o.AWS || o.RabbitMQ || o.Postgres }

// ExternalNames derives the names of a new instance's resources outside the cluster.
func (o Outside) ExternalNames(namespace, name string) external.Names {
	return external.NamesFor(o.BucketPrefix, namespace, name)
}

// namesOf gives the names an instance uses: those its status records from before the 80-bit
// names (so an instance keeps its data across the change), else the derived ones; and which of
// them it may claim unmarked (see external.ResolveNames).
func namesOf(par parent, o Outside) (external.Names, []string) {
	var rec external.Recorded
	if e := par.status.External; e != nil {
		rec = external.Recorded{Bucket: e.Bucket, IAMUser: e.IAMUser, RabbitVhost: e.RabbitVhost, Database: e.Database}
	}
	return external.ResolveNames(o.BucketPrefix, par.meta.Namespace, par.meta.Name, rec)
}

// EnsurePlan says whether this sync must call out, and why. Steady-state syncs make no call at
// all: only a spec change (a generation the ExternalResourcesReady condition has not seen), a
// condition that is not True, or a missing credentials Secret sends the hook out.
type EnsurePlan struct {
	Needed bool
	Reason string
	// Instance is the parent as the providers need it.
	Instance external.Instance
	// WantsDatabase says the spec asks for a database on the shared server.
	WantsDatabase bool
}

// PlanEnsure reads a sync request and decides whether the hook calls out before Sync. It is pure,
// so that "no call in steady state" is a property of the request, testable without a server.
func PlanEnsure(req *metacontroller.SyncRequest, env Env) EnsurePlan {
	if !env.Outside.Any() {
		return EnsurePlan{}
	}
	par, err := decodeParent(req.Parent)
	if err != nil || invalid(par) != "" || par.spec.Paused || req.Finalizing {
		return EnsurePlan{}
	}
	plan := EnsurePlan{Instance: instanceOf(par, env, req.Children), WantsDatabase: par.spec.Database.Shared != nil}
	cond := meta.FindStatusCondition(par.status.Conditions, v1beta1.ConditionExternal)
	heldKey := plan.Instance.HeldAccessKeyID
	switch {
	case cond == nil:
		plan.Needed, plan.Reason = true, "no record that the external resources exist"
	case cond.Status != "True":
		plan.Needed, plan.Reason = true, "the external resources were not ready: "+cond.Reason
	case cond.ObservedGeneration != par.meta.Generation:
		plan.Needed, plan.Reason = true, "the spec changed"
	case env.Outside.AWS && heldKey == "":
		plan.Needed, plan.Reason = true, "the AWS credentials Secret is missing"
	}
	return plan
}

// instanceOf is the parent as the providers see it.
func instanceOf(par parent, env Env, observed metacontroller.RelativeObjects) external.Instance {
	uid := string(par.meta.UID)
	names, inherited := namesOf(par, env.Outside)
	in := external.Instance{
		Namespace:    par.meta.Namespace,
		Name:         par.meta.Name,
		UID:          uid,
		Names:        names,
		Inherited:    inherited,
		AdoptFromUID: par.meta.Annotations[v1beta1.AnnotationAdoptFromUID],
	}
	if env.secrets().Ready() {
		in.DatabasePassword = env.secrets().Derive(uid, credentials.DatabasePassword)
		in.RabbitPassword = env.secrets().Derive(uid, credentials.RabbitMQPassword)
	}
	if key, ok := heldAccessKey(observed, par.meta.Namespace, children.NamesFor(par.meta.Name)); ok {
		in.HeldAccessKeyID = key.ID
	}
	return in
}

// heldAccessKey reads the IAM access key from the observed credentials Secret.
func heldAccessKey(observed metacontroller.RelativeObjects, namespace string, names children.Names) (AccessKey, bool) {
	obj := observed[GroupSecret][namespace+"/"+names.AWSCredentials()]
	if obj == nil {
		return AccessKey{}, false
	}
	var s struct {
		Data map[string][]byte `json:"data"`
	}
	if err := decodeTyped(obj, &s); err != nil {
		return AccessKey{}, false
	}
	key := AccessKey{ID: string(s.Data[children.AWSAccessKeyIDKey]), Secret: string(s.Data[children.AWSSecretAccessKeyKey])}
	return key, key.ID != "" && key.Secret != ""
}

// outsideSettings are the settings that point the app at its resources outside the cluster, and
// the credentials Secret to return (built fresh, or kept as observed). It fails when the spec
// asks for something the hook can't provide.
func outsideSettings(p children.Platform, par parent, observed metacontroller.RelativeObjects, env Env) (map[string]string, any, error) {
	o := env.Outside
	out := map[string]string{}
	names, _ := namesOf(par, o)
	uid := string(par.meta.UID)
	if p.Spec.Database.Shared != nil && !o.Postgres {
		return nil, nil, fmt.Errorf("spec.database.shared needs the hook's PostgreSQL provider, which is off: start the hook with --postgres-admin-dsn, or use spec.database.urlSecret")
	}
	if o.RabbitMQ {
		if !env.secrets().Ready() {
			return nil, nil, fmt.Errorf("the RabbitMQ provider needs a generated password, but the hook has no credential master key: start it with --credential-key-file")
		}
		u := url.URL{
			Scheme: "amqp",
			User:   url.UserPassword(names.RabbitUser, env.secrets().Derive(uid, credentials.RabbitMQPassword)),
			Host:   o.RabbitAMQPAddr,
			// The vhost is the whole path, escaped: amqp://host/%2F is the vhost "/".
			Path:    "/" + names.RabbitVhost,
			RawPath: "/" + url.PathEscape(names.RabbitVhost),
		}
		out[SettingBrokerURL] = u.String()
		out["CELERY_BROKER_URL"] = u.String()
	}
	var keep any
	if o.AWS {
		out["AWS_STORAGE_BUCKET_NAME"] = names.Bucket
		if o.AWSRegion != "" {
			out["AWS_S3_REGION_NAME"] = o.AWSRegion
		}
		key, held := heldAccessKey(observed, p.Namespace, p.Names)
		if e := o.Ensured; e != nil && e.NewAccessKey != nil {
			key, held = *e.NewAccessKey, true
			keep = children.AWSCredentialsSecret(p, key.ID, key.Secret)
		} else if held {
			keep = observed[GroupSecret][p.Namespace+"/"+p.Names.AWSCredentials()]
		}
		if held {
			out[children.AWSAccessKeyIDKey] = key.ID
			out[children.AWSSecretAccessKeyKey] = key.Secret
		}
	}
	return out, keep, nil
}

// externalStatus names the resources outside the cluster in status (never a secret). It names
// them once they were ensured: until then it keeps what the status said, so that a name is
// recorded only for resources that carry this instance's mark (namesOf trusts recorded names).
func externalStatus(p children.Platform, par parent, o Outside) *v1beta1.ExternalStatus {
	if !o.Any() {
		return nil
	}
	if !externalsReady(par, o) {
		return par.status.External
	}
	names, _ := namesOf(par, o)
	st := &v1beta1.ExternalStatus{}
	if o.AWS {
		st.Bucket, st.IAMUser = names.Bucket, names.IAMUser
	}
	if o.RabbitMQ {
		st.RabbitVhost = names.RabbitVhost
	}
	if o.Postgres && p.Spec.Database.Shared != nil {
		st.Database = names.Database
	}
	return st
}

// failureMessage says which systems failed and what the user can do about it.
func failureMessage(fs []Failure) string {
	parts := make([]string, len(fs))
	retryable := true
	for i, f := range fs {
		parts[i] = f.Message
		retryable = retryable && f.Retryable
	}
	advice := "Summon retries by itself; nothing was removed and every child is kept"
	if ownershipReason(fs) != "" {
		advice = "this needs a person: Summon changed nothing of a resource that is not this instance's; every child is kept meanwhile"
	} else if !retryable {
		advice = "this needs a person: check the hook's access to that system; every child is kept meanwhile"
	}
	return fmt.Sprintf("external resources not ready: %s. %s", strings.Join(parts, "; "), advice)
}

// Backoff bounds for re-running a failed ensure.
const (
	minRetry = 5 * time.Second
	maxRetry = 5 * time.Minute
)

// retryAfter grows with how long the failure has lasted (the condition's lastTransitionTime), so
// a system that stays down is asked less and less often, without a counter to store.
func retryAfter(conds []metav1.Condition, now time.Time) float64 {
	d := minRetry
	if c := meta.FindStatusCondition(conds, v1beta1.ConditionExternal); c != nil && c.Status != "True" {
		d = now.Sub(c.LastTransitionTime.Time)
	}
	return min(max(d, minRetry), maxRetry).Seconds()
}

// externalsReady says whether the resources outside the cluster can be counted on in this sync:
// this sync's calls succeeded, or the last ones did for this very generation.
func externalsReady(par parent, o Outside) bool {
	if !o.Any() || (o.Ensured != nil && len(o.Ensured.Failures) == 0) {
		return true
	}
	c := meta.FindStatusCondition(par.status.Conditions, v1beta1.ConditionExternal)
	return c != nil && c.Status == "True" && c.ObservedGeneration == par.meta.Generation
}

// externalFailure answers a sync whose calls failed: every child kept, the status says which
// system failed and what to do, and Metacontroller is asked to come back later, less often the
// longer the failure lasts.
func externalFailure(req *metacontroller.SyncRequest, par parent, env Env) *metacontroller.SyncResponse {
	wait := retryAfter(par.status.Conditions, env.Now)
	msg := failureMessage(env.Outside.Ensured.Failures)
	st, c := carried(par, env)
	st.Phase, st.Message = v1beta1.PhaseError, msg
	reason := reasonExternalError
	if r := ownershipReason(env.Outside.Ensured.Failures); r != "" {
		reason = r
	}
	c.set(v1beta1.ConditionExternal, false, reason, msg)
	c.set(v1beta1.ConditionReady, false, reason, msg)
	st.Conditions = c.list
	resp := frozen(req, st)
	resp.ResyncAfterSeconds = wait
	return resp
}

// ownershipReason is the reason of the first failure that is a resource not this instance's, or
// "" when there is none: such a failure needs a person, whatever else failed with it.
func ownershipReason(fs []Failure) string {
	for _, f := range fs {
		switch f.NotOurs {
		case external.OwnedByAnotherInstance:
			return reasonOwnedByAnotherInstance
		case external.NotCreatedBySummon:
			return reasonNotCreatedBySummon
		case external.OwnedByAnotherAccount:
			return reasonOwnedByAnotherAccount
		}
	}
	return ""
}
