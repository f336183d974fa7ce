package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/children"
)

// With the real Metacontroller: a converged instance diffs empty against its file (so
// pkg/metacontroller.Apply predicts Metacontroller's apply of an unchanged answer), a change's
// diff is what Metacontroller then does (after it, the same file diffs empty), and summonctl
// restart's annotation survives Metacontroller re-applying the pod templates for that change.
func TestSummonctlWithTheRealMetacontroller(t *testing.T) {
	bin := testenv.Metacontroller(t)
	s := newCLISetup(t)
	installCompositeController(t, s.c, s.hook)
	mc := startMetacontroller(t, bin, s.kubeconfig)
	file, qa := qaIn(t, s.c, "summon-cli-mc")
	ns := qa.GetNamespace()
	key := client.ObjectKey{Namespace: ns, Name: qa.GetName()}
	version, _, _ := unstructured.NestedString(qa.Object, "spec", "version")
	e := &e2e{t: t, c: s.c, deadline: time.Now().Add(e2eDeadline), mc: mc, key: key, names: children.NamesFor(key.Name)}
	s.apply(t, file)
	e.markJobSucceeded(e.waitForMigrationJob(version))
	e.waitForWorkloadsOn(version)
	e.waitForReady(version)

	diffEmpty := func(what, file string) {
		t.Helper()
		e.eventually(what, func(ctx context.Context) (bool, string) {
			if err := e.markRolledOut(ctx); err != nil {
				return false, err.Error()
			}
			stdout, _, code := s.run(t, append([]string{"diff", "-f", file}, hookFlags...)...)
			return code == cli.ExitOK && stdout == "", fmt.Sprintf("exit %d:\n%s", code, stdout)
		})
	}
	diffEmpty("an empty diff of the converged instance", file)
	var jobs batchv1.JobList
	if err := s.c.List(t.Context(), &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 0 {
		t.Errorf("converged, yet %d migration Job(s) remain", len(jobs.Items))
	}

	if _, _, code := s.run(t, "restart", "car1-qa", "-n", ns); code != cli.ExitOK {
		t.Fatalf("restart: exit %d", code)
	}
	web := children.NamesFor("car1-qa").Of(children.Web)
	template := func() (stamp, hash string) {
		var d appsv1.Deployment
		if err := s.c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: web}, &d); err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations[cli.RestartedAtAnnotation], d.Spec.Template.Annotations[children.AnnotationConfigHash]
	}
	stamp, oldHash := template()
	if stamp == "" {
		t.Fatal("restart set no annotation")
	}

	changed := qa.DeepCopy()
	_ = unstructured.SetNestedField(changed.Object, "Car One", "spec", "config", "SITE_NAME")
	changedFile := writePlatformFile(t, changed)
	stdout, _, code := s.run(t, append([]string{"diff", "-f", changedFile}, hookFlags...)...)
	if code != cli.ExitFound || !strings.Contains(stdout, "restarts the pods of web") {
		t.Fatalf("diff of a config change: exit %d:\n%s", code, stdout)
	}
	s.apply(t, changedFile)
	e.eventually("Metacontroller to apply the new config hash to "+web, func(context.Context) (bool, string) {
		got, hash := template()
		if hash == oldHash {
			return false, "config hash " + hash
		}
		if got != stamp {
			t.Fatalf("Metacontroller re-applied the pod template of %s and the restart annotation went from %q to %q", web, stamp, got)
		}
		return true, ""
	})
	diffEmpty("an empty diff once Metacontroller applied the change", changedFile)
}
