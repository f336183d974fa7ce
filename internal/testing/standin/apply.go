package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/utils/ptr"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// desiredChildren groups the answer's children as the request groups the observed ones, puts
// them in the parent's namespace, and adds the generated selector's label.
func (c *Controller) desiredChildren(parent *unstructured.Unstructured, objs []metacontroller.Object) (metacontroller.RelativeObjects, error) {
	out := metacontroller.RelativeObjects{}
	for _, o := range objs {
		u := &unstructured.Unstructured{Object: o}
		if u.GetNamespace() == "" {
			u.SetNamespace(parent.GetNamespace())
		}
		if u.GetNamespace() != parent.GetNamespace() {
			return nil, fmt.Errorf("desired child %s %s is in namespace %s, not its parent's", u.GetKind(), u.GetName(), u.GetNamespace())
		}
		group := metacontroller.GroupKey(u.GetKind(), u.GetAPIVersion())
		if _, ok := c.byGroup[group]; !ok {
			return nil, fmt.Errorf("desired child %s %s is of a type the CompositeController doesn't declare (%s)", u.GetKind(), u.GetName(), group)
		}
		l := u.GetLabels()
		if c.cc.generateSelector() {
			if l == nil {
				l = map[string]string{}
			}
			if _, ok := l[SelectorLabel]; !ok {
				l[SelectorLabel] = string(parent.GetUID())
				u.SetLabels(l)
			}
		}
		if c.cc.generateSelector() && l[SelectorLabel] != string(parent.GetUID()) {
			return nil, fmt.Errorf("labels on desired child %s %s don't match the parent's selector", u.GetKind(), u.GetName())
		}
		if out[group] == nil {
			out[group] = metacontroller.ObjectsByName{}
		}
		out[group][u.GetNamespace()+"/"+u.GetName()] = u.Object
	}
	return out, nil
}

// manage deletes the observed children the answer left out and creates or updates the desired
// ones. It goes on past a failed write so that one bad child doesn't block the others.
func (c *Controller) manage(ctx context.Context, parent *unstructured.Unstructured, observed, desired metacontroller.RelativeObjects) error {
	var errs []error
	for _, t := range c.children {
		for _, key := range slices.Sorted(maps.Keys(observed[t.group()])) {
			obj := &unstructured.Unstructured{Object: observed[t.group()][key]}
			if obj.GetDeletionTimestamp() != nil || desired[t.group()][key] != nil {
				continue
			}
			uid := obj.GetUID()
			err := c.dyn.Resource(t.gvr).Namespace(obj.GetNamespace()).Delete(ctx, obj.GetName(), metav1.DeleteOptions{
				Preconditions:     &metav1.Preconditions{UID: &uid},
				PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			})
			c.logWrite("delete", t, obj, err)
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting %s %s: %w", t.kind, obj.GetName(), err))
			}
		}
	}
	for _, t := range c.children {
		for _, key := range slices.Sorted(maps.Keys(desired[t.group()])) {
			want := &unstructured.Unstructured{Object: desired[t.group()][key]}
			var have *unstructured.Unstructured
			if o := observed[t.group()][key]; o != nil {
				have = &unstructured.Unstructured{Object: o}
			}
			apply := c.dynamicApply
			if c.strategy == ServerSideApply {
				apply = c.serverSideApply
			}
			if err := apply(ctx, t, parent, have, want); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) logWrite(op string, t resourceType, obj *unstructured.Unstructured, err error) {
	c.log.Info("write", "op", op, "kind", t.kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "error", errText(err))
}

// controllerRef is Metacontroller's owner reference: the parent, as the controller, blocking its
// deletion until the child is gone (foreground deletion).
func controllerRef(parent *unstructured.Unstructured) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: parent.GetAPIVersion(), Kind: parent.GetKind(), Name: parent.GetName(), UID: parent.GetUID(),
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

func claimOwnership(obj, parent *unstructured.Unstructured) {
	refs := obj.GetOwnerReferences()
	for _, r := range refs {
		if r.UID == parent.GetUID() {
			return
		}
	}
	obj.SetOwnerReferences(append(refs, controllerRef(parent)))
}

// systemMetadata are the metadata fields the API server owns; an apply never changes them.
var systemMetadata = []string{"selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
	"deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"}

// dynamicApply is Metacontroller's default apply. A new child is created with the last-applied
// annotation and the controller reference. An existing one gets the three-way merge that
// pkg/metacontroller.Apply models (summonctl diff uses the same model), sent as an update with the observed resourceVersion (a conflict is left for the next round), but only when
// its update method is InPlace and the merge changes something; a child that is being deleted is
// left alone.
func (c *Controller) dynamicApply(ctx context.Context, t resourceType, parent, have, want *unstructured.Unstructured) error {
	client := c.dyn.Resource(t.gvr).Namespace(want.GetNamespace())
	applied := want.DeepCopy()
	removeLastApplied(applied)
	appliedJSON, err := json.Marshal(applied.Object)
	if err != nil {
		return err
	}
	if have == nil {
		obj := applied.DeepCopy()
		setAnnotation(obj, LastAppliedAnnotation, string(appliedJSON))
		claimOwnership(obj, parent)
		_, err := client.Create(ctx, obj, metav1.CreateOptions{})
		c.logWrite("create", t, obj, err)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", t.kind, obj.GetName(), err)
		}
		return nil
	}
	out, err := metacontroller.Apply(have.Object, applied.Object)
	if err != nil {
		return fmt.Errorf("%s %s: %w", t.kind, have.GetName(), err)
	}
	merged := &unstructured.Unstructured{Object: out}
	if jsonEqual(merged.Object, have.Object) || have.GetDeletionTimestamp() != nil || t.method != methodInPlace {
		return nil
	}
	_, err = client.Update(ctx, merged, metav1.UpdateOptions{})
	c.logWrite("update", t, merged, err)
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating %s %s: %w", t.kind, merged.GetName(), err)
	}
	return nil
}

// serverSideApply applies the desired child as field manager "metacontroller", forcing conflicts.
// An existing child is applied only when its method is InPlace; Metacontroller first removes the
// dynamic apply's last-applied annotation, which would otherwise stay behind as a field nobody
// manages.
func (c *Controller) serverSideApply(ctx context.Context, t resourceType, parent, have, want *unstructured.Unstructured) error {
	client := c.dyn.Resource(t.gvr).Namespace(want.GetNamespace())
	if have != nil && (have.GetDeletionTimestamp() != nil || t.method != methodInPlace) {
		return nil
	}
	obj := want.DeepCopy()
	claimOwnership(obj, parent)
	for _, f := range systemMetadata {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(obj.Object, "status")
	removeLastApplied(obj)
	if have != nil {
		if _, ok := have.GetAnnotations()[LastAppliedAnnotation]; ok {
			path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(LastAppliedAnnotation, "~", "~0"), "/", "~1")
			_, err := client.Patch(ctx, have.GetName(), types.JSONPatchType, []byte(`[{"op":"remove","path":"`+path+`"}]`), metav1.PatchOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("removing %s from %s %s: %w", LastAppliedAnnotation, t.kind, have.GetName(), err)
			}
		}
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	_, err = client.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)})
	c.logWrite("apply", t, obj, err)
	if err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("applying %s %s: %w", t.kind, obj.GetName(), err)
	}
	return nil
}

func removeLastApplied(obj *unstructured.Unstructured) {
	ann := obj.GetAnnotations()
	if _, ok := ann[LastAppliedAnnotation]; !ok {
		return
	}
	delete(ann, LastAppliedAnnotation)
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
}

func setAnnotation(obj *unstructured.Unstructured, k, v string) {
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[k] = v
	obj.SetAnnotations(ann)
}

// jsonEqual compares two JSON values as JSON: an int64 from the API server equals the same whole
// number decoded from a hook's answer.
func jsonEqual(a, b any) bool {
	return reflect.DeepEqual(normalise(a), normalise(b))
}

func normalise(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := utiljson.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
