// Package sim is a small stand-in for Metacontroller and the API server, for tests: it keeps a
// SummonPlatform and its observed children, builds sync requests the way Metacontroller does
// (hooks version v2), and applies responses the way Metacontroller would (create, update, delete,
// status replaced), adding the fields the API server owns. Tests drive it through histories:
// a Job succeeds, a Deployment rolls out, the spec changes. It is test support, not a fake of
// Summon's own parts.
package sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// The child groups a Summon CompositeController declares; the manifests/cnpg component adds
// postgresCluster (Declare).
var groups = []string{
	"Deployment.apps/v1", "StatefulSet.apps/v1", "Service.v1", "Secret.v1",
	"Ingress.networking.k8s.io/v1", "PodDisruptionBudget.policy/v1",
	"HorizontalPodAutoscaler.autoscaling/v2", "Job.batch/v1", "NetworkPolicy.networking.k8s.io/v1",
}

// PostgresCluster is the group of CloudNativePG's Cluster.
const PostgresCluster = "Cluster.postgresql.cnpg.io/v1"

// Cluster holds one parent and its children as the API server would.
type Cluster struct {
	Parent   *v1beta1.SummonPlatform
	Children metacontroller.RelativeObjects
	Related  metacontroller.RelativeObjects
	Clock    time.Time
	serial   int
}

// NewCluster starts a cluster with one parent and no children.
func NewCluster(p *v1beta1.SummonPlatform) *Cluster {
	c := &Cluster{
		Parent:   p,
		Children: metacontroller.RelativeObjects{},
		Related:  metacontroller.RelativeObjects{"Secret.v1": {}},
		Clock:    time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
	}
	for _, g := range groups {
		c.Children[g] = metacontroller.ObjectsByName{}
	}
	if p.UID == "" {
		p.UID = "6f1c2a9e-0d4b-4c7e-9a51-3b2f8e7d1c40"
	}
	if p.Generation == 0 {
		p.Generation = 1
	}
	if p.ResourceVersion == "" {
		p.ResourceVersion = "1000"
	}
	if p.CreationTimestamp.IsZero() {
		p.CreationTimestamp.Time = c.Clock
	}
	p.APIVersion, p.Kind = v1beta1.APIVersion, v1beta1.Kind
	return c
}

// Declare adds a child group to what the CompositeController declares (Metacontroller then
// sends it in every request, empty or not), as the manifests/cnpg component adds CNPG's Cluster.
func (c *Cluster) Declare(group string) {
	if c.Children[group] == nil {
		c.Children[group] = metacontroller.ObjectsByName{}
	}
}

// Declares says whether the CompositeController declares a child group.
func (c *Cluster) Declares(group string) bool {
	_, ok := c.Children[group]
	return ok
}

// Request is the sync request Metacontroller would send now, through JSON as on the wire.
func (c *Cluster) Request() *metacontroller.SyncRequest {
	parent, err := json.Marshal(c.Parent)
	if err != nil {
		panic(err)
	}
	req := metacontroller.SyncRequest{
		Controller: json.RawMessage(`{"apiVersion":"metacontroller.k8s.io/v1alpha1","kind":"CompositeController","metadata":{"name":"summon"}}`),
		Parent:     parent,
		Children:   c.Children,
		Related:    c.Related,
	}
	b, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	// Decoded as the hook decodes it (whole numbers as int64), so that the core meets the request
	// it meets in production.
	var out metacontroller.SyncRequest
	if err := metacontroller.Decode(b, &out); err != nil {
		panic(err)
	}
	return &out
}

// Apply does what Metacontroller does with a response: the status replaces the parent's, every
// returned child is created or updated, and every observed child left out is deleted.
func (c *Cluster) Apply(resp *metacontroller.SyncResponse) {
	c.Clock = c.Clock.Add(10 * time.Second)
	b, err := json.Marshal(resp.Status)
	if err != nil {
		panic(err)
	}
	var st v1beta1.Status
	if err := json.Unmarshal(b, &st); err != nil {
		panic(err)
	}
	st.ObservedGeneration = c.Parent.Generation
	c.Parent.Status = st

	keep := map[string]map[string]bool{}
	for _, desired := range resp.Children {
		g, key := groupOf(desired), keyOf(desired)
		if keep[g] == nil {
			keep[g] = map[string]bool{}
		}
		keep[g][key] = true
		c.put(g, key, desired)
	}
	for g, byName := range c.Children {
		for key := range byName {
			if !keep[g][key] {
				delete(byName, key)
			}
		}
	}
}

// put creates or updates one child as the API server would store it.
func (c *Cluster) put(g, key string, desired metacontroller.Object) {
	// The stored object is the desired one through JSON, as the API server decodes it; the same
	// bytes are the last-applied annotation.
	last, err := json.Marshal(desired)
	if err != nil {
		panic(err)
	}
	var d metacontroller.Object
	if err := json.Unmarshal(last, &d); err != nil {
		panic(err)
	}
	meta := d["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	ann["metacontroller.k8s.io/last-applied-configuration"] = string(last)
	meta["annotations"] = ann
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels["controller-uid"] = string(c.Parent.UID)
	meta["labels"] = labels
	if meta["namespace"] == nil {
		meta["namespace"] = c.Parent.Namespace
	}

	old, exists := c.Children[g][key]
	if !exists {
		c.serial++
		meta["uid"] = fmt.Sprintf("00000000-0000-4000-8000-%012d", c.serial)
		meta["generation"] = int64(1)
		meta["creationTimestamp"] = c.Clock.Format(time.RFC3339)
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind, "name": c.Parent.Name,
			"uid": string(c.Parent.UID), "controller": true, "blockOwnerDeletion": true,
		}}
		meta["managedFields"] = []any{map[string]any{
			"manager": "metacontroller", "operation": "Update", "apiVersion": d["apiVersion"],
			"time": c.Clock.Format(time.RFC3339), "fieldsType": "FieldsV1",
			"fieldsV1": fieldsV1(desired),
		}}
		meta["resourceVersion"] = c.nextVersion()
		c.Children[g][key] = d
		return
	}
	oldMeta := old["metadata"].(map[string]any)
	for _, f := range []string{"uid", "creationTimestamp", "ownerReferences", "managedFields", "generation"} {
		meta[f] = oldMeta[f]
	}
	if !reflect.DeepEqual(old["spec"], d["spec"]) {
		meta["generation"] = asInt(oldMeta["generation"]) + 1
	}
	meta["resourceVersion"] = c.nextVersion()
	if st, ok := old["status"]; ok {
		d["status"] = st
	}
	c.Children[g][key] = d
}

func (c *Cluster) nextVersion() string {
	c.serial++
	return strconv.Itoa(2000 + c.serial)
}

// Sync runs one round: request, hook, apply. It returns the response.
func (c *Cluster) Sync(hook func(*metacontroller.SyncRequest) *metacontroller.SyncResponse) *metacontroller.SyncResponse {
	resp := hook(c.Request())
	c.Apply(resp)
	return resp
}

// Scale sets a workload's replicas as another controller (an HPA, kubectl scale) does through
// the scale subresource: spec.replicas changes and the generation moves, while Metacontroller's
// last-applied annotation stays what Summon answered last.
func (c *Cluster) Scale(group, name string, replicas int64) {
	obj := c.Get(group, name)
	spec, _ := obj["spec"].(map[string]any)
	// Stored as JSON decodes it, like every other number of a stored spec.
	spec["replicas"] = float64(replicas)
	meta := obj["metadata"].(map[string]any)
	meta["generation"] = asInt(meta["generation"]) + 1
	meta["resourceVersion"] = c.nextVersion()
}

// EditSpec changes the parent's spec and bumps its generation, as an apply would.
func (c *Cluster) EditSpec(edit func(*v1beta1.Spec)) {
	edit(&c.Parent.Spec)
	c.Parent.Generation++
}

// SetRelatedSecret adds or replaces an input Secret that the customize hook would relate, marked
// as an input of this instance (v1beta1.LabelInput, v1beta1.AnnotationInputFor).
func (c *Cluster) SetRelatedSecret(name string, data map[string][]byte) {
	c.SetRelatedSecretWithMeta(name, data,
		map[string]any{v1beta1.LabelInput: "true"},
		map[string]any{v1beta1.AnnotationInputFor: c.Parent.Name})
}

// SetRelatedSecretWithMeta adds or replaces a related Secret with the given labels and annotations
// (nil for none): one that is not an input of this instance, or not an input at all.
func (c *Cluster) SetRelatedSecretWithMeta(name string, data map[string][]byte, labels, annotations map[string]any) {
	meta := map[string]any{"name": name, "namespace": c.Parent.Namespace, "uid": "secret-" + name, "resourceVersion": "77"}
	if labels != nil {
		meta["labels"] = labels
	}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	obj := map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": meta,
		"type":     "Opaque",
	}
	enc := map[string]any{}
	for k, v := range data {
		b, _ := json.Marshal(v)
		var s string
		_ = json.Unmarshal(b, &s)
		enc[k] = s
	}
	obj["data"] = enc
	c.Related["Secret.v1"][c.Parent.Namespace+"/"+name] = obj
}

// Names lists the observed children as "group namespace/name", sorted.
func (c *Cluster) Names() []string {
	var out []string
	for g, byName := range c.Children {
		for key := range byName {
			out = append(out, g+" "+key)
		}
	}
	slices.Sort(out)
	return out
}

// Get returns one observed child.
func (c *Cluster) Get(group, name string) metacontroller.Object {
	return c.Children[group][c.Parent.Namespace+"/"+name]
}

// Each calls fn for every observed child of a group, in name order.
func (c *Cluster) Each(group string, fn func(name string, obj metacontroller.Object)) {
	byName := c.Children[group]
	for _, key := range slices.Sorted(maps.Keys(byName)) {
		fn(key, byName[key])
	}
}

func groupOf(obj metacontroller.Object) string {
	return metacontroller.GroupKey(obj["kind"].(string), obj["apiVersion"].(string))
}

func keyOf(obj metacontroller.Object) string {
	meta := obj["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	return ns + "/" + meta["name"].(string)
}

// fieldsV1 is the field set the API server records for a manager, as it records it: every key
// as "f:<key>", lists as a marker. Real requests carry these on every child, and they are a large
// part of a request's bytes.
func fieldsV1(obj map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		switch x := v.(type) {
		case map[string]any:
			out["f:"+k] = fieldsV1(x)
		case []any:
			items := map[string]any{}
			for i, e := range x {
				if m, ok := e.(map[string]any); ok {
					items[fmt.Sprintf("k:{\"index\":%d}", i)] = fieldsV1(m)
				}
			}
			items["."] = map[string]any{}
			out["f:"+k] = items
		default:
			out["f:"+k] = map[string]any{}
		}
	}
	return out
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case json.Number:
		n, _ := x.Int64()
		return n
	}
	return 0
}
