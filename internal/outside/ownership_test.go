package outside

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
)

// tenantState is what a tenant holds outside the cluster, as an admin sees it: enough to tell
// that nothing of it changed (its data, its password, its access keys).
type tenantState struct {
	Rows          []string
	RoleVerifier  string
	RoleCanLogin  bool
	RoleNote      string
	DatabaseNote  string
	Objects       []string
	BucketTag     string
	AccessKeys    []string
	UserTag       string
	RabbitHash    string
	RabbitTags    []string
	VhostNote     string
	VhostExists   bool
	DatabaseFound bool
}

func (w *world) tenantState(t *testing.T, names external.Names) tenantState {
	t.Helper()
	ctx := context.Background()
	var s tenantState
	var role, db, verifier *string
	if err := w.pg.QueryRow(ctx, `SELECT
		(SELECT rolpassword FROM pg_authid WHERE rolname = $1),
		coalesce((SELECT rolcanlogin FROM pg_roles WHERE rolname = $1), false),
		(SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1),
		(SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $2),
		EXISTS (SELECT 1 FROM pg_database WHERE datname = $2)`, names.DatabaseRole, names.Database).
		Scan(&verifier, &s.RoleCanLogin, &role, &db, &s.DatabaseFound); err != nil {
		t.Fatal(err)
	}
	if verifier != nil {
		s.RoleVerifier = *verifier
	}
	if role != nil {
		s.RoleNote = *role
	}
	if db != nil {
		s.DatabaseNote = *db
	}
	if s.DatabaseFound {
		s.Rows = w.rows(t, names.Database)
	}
	if out, err := w.s3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: awssdk.String(names.Bucket)}); err == nil {
		for _, v := range out.Versions {
			s.Objects = append(s.Objects, awssdk.ToString(v.Key))
		}
		tags, err := w.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: awssdk.String(names.Bucket)})
		if err == nil {
			for _, tag := range tags.TagSet {
				s.BucketTag += awssdk.ToString(tag.Key) + "=" + awssdk.ToString(tag.Value)
			}
		}
	}
	if out, err := w.iam.GetUser(ctx, &iam.GetUserInput{UserName: awssdk.String(names.IAMUser)}); err == nil {
		for _, tag := range out.User.Tags {
			s.UserTag += awssdk.ToString(tag.Key) + "=" + awssdk.ToString(tag.Value)
		}
		keys, err := w.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: awssdk.String(names.IAMUser)})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys.AccessKeyMetadata {
			s.AccessKeys = append(s.AccessKeys, awssdk.ToString(k.AccessKeyId))
		}
	}
	if u, err := w.rabbit.GetUser(names.RabbitUser); err == nil {
		s.RabbitHash, s.RabbitTags = u.PasswordHash, u.Tags
	}
	if v, err := w.rabbit.GetVhost(names.RabbitVhost); err == nil {
		s.VhostExists, s.VhostNote = true, v.Description
	}
	return s
}

// rows reads the tenant's table as the admin.
func (w *world) rows(t *testing.T, database string) []string {
	t.Helper()
	ctx := context.Background()
	cfg := w.pg.Config().ConnConfig.Copy()
	cfg.Database = database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out []string
	rows, err := conn.Query(ctx, `SELECT v FROM tenant_data ORDER BY v`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// writeData puts a row in the tenant's database (as the tenant, with its own password: the
// password works) and an object in its bucket.
func (w *world) writeData(t *testing.T, c *sim.Cluster, names external.Names, value string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.databaseURL(c, names))
	if err != nil {
		t.Fatalf("the tenant can't log in to its database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS tenant_data (v text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO tenant_data VALUES ($1)`, value); err != nil {
		t.Fatal(err)
	}
	if _, err := w.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: awssdk.String(names.Bucket), Key: awssdk.String(value), Body: strings.NewReader(value)}); err != nil {
		t.Fatal(err)
	}
}

// databaseURL is what the tenant's app is given: its role and its derived password.
func (w *world) databaseURL(c *sim.Cluster, names external.Names) string {
	d, err := credentials.NewDeriver(testKey)
	if err != nil {
		panic(err)
	}
	cfg := w.pg.Config().ConnConfig
	u := url.URL{Scheme: "postgres", User: url.UserPassword(names.DatabaseRole, d.Derive(string(c.Parent.UID), credentials.DatabasePassword)),
		Host: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), Path: "/" + names.Database, RawQuery: "sslmode=disable"}
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// collidingNamespaces finds, with the hash shortened to 3 characters, two namespaces whose
// instances named name get the same bucket, IAM user, role and database: they agree on more
// than the cut keeps, and their hashes match.
func collidingNamespaces(t *testing.T, name string) (string, string) {
	t.Helper()
	prefix := "collide-" + randomHex(4) + "-"
	prefix += strings.Repeat("x", 60-len(prefix))
	seen := map[external.Names]string{}
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	for i := range len(digits) * len(digits) * len(digits) {
		ns := prefix + string([]byte{digits[i/1296], digits[i/36%36], digits[i%36]})
		n := external.NamesFor("", ns, name)
		n.RabbitVhost, n.RabbitUser = "", "" // namespace.name: unique without a hash
		if other, ok := seen[n]; ok {
			return other, ns
		}
		seen[n] = ns
	}
	t.Fatal("no colliding pair: the test hook did not shorten the hash")
	return "", ""
}

func tenant(namespace, name, uid string, policy v1beta1.DeletionPolicy) *v1beta1.SummonPlatform {
	return &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(uid)},
		Spec: v1beta1.Spec{
			Version:        "v1",
			Database:       v1beta1.Database{Shared: &v1beta1.SharedDatabase{Host: "127.0.0.1"}},
			DeletionPolicy: policy,
		},
	}
}

func externalCondition(c *sim.Cluster) metav1.Condition {
	if cond := findCondition(c.Parent.Status.Conditions, v1beta1.ConditionExternal); cond != nil {
		return *cond
	}
	return metav1.Condition{}
}

// Two SummonPlatforms whose names collide (the hash shortened through the test hook, the pair
// found by the test) share a bucket, an IAM user, a role and a database name. The second one is
// refused with OwnedByAnotherInstance, and the first one's data, password and access key stay
// as they were: through the second's syncs, and through its finalize under both policies, which
// finishes without waiting on what is not its own.
func TestACollidingInstanceIsRefusedAndTheFirstKeepsItsData(t *testing.T) {
	defer external.SetHashCharsForTest(3)()
	for _, policy := range []v1beta1.DeletionPolicy{v1beta1.DeletionPolicyRetain, v1beta1.DeletionPolicyDelete} {
		t.Run(string(policy), func(t *testing.T) {
			w := newWorld(t)
			nsA, nsB := collidingNamespaces(t, "app")
			victim := sim.NewCluster(tenant(nsA, "app", "uid-victim-"+randomHex(4), v1beta1.DeletionPolicyDelete))
			attacker := sim.NewCluster(tenant(nsB, "app", "uid-attacker-"+randomHex(4), policy))
			t.Cleanup(func() { w.forceDelete(attacker); w.forceDelete(victim) })
			names := w.systems.View.ExternalNames(nsA, "app")
			if theirs := w.systems.View.ExternalNames(nsB, "app"); theirs.Database != names.Database || theirs.Bucket != names.Bucket || theirs.IAMUser != names.IAMUser {
				t.Fatalf("the pair does not collide: %+v %+v", names, theirs)
			}

			w.install(t, victim)
			w.writeData(t, victim, names, "victim's row")
			before := w.tenantState(t, names)
			if len(before.AccessKeys) != 1 || !before.RoleCanLogin || len(before.Rows) != 1 {
				t.Fatalf("the victim is not set up: %+v", before)
			}

			for i := range 3 {
				resp := w.sync(attacker)
				cond := externalCondition(attacker)
				if cond.Status != metav1.ConditionFalse || cond.Reason != "OwnedByAnotherInstance" {
					t.Fatalf("attacker's sync %d: ExternalResourcesReady %s %s: %s", i+1, cond.Status, cond.Reason, cond.Message)
				}
				if strings.Contains(cond.Message, string(victim.Parent.UID)) {
					t.Errorf("the attacker's status shows the victim's UID: %s", cond.Message)
				}
				if resp.ResyncAfterSeconds <= 0 {
					t.Error("a refused instance must be looked at again")
				}
				attacker.Clock = attacker.Clock.Add(time.Minute)
			}
			if diff := cmp.Diff(before, w.tenantState(t, names)); diff != "" {
				t.Fatalf("the attacker's syncs changed the victim's resources (-before +after):\n%s", diff)
			}

			resp := w.finalize(attacker)
			if !resp.Finalized {
				t.Errorf("the attacker's finalize waits on what is not its own: %s", attacker.Parent.Status.Message)
			}
			if !strings.Contains(attacker.Parent.Status.Message, "left alone") {
				t.Errorf("the finalize status does not say what it left alone: %s", attacker.Parent.Status.Message)
			}
			if diff := cmp.Diff(before, w.tenantState(t, names)); diff != "" {
				t.Fatalf("the attacker's finalize (%s) changed the victim's resources (-before +after):\n%s", policy, diff)
			}

			// The victim still works: a spec change ensures everything again, with its own key.
			victim.EditSpec(func(s *v1beta1.Spec) { s.Version = "v2" })
			w.install(t, victim)
			if diff := cmp.Diff(before, w.tenantState(t, names)); diff != "" {
				t.Errorf("the victim's own sync changed its resources (-before +after):\n%s", diff)
			}
		})
	}
}

// A recreated SummonPlatform (same namespace and name, a new UID) does not take over what its
// predecessor retained: it is refused, with a status naming the annotation to add, and nothing
// of the retained data changes. With the annotation it adopts the data: the new password works
// on the old rows, the bucket keeps its objects, and the marks carry the new UID.
func TestRetainedDataIsAdoptedOnlyOnPurpose(t *testing.T) {
	w := newWorld(t)
	ns := "adopt-" + randomHex(4)
	old := sim.NewCluster(tenant(ns, "app", "uid-old-"+randomHex(4), v1beta1.DeletionPolicyRetain))
	names := w.systems.View.ExternalNames(ns, "app")
	w.install(t, old)
	w.writeData(t, old, names, "kept row")
	if resp := w.finalize(old); !resp.Finalized {
		t.Fatalf("finalize: %s", old.Parent.Status.Message)
	}
	retained := w.tenantState(t, names)

	recreated := sim.NewCluster(tenant(ns, "app", "uid-new-"+randomHex(4), v1beta1.DeletionPolicyDelete))
	t.Cleanup(func() { w.forceDelete(recreated) })
	w.sync(recreated)
	cond := externalCondition(recreated)
	if cond.Reason != "OwnedByAnotherInstance" || !strings.Contains(cond.Message, v1beta1.AnnotationAdoptFromUID+"="+string(old.Parent.UID)) {
		t.Fatalf("without the annotation: %s %s, want OwnedByAnotherInstance naming the annotation", cond.Reason, cond.Message)
	}
	after := w.tenantState(t, names)
	// The recreated instance's own RabbitMQ user does not exist yet (its vhost was refused).
	if diff := cmp.Diff(retained, after); diff != "" {
		t.Fatalf("a refused sync changed the retained data (-before +after):\n%s", diff)
	}

	recreated.Parent.Annotations = map[string]string{v1beta1.AnnotationAdoptFromUID: string(old.Parent.UID)}
	recreated.Clock = recreated.Clock.Add(time.Minute)
	w.install(t, recreated)
	adopted := w.tenantState(t, names)
	if diff := cmp.Diff(retained.Rows, adopted.Rows); diff != "" {
		t.Errorf("rows after adoption (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(retained.Objects, adopted.Objects); diff != "" {
		t.Errorf("objects after adoption (-want +got):\n%s", diff)
	}
	mark := external.Mark{UID: string(recreated.Parent.UID)}
	if adopted.RoleNote != mark.Text() || adopted.DatabaseNote != mark.Text() || adopted.VhostNote != mark.Text() ||
		adopted.BucketTag != external.OwnerKey+"="+mark.Value() {
		t.Errorf("marks after adoption: %+v, want %s everywhere", adopted, mark.Value())
	}
	w.writeData(t, recreated, names, "new row") // the new password works on the old database
}

// An instance created before owner marks (and before the 80-bit names) keeps its data: its
// status names its resources, which carry no mark in PostgreSQL and RabbitMQ, and the first
// sync after the upgrade marks them as its own and goes on using them.
func TestAnInstanceFromBeforeOwnerMarksKeepsItsData(t *testing.T) {
	w := newWorld(t)
	ns := "legacy-" + randomHex(4)
	c := sim.NewCluster(tenant(ns, "app", "uid-legacy-"+randomHex(4), v1beta1.DeletionPolicyDelete))
	t.Cleanup(func() { w.forceDelete(c) })
	legacy := external.LegacyNamesFor(w.systems.View.BucketPrefix, ns, "app")
	if legacy.Database == w.systems.View.ExternalNames(ns, "app").Database {
		t.Fatal("the legacy and the new names are the same: the test proves nothing")
	}

	// What the hook before owner marks left: the resources under the legacy names, with no mark
	// in PostgreSQL and RabbitMQ (the bucket and the user were already tagged with the UID), and
	// a status that records them.
	in := w.instanceFor(c, legacy)
	if _, err := w.systems.AWS.Ensure(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if _, err := w.systems.RabbitMQ.Ensure(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if _, err := w.systems.Postgres.Ensure(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, stmt := range []string{`COMMENT ON ROLE %[1]s IS NULL`, `COMMENT ON DATABASE %[2]s IS NULL`} {
		if _, err := w.pg.Exec(ctx, fmt.Sprintf(stmt, pgx.Identifier{legacy.DatabaseRole}.Sanitize(), pgx.Identifier{legacy.Database}.Sanitize())); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.rabbit.PutVhost(legacy.RabbitVhost, rabbithole.VhostSettings{}); err != nil {
		t.Fatal(err)
	}
	w.writeData(t, c, legacy, "from before")
	c.Parent.Status.External = &v1beta1.ExternalStatus{Bucket: legacy.Bucket, IAMUser: legacy.IAMUser, RabbitVhost: legacy.RabbitVhost, Database: legacy.Database}

	w.install(t, c)
	if got := c.Parent.Status.External; got == nil || got.Database != legacy.Database || got.Bucket != legacy.Bucket {
		t.Errorf("status.external = %+v, want the legacy names kept", got)
	}
	st := w.tenantState(t, legacy)
	if diff := cmp.Diff([]string{"from before"}, st.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	mark := external.Mark{UID: string(c.Parent.UID)}.Text()
	if st.RoleNote != mark || st.DatabaseNote != mark || st.VhostNote != mark {
		t.Errorf("the legacy resources are not marked as the instance's: %+v", st)
	}
	w.writeData(t, c, legacy, "after the upgrade")
	if fresh := w.tenantState(t, w.systems.View.ExternalNames(ns, "app")); fresh.DatabaseFound || fresh.VhostExists && fresh.VhostNote != mark {
		t.Errorf("a second set of resources was made under the new names: %+v", fresh)
	}
}

// instanceFor is the instance as the providers see it, under the given names.
func (w *world) instanceFor(c *sim.Cluster, names external.Names) external.Instance {
	d, err := credentials.NewDeriver(testKey)
	if err != nil {
		panic(err)
	}
	uid := string(c.Parent.UID)
	return external.Instance{Namespace: c.Parent.Namespace, Name: c.Parent.Name, UID: uid, Names: names,
		DatabasePassword: d.Derive(uid, credentials.DatabasePassword), RabbitPassword: d.Derive(uid, credentials.RabbitMQPassword)}
}
