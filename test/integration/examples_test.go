package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestEveryExampleIsAccepted(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	files, err := filepath.Glob(repoFile(t, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("examples/ holds no *.yaml")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			w := &warningLog{}
			c := k.client(t, w)
			// A fresh namespace per file: the examples name the namespaces of a real cluster.
			namespace := "example-" + name
			ensureNamespace(t, c, namespace)
			for _, obj := range readObjects(t, file) {
				obj.SetNamespace(namespace)
				if err := c.Create(t.Context(), obj); err != nil {
					t.Errorf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
					continue
				}
				// Nothing runs Metacontroller here, so nothing holds a finalizer on it.
				t.Cleanup(func() {
					if err := c.Delete(context.Background(), obj); err != nil {
						t.Errorf("deleting %s %s: %v", obj.GetKind(), obj.GetName(), err)
					}
				})
			}
			if got := w.take(); len(got) > 0 {
				t.Errorf("the API server warned about %s:\n%s", filepath.Base(file), strings.Join(got, "\n"))
			}
		})
	}
}
