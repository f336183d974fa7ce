package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// syncRequest builds the request Metacontroller would send for a parent: an entry for every
// child group the CompositeController declares (platform.DeclaredGroups), each keyed
// "namespace/name" as hooks v2 keys them, and the related input Secrets. Objects of other types
// can't be children; they are returned, for a warning.
func syncRequest(parent map[string]any, observed, related []map[string]any, groups []string) (*metacontroller.SyncRequest, []string, error) {
	ns := metaString(parent, "namespace")
	group := func(objs []map[string]any, declared []string) (metacontroller.RelativeObjects, []string) {
		out := metacontroller.RelativeObjects{}
		for _, g := range declared {
			out[g] = metacontroller.ObjectsByName{}
		}
		var other []string
		for _, obj := range objs {
			kind, _ := obj["kind"].(string)
			apiVersion, _ := obj["apiVersion"].(string)
			g := metacontroller.GroupKey(kind, apiVersion)
			if _, ok := out[g]; !ok {
				other = append(other, fmt.Sprintf("%s %s", kind, metaString(obj, "name")))
				continue
			}
			objNS := metaString(obj, "namespace")
			if objNS == "" {
				objNS = ns
			}
			out[g][objNS+"/"+metaString(obj, "name")] = obj
		}
		return out, other
	}
	childGroups, other := group(observed, groups)
	relatedGroups, _ := group(related, []string{platform.GroupSecret})
	raw, err := json.Marshal(parent)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the SummonPlatform: %w", err)
	}
	req := &metacontroller.SyncRequest{Parent: raw, Children: childGroups, Related: relatedGroups}
	// Through JSON as on the wire, so that numbers are what the hook would read.
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the sync request: %w", err)
	}
	var out metacontroller.SyncRequest
	if err := metacontroller.Decode(b, &out); err != nil {
		return nil, nil, fmt.Errorf("decoding the sync request: %w", err)
	}
	return &out, other, nil
}

// inputNames are the Secrets a parent reads as inputs, as the customize hook names them.
func inputNames(parent map[string]any) ([]string, error) {
	raw, err := json.Marshal(parent)
	if err != nil {
		return nil, err
	}
	resp, err := platform.Customize(raw)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range resp.RelatedResources {
		names = append(names, r.Names...)
	}
	return names, nil
}

// standIns records which generated secrets a client could not read back and had to stand in for.
type standIns struct {
	inner    credentials.Source
	purposes []string
}

func (s *standIns) Derive(uid, purpose string) string {
	if !slices.Contains(s.purposes, purpose) {
		s.purposes = append(s.purposes, purpose)
	}
	return s.inner.Derive(uid, purpose)
}

func (s *standIns) Ready() bool { return s.inner.Ready() }

// clientEnv is the Env the hook builds, as a client of the cluster can build it: the hook's
// profile, and for its credential key (which a client never has) the secrets read back from the
// live config file where there is one, and visible placeholders for the rest. The standIns say
// which placeholders Sync used.
func clientEnv(profile platform.HookProfile, now time.Time, configFile []byte) (platform.Env, *standIns, error) {
	env := platform.Env{Now: now, Defaults: profile.Defaults, Outside: profile.Outside, Data: profile.Data, Rollout: profile.Rollout}
	env.Outside.Ensured = nil
	if !profile.CredentialKey {
		env.Credentials = credentials.Deriver{}
		return env, &standIns{inner: credentials.Deriver{}}, nil
	}
	stand := &standIns{inner: credentials.Placeholder{}}
	known := map[string]string{}
	if configFile != nil {
		var err error
		if known, err = platform.GeneratedCredentials(configFile); err != nil {
			return env, nil, err
		}
	}
	env.Credentials = credentials.Known{Values: known, Fallback: stand}
	return env, stand, nil
}

// configFileOf is the app config file held by a config Secret among the observed children, or
// nil.
func configFileOf(parentName string, observed []map[string]any) ([]byte, error) {
	name := children.NamesFor(parentName).Config()
	for _, obj := range observed {
		if !isSecret(obj) || metaString(obj, "name") != name {
			continue
		}
		data, _ := obj["data"].(map[string]any)
		enc, ok := data[children.ConfigFileName].(string)
		if !ok {
			return nil, nil
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("the config Secret %s holds no base64 data", name)
		}
		return b, nil
	}
	return nil, nil
}

// assumeEnsured does what the hook would do before Sync when PlanEnsure asks for calls outside
// the cluster, assuming they succeed: a client can make none of them. It says why, or "".
func assumeEnsured(req *metacontroller.SyncRequest, env *platform.Env) string {
	plan := platform.PlanEnsure(req, *env)
	if !plan.Needed {
		return ""
	}
	env.Outside.Ensured = &platform.Ensured{}
	return plan.Reason
}

// notes says, for stderr, where the answer rests on something a client can't know.
func notes(stand *standIns, ensureReason string) []string {
	var out []string
	if len(stand.purposes) > 0 {
		out = append(out, fmt.Sprintf("the hook generates %s, which no live config file shows summonctl: a placeholder stands in, so the config file and its hash differ from what the hook writes",
			strings.Join(stand.purposes, ", ")))
	}
	if ensureReason != "" {
		out = append(out, "the hook first calls the systems outside the cluster ("+ensureReason+"); this assumes those calls succeed")
	}
	return out
}
