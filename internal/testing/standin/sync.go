package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// sync is one round for one parent, in Metacontroller's order: finalizer, claim the children,
// related objects, the hook, the finalizer again if finalized, the children, the status.
func (c *Controller) sync(ctx context.Context, key string) error {
	obj, exists, err := c.parents.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return err
	}
	parent := obj.(*unstructured.Unstructured).DeepCopy()
	ns := parent.GetNamespace()
	client := c.dyn.Resource(c.parent.gvr).Namespace(ns)
	deleting := parent.GetDeletionTimestamp() != nil

	wantFinalizer := c.cc.Spec.Hooks.Finalize != nil
	hasFinalizer := slices.Contains(parent.GetFinalizers(), c.finalizer())
	switch {
	case wantFinalizer && !hasFinalizer && !deleting:
		parent.SetFinalizers(append(parent.GetFinalizers(), c.finalizer()))
		if parent, err = client.Update(ctx, parent, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("adding finalizer: %w", err)
		}
		hasFinalizer = true
	case !wantFinalizer && hasFinalizer:
		if parent, err = c.removeFinalizer(ctx, parent); err != nil {
			return err
		}
		hasFinalizer = false
	}
	if deleting && !hasFinalizer {
		// Finalized (or never ours): the garbage collector removes the children.
		return nil
	}

	observed, err := c.claim(parent)
	if err != nil {
		return err
	}
	related, err := c.relatedObjects(ctx, parent)
	if err != nil {
		return err
	}
	hookName, h := "sync", c.cc.Spec.Hooks.Sync
	if deleting && c.cc.Spec.Hooks.Finalize != nil {
		hookName, h = "finalize", c.cc.Spec.Hooks.Finalize
	}
	parentJSON, err := json.Marshal(parent.Object)
	if err != nil {
		return err
	}
	req := metacontroller.SyncRequest{Controller: c.ccJSON, Parent: parentJSON, Children: observed, Related: related, Finalizing: hookName == "finalize"}
	var resp metacontroller.SyncResponse
	if err := c.call(ctx, h, &req, &resp); err != nil {
		return fmt.Errorf("%s hook: %w", hookName, err)
	}
	if resp.ResyncAfterSeconds > 0 {
		c.queue.AddAfter(key, time.Duration(resp.ResyncAfterSeconds*float64(time.Second)))
	}
	if resp.Finalized && hasFinalizer {
		if parent, err = c.removeFinalizer(ctx, parent); err != nil {
			return err
		}
		hasFinalizer = false
	}

	desired, err := c.desiredChildren(parent, resp.Children)
	if err != nil {
		return err
	}
	var manageErr error
	if !deleting || hasFinalizer {
		manageErr = c.manage(ctx, parent, observed, desired)
	}
	statusErr := c.writeStatus(ctx, parent, resp.Status)
	c.log.Info("synced", "parent", key, "hook", hookName, "children", len(resp.Children), "finalized", resp.Finalized,
		"manageError", errText(manageErr), "statusError", errText(statusErr))
	return errors.Join(manageErr, statusErr)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (c *Controller) removeFinalizer(ctx context.Context, parent *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	parent.SetFinalizers(slices.DeleteFunc(parent.GetFinalizers(), func(f string) bool { return f == c.finalizer() }))
	out, err := c.dyn.Resource(c.parent.gvr).Namespace(parent.GetNamespace()).Update(ctx, parent, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("removing finalizer: %w", err)
	}
	return out, nil
}

// claim gathers the parent's children: the objects of each declared type in its namespace whose
// controller reference is the parent. The request has an entry for every type, even empty.
func (c *Controller) claim(parent *unstructured.Unstructured) (metacontroller.RelativeObjects, error) {
	out := metacontroller.RelativeObjects{}
	for _, t := range c.children {
		group := metacontroller.ObjectsByName{}
		objs, err := c.listers[t.group()].ByNamespace(parent.GetNamespace()).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			u := o.(*unstructured.Unstructured)
			if ref := metav1.GetControllerOfNoCopy(u); ref != nil && ref.UID == parent.GetUID() {
				group[u.GetNamespace()+"/"+u.GetName()] = u.DeepCopy().Object
			}
		}
		out[t.group()] = group
	}
	return out, nil
}

// writeStatus replaces the parent's status with the hook's, plus observedGeneration, through the
// status subresource, unless it is already so. A conflict or a parent that is gone is left for
// the next round, which the write that caused it triggers.
func (c *Controller) writeStatus(ctx context.Context, parent *unstructured.Unstructured, status any) error {
	st, _ := status.(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	st["observedGeneration"] = parent.GetGeneration()
	if jsonEqual(parent.Object["status"], st) {
		return nil
	}
	parent = parent.DeepCopy()
	parent.Object["status"] = st
	_, err := c.dyn.Resource(c.parent.gvr).Namespace(parent.GetNamespace()).UpdateStatus(ctx, parent, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("writing the status: %w", err)
	}
	return nil
}
