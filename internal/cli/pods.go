package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/forklift-dev/summon/pkg/children"
)

// componentArg reads a component named on the command line; "" means web.
func componentArg(name string, allowed []children.Component) (children.Component, error) {
	if name == "" {
		return children.Web, nil
	}
	for _, c := range allowed {
		if string(c) == name {
			return c, nil
		}
	}
	names := make([]string, len(allowed))
	for i, c := range allowed {
		names[i] = string(c)
	}
	return "", usageError("%q is not a component; use one of %s", name, strings.Join(names, ", "))
}

// pickPod chooses the pod to reach: a ready one that is not going away, the oldest first (it
// has proven itself; a fresh one may be a rollout's that is about to be judged), by name when
// tied. For the migration Job, whose pods are never ready once done, the newest pod.
func pickPod(pods []corev1.Pod, c children.Component) (*corev1.Pod, error) {
	var candidates []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if c == children.Migrations || podReady(&p) {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("no ready pod of %s (%d pod(s) found, none ready)", c, len(pods))
	}
	slices.SortFunc(candidates, func(a, b corev1.Pod) int {
		if t := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); t != 0 {
			if c == children.Migrations {
				return -t
			}
			return t
		}
		return strings.Compare(a.Name, b.Name)
	})
	return &candidates[0], nil
}

// componentPod finds the pod of an instance's component to exec into or read logs from, by
// Summon's selector labels.
func (c *clients) componentPod(ctx context.Context, g *globals, namespace, name string, comp children.Component) (*corev1.Pod, error) {
	if _, err := c.getPlatform(ctx, g, namespace, name); err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(children.SelectorLabels(name, comp)).String()
	pods, err := c.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of %s/%s: %w", namespace, name, err)
	}
	p, err := pickPod(pods.Items, comp)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w; see %s status %s -n %s", namespace, name, err, g.name, name, namespace)
	}
	return p, nil
}
