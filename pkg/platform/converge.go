package platform

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/gate"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// converge is the normal path: a valid spec, all children visible.
func converge(req *metacontroller.SyncRequest, par parent, env Env) *metacontroller.SyncResponse {
	spec := par.spec.Defaulted(env.Defaults)
	if spec.Image == "" {
		return frozen(req, errorStatus(par, env, reasonSpecInvalid,
			"no image to run: set spec.image, or start the hook with --default-image"))
	}
	p := children.NewPlatform(par.meta.Name, par.meta.Namespace, spec)

	if e := env.Outside.Ensured; e != nil && len(e.Failures) > 0 {
		return externalFailure(req, par, env)
	}
	outside, awsSecret, err := outsideSettings(p, par, req.Children, env)
	if err != nil {
		return frozen(req, errorStatus(par, env, reasonProviderMissing, err.Error()))
	}
	data, reason, err := planData(p, par, req, env)
	if err != nil {
		return frozen(req, errorStatus(par, env, reason, err.Error()))
	}
	maps.Copy(outside, data.settings)
	settings, err := appSettings(p, par, req.Related, outside, env)
	if err != nil {
		return frozen(req, errorStatus(par, env, inputReason(err), err.Error()))
	}
	file, err := children.ConfigFile(settings)
	if err != nil {
		return frozen(req, errorStatus(par, env, reasonInputMissing, err.Error()))
	}
	configHash := children.ConfigHash(file)

	seen := observe(p, req.Children)
	backup := planBackup(p, par, seen, env)
	decision := gate.MigrationGate(gate.MigrationInput{
		Version:         spec.Version,
		Attempt:         spec.Migrations.Attempt,
		MigratedVersion: par.status.MigratedVersion,
		Jobs:            seen.jobs,
		Waiting:         waitingFor(seen.configSeen, externalsReady(par, env.Outside), data.waiting),
		Running:         seen.runningVersions(),
		Components:      componentNames(),
		Records:         recordUIDs(par.status.Migrations),
		Backup:          backup.input,
	})

	d := &desired{}
	d.add(children.AppConfigSecret(p, file))
	switch s := awsSecret.(type) {
	case metacontroller.Object:
		d.keep(s)
	case nil:
	default:
		d.add(s)
	}
	for _, c := range children.ServingComponents {
		d.add(children.ServiceFor(p, c))
		d.add(children.PodDisruptionBudget(p, c))
	}
	d.add(children.BeatService(p))
	d.add(children.HorizontalPodAutoscaler(p, children.Web))
	d.add(children.HorizontalPodAutoscaler(p, children.Celeryd))
	d.add(children.Ingress(p))
	for _, c := range data.children {
		d.add(c)
	}

	release := func(c children.Component) (children.Release, bool) {
		v, ok := decision.Targets[string(c)]
		return children.Release{Version: v, ConfigHash: configHash}, ok
	}
	beatReplicas := gate.BeatReplicas(*spec.Replicas.CeleryBeat, len(seen.otherBeats) > 0)
	replicas := func(c children.Component) int32 { return desiredReplicas(p, c, seen.workloads[c], beatReplicas) }
	if r, ok := release(children.Web); ok {
		d.add(children.WebDeployment(p, r, replicas(children.Web)))
	}
	if r, ok := release(children.Daphne); ok {
		d.add(children.DaphneDeployment(p, r))
	}
	if r, ok := release(children.ChannelWorker); ok {
		d.add(children.ChannelWorkerDeployment(p, r))
	}
	if r, ok := release(children.Celeryd); ok {
		d.add(children.CeleryWorkerDeployment(p, r, replicas(children.Celeryd)))
	}
	if r, ok := release(children.Static); ok {
		d.add(children.StaticDeployment(p, r))
	}
	if r, ok := release(children.CeleryBeat); ok {
		d.add(children.BeatStatefulSet(p, r, beatReplicas))
	}
	if decision.CreateJob {
		d.add(children.MigrationJob(p, children.Release{Version: spec.Version, ConfigHash: configHash}, spec.Migrations.Attempt))
	}
	for _, name := range decision.KeepJobs {
		if slices.Contains(decision.RecordJobs, name) {
			d.put(markedRecord(seen.jobObjects[name]))
			continue
		}
		d.keep(seen.jobObjects[name])
	}
	backup.addBackup(d, p, par, decision)

	built := settleBuilds(d, p, par, seen, decision.Targets, configHash, env)
	unknown := d.unknown(p, seen)
	rollout := rolloutOf(p, seen, decision.Targets, configHash, beatReplicas)

	st, conds := carried(par, env)
	conds.remove(v1beta1.ConditionPaused)
	conds.set(v1beta1.ConditionValid, true, reasonValid, "")
	st.MigratedVersion = decision.MigratedVersion
	st.Backups = backup.backupRecords(st.Backups, *spec.Backups.Keep)
	st.Migrations = migrationRecords(st.Migrations, seen, decision, par, spec.Version, spec.Migrations.Attempt)
	st.Components = rollout.components
	st.External = externalStatus(p, par, env.Outside)
	if env.Outside.Any() {
		if externalsReady(par, env.Outside) {
			conds.set(v1beta1.ConditionExternal, true, reasonExternalReady, "the bucket, IAM user, vhost and database this instance needs exist")
		} else {
			conds.set(v1beta1.ConditionExternal, false, reasonExternalPending, "the external resources have not been checked for this generation yet")
		}
	} else {
		conds.remove(v1beta1.ConditionExternal)
	}
	deployed := rollout.complete && decision.Stage == gate.StageMigrated
	if deployed {
		st.DeployedVersion = spec.Version
	}
	st.Phase, st.Message = phaseOf(decision, rollout, spec.Version)
	if st.Phase == v1beta1.PhaseReady && len(data.pending) > 0 {
		st.Phase = v1beta1.PhaseDeploying
		st.Message = "version " + spec.Version + " is rolled out; waiting for " + strings.Join(data.pending, ", ")
	}
	migratedCondition(conds, decision, spec.Version)
	backup.backedUpCondition(conds, decision, par, spec.Version)
	switch {
	case deployed:
		conds.set(v1beta1.ConditionDeployed, true, reasonRolledOut, "every workload runs version "+spec.Version)
	case decision.Stage == gate.StageMigrated:
		conds.set(v1beta1.ConditionDeployed, false, reasonRollingOut, rollout.waitingMessage(spec.Version))
	default:
		conds.set(v1beta1.ConditionDeployed, false, reasonAwaitingMigration, "version "+spec.Version+" waits for its migrations")
	}

	if len(unknown) > 0 {
		st.Phase = v1beta1.PhaseError
		st.Message = unknownMessage(unknown)
		conds.set(v1beta1.ConditionReady, false, reasonUnknownChildren, st.Message)
	} else if st.Phase == v1beta1.PhaseError {
		conds.set(v1beta1.ConditionReady, false, reasonMigrationFailed, st.Message)
	} else {
		conds.set(v1beta1.ConditionReady, st.Phase == v1beta1.PhaseReady, readyReason(st.Phase), st.Message)
	}
	st.Builders = built.status(conds)
	st.Conditions = conds.list

	out := d.objects
	if st.Phase == v1beta1.PhaseError {
		// In Error nothing observed is dropped: the user is about to act, and the instance must
		// keep running as it is until then.
		out = append(out, d.everythingElse(seen)...)
	}
	return &metacontroller.SyncResponse{Status: st, Children: capBeats(out)}
}

// waitingFor names what a migration still needs, for the gate's message.
func waitingFor(configSeen, externalsReady bool, data string) string {
	var missing []string
	if !configSeen {
		missing = append(missing, "the app config Secret")
	}
	if !externalsReady {
		missing = append(missing, "the external resources")
	}
	if data != "" {
		missing = append(missing, data)
	}
	return strings.Join(missing, " and ")
}

func componentNames() []string {
	out := make([]string, len(children.AppComponents))
	for i, c := range children.AppComponents {
		out[i] = string(c)
	}
	return out
}

func (o observation) runningVersions() map[string]string {
	out := map[string]string{}
	for c, w := range o.workloads {
		out[string(c)] = w.version
	}
	return out
}

// appSettings gathers the config file's settings: spec.config, what Summon generates, and the
// input Secrets, which Metacontroller sends as related objects (see the customize hook).
func appSettings(p children.Platform, par parent, related metacontroller.RelativeObjects, outside map[string]string, env Env) (children.Settings, error) {
	config := children.Settings{}
	for k, v := range p.Spec.Config {
		config[k] = v.Value()
	}
	generated, err := generatedSettings(p, par, related, env)
	if err != nil {
		return nil, err
	}
	maps.Copy(generated, outside)
	inputs := make([]map[string][]byte, 0, len(p.Spec.Secrets))
	var missing []string
	var refused []error
	for _, name := range p.Spec.Secrets {
		data, err := inputSecret(related, p, name, "spec.secrets")
		switch {
		case errors.Is(err, errInputAbsent):
			missing = append(missing, name)
		case err != nil:
			refused = append(refused, err)
		default:
			inputs = append(inputs, data)
		}
	}
	if len(refused) > 0 {
		return nil, inputRefused{message: errors.Join(refused...).Error()}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("input Secret %s not found in namespace %s: create it, or remove it from spec.secrets",
			strings.Join(missing, ", "), p.Namespace)
	}
	return children.MergeSettings(config, generated, inputs), nil
}

// generatedSettings are the settings Summon owns: SECRET_KEY and the database URL.
func generatedSettings(p children.Platform, par parent, related metacontroller.RelativeObjects, env Env) (map[string]string, error) {
	out := map[string]string{}
	uid := string(par.meta.UID)
	if env.secrets().Ready() {
		out[SettingSecretKey] = env.secrets().Derive(uid, credentials.DjangoSecretKey)
	}
	db := p.Spec.Database
	switch {
	case db.Shared != nil:
		if !env.secrets().Ready() {
			return nil, fmt.Errorf("spec.database.shared needs a generated password, but the hook has no credential master key: start it with --credential-key-file")
		}
		sh := sharedDatabase(p, par, env)
		u := url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(sh.User, sh.Password),
			Host:     sh.Host + ":" + strconv.Itoa(int(sh.Port)),
			Path:     "/" + sh.Database,
			RawQuery: "sslmode=" + sh.SSLMode,
		}
		out[SettingDatabaseURL] = u.String()
	case db.URLSecret != nil:
		v, err := secretValue(related, p, *db.URLSecret, "spec.database.urlSecret")
		if err != nil {
			return nil, err
		}
		out[SettingDatabaseURL] = v
	}
	return out, nil
}

func phaseOf(d gate.MigrationDecision, r rollout, version string) (v1beta1.Phase, string) {
	switch d.Stage {
	case gate.StagePreparing:
		return v1beta1.PhaseInitializing, d.Message
	case gate.StageMigrating, gate.StageBackingUp:
		return v1beta1.PhaseMigrating, d.Message
	case gate.StageFailed:
		return v1beta1.PhaseError, d.Message
	}
	if !r.complete {
		return v1beta1.PhaseDeploying, r.waitingMessage(version)
	}
	return v1beta1.PhaseReady, "version " + version + " is ready"
}

func migratedCondition(c *conditions, d gate.MigrationDecision, version string) {
	switch d.Stage {
	case gate.StageMigrated:
		c.set(v1beta1.ConditionMigrated, true, reasonMigrated, "the migrations of version "+version+" succeeded")
	case gate.StageFailed:
		c.set(v1beta1.ConditionMigrated, false, reasonMigrationFailed, d.Message)
	case gate.StagePreparing:
		c.set(v1beta1.ConditionMigrated, false, reasonPreparing, d.Message)
	case gate.StageBackingUp:
		c.set(v1beta1.ConditionMigrated, false, reasonBackingUp, d.Message)
	default:
		c.set(v1beta1.ConditionMigrated, false, reasonMigrating, d.Message)
	}
}

func readyReason(p v1beta1.Phase) string {
	switch p {
	case v1beta1.PhaseReady:
		return reasonReady
	case v1beta1.PhaseInitializing:
		return reasonPreparing
	case v1beta1.PhaseMigrating:
		return reasonMigrating
	}
	return reasonRollingOut
}

func unknownMessage(refs []childRef) string {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = fmt.Sprintf("%s %s", strings.SplitN(r.group, ".", 2)[0], r.name)
	}
	slices.Sort(names)
	return fmt.Sprintf("found children that Summon does not manage in this layout: %s. They are kept so the instance keeps running; "+
		"once the new children are ready, delete them with kubectl delete, or remove their types from the CompositeController",
		strings.Join(names, ", "))
}
