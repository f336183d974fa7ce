// Package backup proves the backup before a migration and the way back on real software: the
// shared PostgreSQL of the integration tests, kumo's S3 in process, and the very scripts of the
// backup and restore Jobs (kwok runs no pod, so their commands run here, with the environment the
// Jobs would get from the Secrets the hook answers with).
package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/sivchari/kumo"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/external/aws"
	"github.com/forklift-dev/summon/pkg/external/postgres"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

const (
	v1 = "v1"
	v2 = "v2"
	// backupImage names the image in the Job specs; here the host's tools stand in for it.
	backupImage = "registry.example.com/summon-backup:test"
	region      = "us-east-1"
)

// world is one instance on the real shared PostgreSQL and kumo's S3, driven through the core.
type world struct {
	t       *testing.T
	c       *sim.Cluster
	env     platform.Env
	s3      string
	admin   *s3.Client
	home    string
	appDSN  string
	secrets map[string]map[string][]byte
}

func tools(t *testing.T) {
	for _, tool := range []string{"sh", "pg_dump", "pg_restore", "aws"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("SUMMON_REQUIRE_INTEGRATION") == "1" {
				t.Fatalf("%s is not on PATH: the backup Job's script needs it", tool)
			}
			t.Skipf("%s is not on PATH: the backup Job's script needs it (PostgreSQL's client tools and the AWS CLI)", tool)
		}
	}
}

func newWorld(t *testing.T) *world {
	tools(t)
	adminDSN := testenv.Postgres(t)
	ctx := context.Background()

	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	awsCfg := aws.Config{Region: region, Endpoint: srv.URL, UsePathStyle: true, AccessKeyID: "AKIDSUMMONADMIN", SecretAccessKey: "summon-admin-secret"}
	awsProvider, err := aws.New(ctx, awsCfg)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := aws.NewClients(ctx, awsCfg)
	if err != nil {
		t.Fatal(err)
	}
	pgProvider, err := postgres.New(postgres.Config{AdminDSN: adminDSN, AppSSLMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pgProvider.Close)

	adminURL, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "bk-" + hex.EncodeToString(suffix)
	p := &v1beta1.SummonPlatform{}
	p.Name, p.Namespace = name, "summon-backups"
	p.Spec = v1beta1.Spec{
		Version: v2,
		Database: v1beta1.Database{Shared: &v1beta1.SharedDatabase{
			Host: adminURL.Host, Port: int32(adminURL.Port), SSLMode: "disable",
		}},
	}
	c := sim.NewCluster(p)
	// v1 has migrated and serves; spec.version now asks for v2.
	c.Parent.Status.MigratedVersion = v1

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	deriver, err := credentials.NewDeriver(key)
	if err != nil {
		t.Fatal(err)
	}
	names := external.NamesFor("", p.Namespace, p.Name)
	in := external.Instance{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Names: names,
		DatabasePassword: deriver.Derive(string(p.UID), credentials.DatabasePassword)}
	access, err := awsProvider.Ensure(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	appDSN, err := pgProvider.Ensure(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pgProvider.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete); err != nil {
			t.Logf("dropping the test database: %v", err)
		}
	})

	w := &world{t: t, c: c, s3: srv.URL, admin: admin.S3.(*s3.Client), home: t.TempDir(), appDSN: appDSN, secrets: map[string]map[string][]byte{}}
	w.env = platform.Env{
		Now:         c.Clock,
		Defaults:    v1beta1.HookDefaults{Image: "registry.example.com/app"},
		Credentials: deriver,
		Outside: platform.Outside{AWS: true, Postgres: true, AWSRegion: region,
			Ensured: &platform.Ensured{NewAccessKey: &platform.AccessKey{ID: access.AccessKeyID, Secret: access.SecretAccessKey}}},
		Data: platform.DataServices{RedisImage: children.DefaultRedisImage, BackupImage: backupImage},
	}
	// Buckets are addressed path-style on kumo, as the hook's own clients address them.
	if err := os.MkdirAll(filepath.Join(w.home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.home, ".aws", "config"), []byte("[default]\ns3 =\n    addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// sync runs the core on the simulated cluster and keeps the Secrets it answers with, which is
// what the Jobs' environment comes from.
func (w *world) sync() v1beta1.Status {
	w.t.Helper()
	resp := w.c.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
		w.env.Now = w.c.Clock
		return platform.Sync(req, w.env)
	})
	for _, obj := range resp.Children {
		if obj["kind"] == "Secret" {
			var s corev1.Secret
			decode(w.t, obj, &s)
			w.secrets[s.Name] = s.Data
		}
	}
	return w.c.Parent.Status
}

func decode(t *testing.T, obj any, into any) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

// run runs a Job's one container here: its command, with its environment resolved from the
// Secrets as the kubelet would, plus what points the AWS CLI at kumo.
func (w *world) run(job *batchv1.Job) (string, error) {
	w.t.Helper()
	ct := job.Spec.Template.Spec.Containers[0]
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, from := range ct.EnvFrom {
		data, ok := w.secrets[from.SecretRef.Name]
		if !ok {
			w.t.Fatalf("the Job reads the Secret %s, which the hook does not answer with", from.SecretRef.Name)
		}
		for k, v := range data {
			env = append(env, k+"="+string(v))
		}
	}
	for _, e := range ct.Env {
		v := e.Value
		if ref := e.ValueFrom; ref != nil {
			data, ok := w.secrets[ref.SecretKeyRef.Name]
			if !ok {
				w.t.Fatalf("the Job reads the Secret %s, which the hook does not answer with", ref.SecretKeyRef.Name)
			}
			v = string(data[ref.SecretKeyRef.Key])
		}
		switch e.Name {
		case "HOME", "TMPDIR":
			v = w.home
		}
		env = append(env, e.Name+"="+v)
	}
	env = append(env, "AWS_ENDPOINT_URL="+w.s3)
	for _, a := range ct.Command {
		if strings.Contains(a, string(w.secrets[w.c.Parent.Name+"-database"]["PGPASSWORD"])) {
			w.t.Fatal("the database password is in the Job's command")
		}
	}
	cmd := exec.Command(ct.Command[0], ct.Command[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (w *world) job(name string) *batchv1.Job {
	w.t.Helper()
	obj := w.c.Get("Job.batch/v1", name)
	if obj == nil {
		w.t.Fatalf("no Job %s; Jobs: backups %v, migrations %v", name, w.c.BackupJobs(), w.c.MigrationJobs())
	}
	var j batchv1.Job
	decode(w.t, obj, &j)
	return &j
}

// sql runs statements as the instance's own role, as its app and migrations do.
func (w *world) sql(stmts ...string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.appDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// v1Serves is v1's schema check: the query its app runs.
func (w *world) v1Serves() ([]string, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.appDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT customer FROM orders ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// dumps lists the dumps in the instance's bucket. kumo (v0.33.1) lists a key whose current
// version is a delete marker as if it were there, where S3 leaves it out, and answers a HEAD of
// it too; a GET, which kumo answers as S3 does (NoSuchKey), tells the two apart.
func (w *world) dumps() []string {
	w.t.Helper()
	ctx := context.Background()
	bucket := external.NamesFor("", w.c.Parent.Namespace, w.c.Parent.Name).Bucket
	out, err := w.admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: awssdk.String(children.DumpPrefix)})
	if err != nil {
		w.t.Fatalf("listing the bucket: %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		if !strings.HasSuffix(*o.Key, ".dump") {
			continue
		}
		got, err := w.admin.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: o.Key})
		if err != nil {
			continue
		}
		_ = got.Body.Close()
		keys = append(keys, *o.Key)
	}
	return keys
}

// TestRestoreBringsBackWhatAMigrationDestroyed: v1 serves rows; v2's migration drops the column
// v1 reads, after the backup Job dumped the database into the instance's bucket; summonctl
// restore's Job brings the rows back, and v1 serves again through the gate (backup, migrations,
// rollout).
// v2DestroysAColumn runs the history both restore tests start from: v1 serves three rows, the
// gate dumps the database before v2's migration, and v2's migration drops the column v1 reads.
// It returns the rows v1 served.
func (w *world) v2DestroysAColumn() []string {
	t := w.t
	t.Helper()
	if err := w.sql(
		"CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total integer NOT NULL)",
		"INSERT INTO orders (customer, total) VALUES ('Ada', 12), ('Grace', 30), ('Edsger', 7)",
	); err != nil {
		t.Fatal(err)
	}
	want, err := w.v1Serves()
	if err != nil || len(want) != 3 {
		t.Fatalf("v1's schema check before anything: %v %v", want, err)
	}

	w.sync()
	st := w.sync()
	backupJob := children.NamesFor(w.c.Parent.Name).BackupJob(v2, 0)
	if st.Phase != v1beta1.PhaseMigrating || len(w.c.MigrationJobs()) != 0 {
		t.Fatalf("before the backup: %s (%s), migration Jobs %v", st.Phase, st.Message, w.c.MigrationJobs())
	}
	out, err := w.run(w.job(backupJob))
	if err != nil {
		t.Fatalf("the backup Job's script: %v\n%s", err, out)
	}
	if d := w.dumps(); len(d) != 1 || !strings.HasPrefix(d[0], children.DumpKeyPrefix(v2, 0)) {
		t.Fatalf("dumps in the bucket after the backup: %v\n%s", d, out)
	}
	w.c.CompleteJob(backupJob)
	st = w.sync()
	migrationJob := children.NamesFor(w.c.Parent.Name).MigrationJob(v2, 0)
	if w.c.Get("Job.batch/v1", migrationJob) == nil {
		t.Fatalf("the completed backup did not start v2's migration: %s: %s", st.Phase, st.Message)
	}

	// v2's migration destroys the column v1 reads.
	if err := w.sql("ALTER TABLE orders DROP COLUMN customer"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.v1Serves(); err == nil {
		t.Fatal("v1's schema check passes after the column was dropped: the test proves nothing")
	}
	w.c.CompleteJob(migrationJob)
	w.sync()
	return want
}

func TestRestoreBringsBackWhatAMigrationDestroyed(t *testing.T) {
	w := newWorld(t)
	want := w.v2DestroysAColumn()

	// The way back, as summonctl restore does it: the restore Job of the recorded backup.
	rec, err := platform.FindBackup(w.c.Parent.Status, v2)
	if err != nil {
		t.Fatal(err)
	}
	if rec.FromVersion != v1 || rec.Phase != v1beta1.BackupPhaseCompleted {
		t.Fatalf("the backup's record: %+v", rec)
	}
	restore, err := platform.RestoreJob(w.c.Parent, rec, backupImage, region)
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.run(restore)
	if err != nil {
		t.Fatalf("the restore Job's script: %v\n%s", err, out)
	}
	got, err := w.v1Serves()
	if err != nil {
		t.Fatalf("v1's schema check after the restore: %v\n%s", err, out)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows after the restore %v, want %v", got, want)
	}

	// Back to the backup's version: the gate takes a backup of the restored database, runs v1's
	// migrations (which find nothing to do) and rolls the workloads onto v1.
	w.c.EditSpec(func(s *v1beta1.Spec) { s.Version = rec.FromVersion })
	w.sync()
	out, err = w.run(w.job(children.NamesFor(w.c.Parent.Name).BackupJob(v1, 0)))
	if err != nil {
		t.Fatalf("the second backup: %v\n%s", err, out)
	}
	w.c.CompleteJob(children.NamesFor(w.c.Parent.Name).BackupJob(v1, 0))
	w.sync()
	if _, err := w.v1Serves(); err != nil {
		t.Fatalf("v1's migration (its schema check) after the restore: %v", err)
	}
	w.c.CompleteJob(children.NamesFor(w.c.Parent.Name).MigrationJob(v1, 0))
	w.sync()
	w.sync()
	w.c.RollOut()
	st := w.sync()
	if st.Phase != v1beta1.PhaseReady || st.DeployedVersion != v1 {
		t.Fatalf("after the restore and the way back: %s, deployed %q: %s", st.Phase, st.DeployedVersion, st.Message)
	}
	for c, cs := range st.Components {
		if cs.Version != v1 {
			t.Errorf("%s runs %s, want %s", c, cs.Version, v1)
		}
	}
	if d := w.dumps(); len(d) != 2 {
		t.Errorf("dumps after two backups: %v", d)
	}
}

// TestTheBackupJobKeepsTheNewestDumps runs the backup script more times than spec.backups.keep:
// the oldest dumps go, the newest stay.
func TestTheBackupJobKeepsTheNewestDumps(t *testing.T) {
	w := newWorld(t)
	w.c.EditSpec(func(s *v1beta1.Spec) { s.Backups.Keep = ptr(int32(2)) })
	if err := w.sql("CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	w.sync()
	w.sync()
	job := w.job(children.NamesFor(w.c.Parent.Name).BackupJob(v2, 0))
	var all [][]string
	for range 3 {
		out, err := w.run(job)
		if err != nil {
			t.Fatalf("the backup Job's script: %v\n%s", err, out)
		}
		all = append(all, w.dumps())
		// Dump keys carry the time to the second.
		time.Sleep(1100 * time.Millisecond)
	}
	last := all[len(all)-1]
	if len(last) != 2 {
		t.Fatalf("dumps after three backups with keep 2: %v", last)
	}
	if slices.Contains(last, all[0][0]) {
		t.Errorf("the oldest dump %s was kept: %v", all[0][0], last)
	}
}

func ptr[T any](v T) *T { return &v }
