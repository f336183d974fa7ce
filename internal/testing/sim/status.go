package sim

import (
	"time"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// CompleteJob marks a Job succeeded, as the Job controller would: through its status, with both
// SuccessCriteriaMet and Complete.
func (c *Cluster) CompleteJob(name string) {
	c.finishJob(name, []any{
		condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", c.Clock),
		condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods", c.Clock),
	}, map[string]any{"succeeded": int64(1)})
}

// FailJob marks a Job failed after its retries.
func (c *Cluster) FailJob(name string) {
	c.finishJob(name, []any{
		condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit", c.Clock),
		condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", c.Clock),
	}, map[string]any{"failed": int64(3)})
}

// StartJob gives a Job an active pod.
func (c *Cluster) StartJob(name string) {
	job := c.Get("Job.batch/v1", name)
	job["status"] = map[string]any{"active": int64(1), "startTime": c.Clock.Format(time.RFC3339), "ready": int64(0)}
}

func (c *Cluster) finishJob(name string, conds []any, counts map[string]any) {
	job := c.Get("Job.batch/v1", name)
	st := map[string]any{
		"startTime":  c.Clock.Add(-time.Minute).Format(time.RFC3339),
		"conditions": conds,
	}
	for k, v := range counts {
		st[k] = v
	}
	if conds[1].(map[string]any)["type"] == "Complete" {
		st["completionTime"] = c.Clock.Format(time.RFC3339)
	}
	job["status"] = st
}

func condition(typ, reason, message string, at time.Time) map[string]any {
	return map[string]any{
		"type": typ, "status": "True", "reason": reason, "message": message,
		"lastProbeTime": at.Format(time.RFC3339), "lastTransitionTime": at.Format(time.RFC3339),
	}
}

// MigrationJobs lists the observed migration Job names.
func (c *Cluster) MigrationJobs() []string { return c.jobsOf("migrations") }

// BackupJobs lists the observed Job names of the backups before migrations.
func (c *Cluster) BackupJobs() []string { return c.jobsOf("backup") }

func (c *Cluster) jobsOf(component string) []string {
	var out []string
	c.Each("Job.batch/v1", func(_ string, obj metacontroller.Object) {
		meta := obj["metadata"].(map[string]any)
		if labels, _ := meta["labels"].(map[string]any); labels["app.kubernetes.io/component"] == component {
			out = append(out, meta["name"].(string))
		}
	})
	return out
}

// RollOut makes every Deployment and StatefulSet report that all its pods run its current
// template and are available, as the workload controllers would once the rollout is done.
func (c *Cluster) RollOut() {
	for _, g := range []string{"Deployment.apps/v1", "StatefulSet.apps/v1"} {
		c.Each(g, func(_ string, obj metacontroller.Object) { rollOut(obj) })
	}
}

// RollOutOne rolls out one workload.
func (c *Cluster) RollOutOne(group, name string) { rollOut(c.Get(group, name)) }

func rollOut(obj metacontroller.Object) {
	meta := obj["metadata"].(map[string]any)
	spec, _ := obj["spec"].(map[string]any)
	n := int64(1)
	if r, ok := spec["replicas"]; ok {
		n = asInt(r)
	}
	obj["status"] = map[string]any{
		"observedGeneration": asInt(meta["generation"]),
		"replicas":           n,
		"updatedReplicas":    n,
		"readyReplicas":      n,
		"availableReplicas":  n,
	}
}

// StartRollout makes a workload report that its controller has seen the new template but no
// new pod is ready yet.
func (c *Cluster) StartRollout(group, name string) {
	obj := c.Get(group, name)
	st, _ := obj["status"].(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	st["observedGeneration"] = asInt(obj["metadata"].(map[string]any)["generation"])
	st["updatedReplicas"] = int64(0)
	obj["status"] = st
}

// PostgresReady makes every CNPG Cluster report what CloudNativePG's operator (v1.27) writes once
// its one instance runs: phase "Cluster in healthy state", the Ready condition True, one ready
// instance. It returns how many Clusters there were.
func (c *Cluster) PostgresReady() int {
	n := 0
	c.Each(PostgresCluster, func(_ string, obj metacontroller.Object) {
		n++
		obj["status"] = map[string]any{
			"phase":          "Cluster in healthy state",
			"instances":      int64(1),
			"readyInstances": int64(1),
			"conditions": []any{map[string]any{
				"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "Cluster is Ready",
				"lastTransitionTime": c.Clock.Format(time.RFC3339),
			}},
		}
	})
	return n
}

// PostgresUnready makes every CNPG Cluster report what CNPG writes while its instance is down.
func (c *Cluster) PostgresUnready() {
	c.Each(PostgresCluster, func(_ string, obj metacontroller.Object) {
		obj["status"] = map[string]any{
			"phase":          "Waiting for the instances to become active",
			"instances":      int64(1),
			"readyInstances": int64(0),
			"conditions": []any{map[string]any{
				"type": "Ready", "status": "False", "reason": "ClusterIsNotReady", "message": "Cluster Is Not Ready",
				"lastTransitionTime": c.Clock.Format(time.RFC3339),
			}},
		}
	})
}

// PostgresBackup is the group of CloudNativePG's Backup.
const PostgresBackup = "Backup.postgresql.cnpg.io/v1"

// PostgresBackups lists the observed CNPG Backup names.
func (c *Cluster) PostgresBackups() []string {
	var out []string
	c.Each(PostgresBackup, func(_ string, obj metacontroller.Object) {
		out = append(out, obj["metadata"].(map[string]any)["name"].(string))
	})
	return out
}

// StartPostgresBackup makes a CNPG Backup report what CNPG (v1.27) writes while it snapshots.
func (c *Cluster) StartPostgresBackup(name string) {
	c.Get(PostgresBackup, name)["status"] = map[string]any{
		"phase": "started", "method": "volumeSnapshot", "startedAt": c.Clock.Format(time.RFC3339),
	}
}

// CompletePostgresBackup makes a CNPG Backup report a completed snapshot backup.
func (c *Cluster) CompletePostgresBackup(name string) {
	c.Get(PostgresBackup, name)["status"] = map[string]any{
		"phase": "completed", "method": "volumeSnapshot",
		"startedAt": c.Clock.Add(-time.Minute).Format(time.RFC3339), "stoppedAt": c.Clock.Format(time.RFC3339),
		"backupId": c.Clock.Format("20060102T150405"),
	}
}

// FailPostgresBackup makes a CNPG Backup report a failure, with CNPG's error text.
func (c *Cluster) FailPostgresBackup(name, reason string) {
	c.Get(PostgresBackup, name)["status"] = map[string]any{
		"phase": "failed", "method": "volumeSnapshot", "error": reason,
		"startedAt": c.Clock.Add(-time.Minute).Format(time.RFC3339), "stoppedAt": c.Clock.Format(time.RFC3339),
	}
}
