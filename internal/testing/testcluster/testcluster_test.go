package testcluster_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/forklift-dev/summon/internal/testing/testcluster"
	"github.com/forklift-dev/summon/internal/testing/testenv"
)

// TestClusterRunsJobsAndCollectsGarbage starts the cluster, logs how long that took and what it
// uses when idle, and then checks the parts a rollout test leans on: a Job's pod succeeds (kwok's
// pod-complete stage and the job controller), a Job whose pods a test Stage fails ends Failed
// after its retries, and the garbage collector deletes a Job's pods with the Job.
func TestClusterRunsJobsAndCollectsGarbage(t *testing.T) {
	o := testenv.TestCluster(t)
	c, err := testcluster.Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Tails(40))
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("started in %s (nothing to a Deployment's pod Ready)", c.StartTime.Round(100*time.Millisecond))
	if os.Getenv("SUMMON_TESTCLUSTER_MEASURE") != "" {
		u, err := c.Measure(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("idle:\n%s", u)
	}

	cs := kubernetes.NewForConfigOrDie(c.Config())
	ctx := t.Context()
	ns := "testcluster-jobs"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(c.Config())
	fail := testcluster.PodStage("testcluster-fail", map[string]string{"outcome": "fail"}, corev1.PodFailed, 0, "Error")
	if _, err := dyn.Resource(testcluster.StageGVR).Create(ctx, fail, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for name, want := range map[string]batchv1.JobConditionType{"succeeds": batchv1.JobComplete, "fail": batchv1.JobFailed} {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](1),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"outcome": name}},
					Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "job", Image: "registry.example.com/job:1"}},
					},
				},
			},
		}
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitForJob(t, cs, ns, name, want)
	}

	// Foreground deletion waits for the garbage collector to delete the pods first.
	if err := cs.BatchV1().Jobs(ns).Delete(ctx, "fail", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	deadline, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		pods, err := cs.CoreV1().Pods(ns).List(deadline, metav1.ListOptions{LabelSelector: "outcome=fail"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			break
		}
		select {
		case <-deadline.Done():
			t.Fatalf("the garbage collector left %d pods of the deleted Job", len(pods.Items))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitForJob watches a Job until it has a condition of type want, and fails on the other outcome.
func waitForJob(t *testing.T, cs kubernetes.Interface, ns, name string, want batchv1.JobConditionType) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	w, err := cs.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var last string
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			t.Fatalf("watching Job %s: %v", name, ev.Object)
		}
		job, ok := ev.Object.(*batchv1.Job)
		if !ok {
			continue
		}
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case want:
				return
			case batchv1.JobComplete, batchv1.JobFailed:
				t.Fatalf("Job %s ended %s, want %s", name, c.Type, want)
			}
		}
		last = fmt.Sprintf("%+v", job.Status)
	}
	t.Fatalf("gave up on Job %s reaching %s; last status %s", name, want, last)
}
