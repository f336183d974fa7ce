package outside

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/sivchari/kumo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/external/aws"
	"github.com/forklift-dev/summon/pkg/external/postgres"
	"github.com/forklift-dev/summon/pkg/external/rabbitmq"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// countingProxy forwards to target and counts every request.
func countingProxy(t *testing.T, target, system string, c *testenv.Calls) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.Add(system)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	out, _ := url.Parse(srv.URL)
	out.User = u.User
	return out.String()
}

// countingDB counts the statements the PostgreSQL provider sends.
type countingDB struct {
	postgres.DB
	c *testenv.Calls
}

func (d countingDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	d.c.Add("PostgreSQL")
	return d.DB.Exec(ctx, sql, args...)
}

func (d countingDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	d.c.Add("PostgreSQL")
	return d.DB.QueryRow(ctx, sql, args...)
}

// world is the three real systems and the hook's view of them.
type world struct {
	systems *Systems
	calls   *testenv.Calls
	s3      *s3.Client
	iam     *iam.Client
	rabbit  *rabbithole.Client
	pg      *pgxpool.Pool
	awsURL  string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	rabbitURL := testenv.RabbitMQ(t)
	pgDSN := testenv.Postgres(t)
	emulator := kumo.NewServer()
	t.Cleanup(emulator.Close)

	w := &world{calls: &testenv.Calls{}, awsURL: emulator.URL}
	ctx := context.Background()
	awsCfg := aws.Config{Region: "us-east-1", Endpoint: countingProxy(t, emulator.URL, "AWS", w.calls), UsePathStyle: true,
		AccessKeyID: "AKIDSUMMONTEST", SecretAccessKey: "summon-test-secret", CallTimeout: 2 * time.Second}
	awsProvider, err := aws.New(ctx, awsCfg)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := aws.NewClients(ctx, aws.Config{Region: "us-east-1", Endpoint: emulator.URL, UsePathStyle: true,
		AccessKeyID: "AKIDSUMMONTEST", SecretAccessKey: "summon-test-secret"})
	if err != nil {
		t.Fatal(err)
	}
	w.s3, w.iam = clients.S3.(*s3.Client), clients.IAM.(*iam.Client)

	rmq, err := rabbitmq.New(rabbitmq.Config{ManagementURL: countingProxy(t, rabbitURL, "RabbitMQ", w.calls), AMQPHost: "127.0.0.1", CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(rabbitURL)
	pw, _ := u.User.Password()
	w.rabbit, err = rabbithole.NewClient("http://"+u.Host, u.User.Username(), pw)
	if err != nil {
		t.Fatal(err)
	}

	w.pg, err = pgxpool.New(ctx, pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.pg.Close)
	pgProvider, err := postgres.NewWithDB(countingDB{DB: w.pg, c: w.calls}, postgres.Config{AdminDSN: pgDSN, CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.systems = &Systems{
		AWS: awsProvider, RabbitMQ: rmq, Postgres: pgProvider,
		View: platform.Outside{AWS: true, RabbitMQ: true, Postgres: true, AWSRegion: "us-east-1", RabbitAMQPAddr: "127.0.0.1:5672"},
	}
	return w
}

var testKey = []byte("summon-test-master-key-0123456789abcdef")

func (w *world) env(c *sim.Cluster) platform.Env {
	d, err := credentials.NewDeriver(testKey)
	if err != nil {
		panic(err)
	}
	return platform.Env{Now: c.Clock, Defaults: v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"}, Credentials: d, Outside: w.systems.View}
}

// sync is one call of the sync hook, as hooks/sync makes it: plan, call out if planned, decide.
func (w *world) sync(c *sim.Cluster) *metacontroller.SyncResponse {
	return c.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
		env := w.env(c)
		if plan := platform.PlanEnsure(req, env); plan.Needed {
			env.Outside.Ensured = w.systems.Ensure(context.Background(), plan)
		}
		return platform.Sync(req, env)
	})
}

// finalize is one call of the finalize hook, as hooks/finalize makes it.
func (w *world) finalize(c *sim.Cluster) *metacontroller.SyncResponse {
	req := c.Request()
	req.Finalizing = true
	env := w.env(c)
	resp := platform.Finalize(req, env, w.systems.Teardown(context.Background(), platform.PlanFinalize(req, env)))
	c.Apply(resp)
	return resp
}

// install takes a new instance to Ready.
func (w *world) install(t *testing.T, c *sim.Cluster) {
	t.Helper()
	for range 12 {
		st := w.sync(c).Status.(v1beta1.Status)
		if st.Phase == v1beta1.PhaseReady {
			return
		}
		for _, j := range c.MigrationJobs() {
			c.CompleteJob(j)
		}
		c.RollOut()
	}
	t.Fatalf("did not reach Ready: %s: %s", c.Parent.Status.Phase, c.Parent.Status.Message)
}

func instance(name string, policy v1beta1.DeletionPolicy) *v1beta1.SummonPlatform {
	return &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "outside-test", UID: types.UID("uid-" + name)},
		Spec: v1beta1.Spec{
			Version:        "v1",
			Database:       v1beta1.Database{Shared: &v1beta1.SharedDatabase{Host: "127.0.0.1"}},
			DeletionPolicy: policy,
		},
	}
}

// TestLifecycleAgainstRealSystems runs an instance through install, steady state, a version bump
// and deletion against the real systems, counting every call that reaches them, then checks that
// the deletion left exactly what the policy says.
func TestLifecycleAgainstRealSystems(t *testing.T) {
	for _, policy := range []v1beta1.DeletionPolicy{v1beta1.DeletionPolicyRetain, v1beta1.DeletionPolicyDelete} {
		t.Run(string(policy), func(t *testing.T) {
			w := newWorld(t)
			c := sim.NewCluster(instance("life-"+strings.ToLower(string(policy)), policy))
			names := w.systems.View.ExternalNames(c.Parent.Namespace, c.Parent.Name)
			t.Cleanup(func() { w.forceDelete(c) })

			w.install(t, c)
			t.Logf("fresh install: %v", w.calls.Take())
			if st := c.Parent.Status; st.External == nil || st.External.Bucket != names.Bucket {
				t.Errorf("status.external = %+v, want the bucket %s named", st.External, names.Bucket)
			}

			for range 100 {
				w.sync(c)
			}
			if got := w.calls.Take(); len(got) != 0 {
				t.Errorf("100 steady syncs called out: %v", got)
			}

			c.EditSpec(func(s *v1beta1.Spec) { s.Version = "v2" })
			w.install(t, c)
			t.Logf("version bump: %v", w.calls.Take())

			var resp *metacontroller.SyncResponse
			for i := range 3 {
				resp = w.finalize(c)
				t.Logf("finalize call %d: finalized=%v %v", i+1, resp.Finalized, w.calls.Take())
				if !resp.Finalized {
					t.Fatalf("finalize call %d did not finish: %s", i+1, c.Parent.Status.Message)
				}
			}
			w.checkDeleted(t, names, policy)
		})
	}
}

// checkDeleted checks the deletion policy's table (DESIGN.md section 6) on the real systems.
func (w *world) checkDeleted(t *testing.T, names external.Names, policy v1beta1.DeletionPolicy) {
	t.Helper()
	ctx := context.Background()
	keep := policy == v1beta1.DeletionPolicyRetain

	_, err := w.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: awssdk.String(names.Bucket)})
	if exists := err == nil; exists != keep {
		t.Errorf("bucket exists = %v, want %v (HeadBucket: %v)", exists, keep, err)
	}
	if _, err := w.iam.GetUser(ctx, &iam.GetUserInput{UserName: awssdk.String(names.IAMUser)}); err == nil {
		t.Error("the IAM user is still there: access must always be revoked")
	}
	if _, err := w.rabbit.GetUser(names.RabbitUser); err == nil {
		t.Error("the RabbitMQ user is still there: access must always be revoked")
	}
	_, err = w.rabbit.GetVhost(names.RabbitVhost)
	if exists := err == nil; exists != keep {
		t.Errorf("vhost exists = %v, want %v", exists, keep)
	}
	var dbs, logins int
	if err := w.pg.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, names.Database).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	if err := w.pg.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1 AND rolcanlogin`, names.DatabaseRole).Scan(&logins); err != nil {
		t.Fatal(err)
	}
	if (dbs == 1) != keep {
		t.Errorf("database exists = %v, want %v", dbs == 1, keep)
	}
	if logins != 0 {
		t.Error("the database role can still log in")
	}
}

// forceDelete removes whatever a test left on the shared servers.
func (w *world) forceDelete(c *sim.Cluster) {
	c.EditSpec(func(s *v1beta1.Spec) { s.DeletionPolicy = v1beta1.DeletionPolicyDelete })
	for range 3 {
		if w.finalize(c).Finalized {
			return
		}
	}
}

// TestFailingSystemKeepsChildrenAndRecovers stops each system in turn (a closed port, an endpoint
// answering 500, one that never answers): the instance reports Error naming the system, keeps
// every child, asks to be synced again, and converges once the system is back.
func TestFailingSystemKeepsChildrenAndRecovers(t *testing.T) {
	closed := testenv.ClosedAddr(t)
	answering500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	t.Cleanup(answering500.Close)
	// The body is read first: only then does the server notice a client that gave up, and end
	// the request (STS's first call has a body, where HeadBucket had none).
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(hanging.Close)

	tests := map[string]struct {
		system  string
		breakIt func(t *testing.T, s *Systems)
	}{
		"RabbitMQ is down": {system: "RabbitMQ", breakIt: func(t *testing.T, s *Systems) {
			p, err := rabbitmq.New(rabbitmq.Config{ManagementURL: "http://admin:pw@" + closed, CallTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s.RabbitMQ = p
		}},
		"PostgreSQL is down": {system: "PostgreSQL", breakIt: func(t *testing.T, s *Systems) {
			p, err := postgres.New(postgres.Config{AdminDSN: "postgres://admin:pw@" + closed + "/postgres?sslmode=disable&connect_timeout=1", CallTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			s.Postgres = p
		}},
		"AWS answers 500": {system: "AWS", breakIt: func(t *testing.T, s *Systems) { s.AWS = awsAt(t, answering500.URL) }},
		"AWS hangs":       {system: "AWS", breakIt: func(t *testing.T, s *Systems) { s.AWS = awsAt(t, hanging.URL) }},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			w := newWorld(t)
			c := sim.NewCluster(instance("faults-"+strings.ToLower(strings.ReplaceAll(tt.system, " ", "")), v1beta1.DeletionPolicyDelete))
			t.Cleanup(func() { w.forceDelete(c) })
			w.install(t, c)
			before := c.Names()
			working := *w.systems

			tt.breakIt(t, w.systems)
			c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptrTo(int32(2)) })
			resp := w.sync(c)
			st := resp.Status.(v1beta1.Status)
			if st.Phase != v1beta1.PhaseError || !strings.Contains(st.Message, tt.system) {
				t.Errorf("phase %s %q, want Error naming %s", st.Phase, st.Message, tt.system)
			}
			if resp.ResyncAfterSeconds <= 0 {
				t.Error("a failing system must ask for a resync")
			}
			if after := c.Names(); !slices.Equal(before, after) {
				t.Errorf("children changed while %s failed:\nbefore %v\nafter  %v", tt.system, before, after)
			}
			for _, secret := range []string{"pw", string(testKey)} {
				if strings.Contains(st.Message, ":"+secret+"@") || strings.Contains(st.Message, secret+"@") {
					t.Errorf("status message holds a secret: %q", st.Message)
				}
			}

			*w.systems = working
			w.install(t, c)
			cond := findCondition(c.Parent.Status.Conditions, v1beta1.ConditionExternal)
			if cond == nil || cond.Status != metav1.ConditionTrue {
				t.Errorf("after recovery ExternalResourcesReady = %+v, want True", cond)
			}
		})
	}
}

func awsAt(t *testing.T, endpoint string) *aws.Provider {
	t.Helper()
	p, err := aws.New(context.Background(), aws.Config{Region: "us-east-1", Endpoint: endpoint, UsePathStyle: true,
		AccessKeyID: "AKIDSUMMONTEST", SecretAccessKey: "summon-test-secret", CallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }
