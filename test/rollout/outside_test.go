package rollout

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/internal/testing/testfiles"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
)

// TestProviderStoppedDuringBumpKeepsServing stops the instance's PostgreSQL (a private server of
// this test, never the shared one other packages use) and then bumps the version: the hook can't
// check the database for the new generation, so the status names PostgreSQL and nothing moves,
// while the old version keeps serving; once the server is back, the bump goes through.
func TestProviderStoppedDuringBumpKeepsServing(t *testing.T) {
	c := cluster(t)
	pg := startPrivatePostgres(t)
	cl := clientsOf(c)
	ns := newNamespace(t, cl.kube, "provider")
	tl := record(t, cl.kube, ns)
	hook := startHook(t, "SUMMON_POSTGRES_ADMIN_DSN="+pg.dsn())
	startController(t, c, hook.URL(), standin.DynamicApply)

	spec := platformSpec("v1", 2)
	spec["secrets"] = []any{}
	spec["database"] = map[string]any{"shared": map[string]any{"host": loopback, "port": int64(pg.port), "sslMode": "disable"}}
	in := apply(t, cl, ns, spec)
	in.waitReady("v1")
	names := external.NamesFor("", ns, in.name)
	if !pg.databaseExists(t, names.Database) {
		t.Fatalf("database %s was not created", names.Database)
	}

	pg.stop(t)
	in.patchSpec(map[string]any{"version": "v2"})
	st := in.waitStatus("in Error naming PostgreSQL", func(p *unstructured.Unstructured, st v1beta1.Status) bool {
		return st.Phase == v1beta1.PhaseError && st.ObservedGeneration == p.GetGeneration()
	})
	if !strings.Contains(st.Message, "PostgreSQL") {
		t.Errorf("status message %q doesn't name PostgreSQL", st.Message)
	}
	if c := condition(st, v1beta1.ConditionExternal); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "ExternalError" {
		t.Errorf("ExternalResourcesReady condition %+v, want False with reason ExternalError", c)
	}
	in.expectWorkloadsOn("v1")

	pg.start(t)
	in.waitReady("v2")
	replay(t, tl.snapshot(t), neverFewerServingWeb(2), migratedBeforeRun(), oldServesWhileMigrating(2), oneBeat())
	in.expectWorkloadsOn("v2")
}

// TestDeletionPolicyLeavesExactlyWhatItSays deletes an instance with each policy and looks at the
// real PostgreSQL and RabbitMQ afterwards. Retain: the database and the vhost stay, the role
// stays without its login, the RabbitMQ user is gone. Delete: all of them are gone. Either way
// the children go with the parent (the garbage collector). AWS is not in it: kumo runs in process
// only, and the hook runs as its own binary here.
func TestDeletionPolicyLeavesExactlyWhatItSays(t *testing.T) {
	for _, policy := range []v1beta1.DeletionPolicy{v1beta1.DeletionPolicyRetain, v1beta1.DeletionPolicyDelete} {
		t.Run(string(policy), func(t *testing.T) {
			c := cluster(t)
			dsn := testenv.Postgres(t)
			rabbitURL := testenv.RabbitMQ(t)
			cl := clientsOf(c)
			// A namespace no earlier run used: the shared servers outlive test runs.
			ns := newNamespace(t, cl.kube, fmt.Sprintf("policy-%s-%d", strings.ToLower(string(policy)), time.Now().Unix()%100000))
			names := external.NamesFor("", ns, "car1")
			pgAdmin := postgresAdmin{dsn: dsn}
			rabbit := rabbitAdmin(t, rabbitURL)
			t.Cleanup(func() { pgAdmin.drop(t, names); _, _ = rabbit.DeleteVhost(names.RabbitVhost) })

			hook := startHook(t, "SUMMON_POSTGRES_ADMIN_DSN="+dsn, "SUMMON_RABBITMQ_URL="+rabbitURL)
			startController(t, c, hook.URL(), standin.DynamicApply)
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			port, _ := strconv.Atoi(u.Port())
			spec := platformSpec("v1", 1)
			spec["secrets"] = []any{}
			spec["deletionPolicy"] = string(policy)
			spec["database"] = map[string]any{"shared": map[string]any{"host": u.Hostname(), "port": int64(port), "sslMode": "disable"}}
			in := apply(t, cl, ns, spec)
			in.waitReady("v1")

			want := outsideState{database: true, role: true, roleLogin: true, vhost: true, rabbitUser: true}
			if got := observeOutside(t, pgAdmin, rabbit, names); got != want {
				t.Fatalf("before deletion: %+v, want %+v", got, want)
			}
			in.deleteAndWait()
			if policy == v1beta1.DeletionPolicyRetain {
				want = outsideState{database: true, role: true, vhost: true}
			} else {
				want = outsideState{}
			}
			if got := observeOutside(t, pgAdmin, rabbit, names); got != want {
				t.Errorf("after deletion with %s: %+v, want %+v", policy, got, want)
			}
			waitFor(t, giveUp, "the garbage collector to delete the children", func(ctx context.Context) (bool, string) {
				left, err := in.childNames(ctx)
				if err != nil {
					return false, err.Error()
				}
				return len(left) == 0, fmt.Sprintf("%d children left: %v", len(left), left)
			})
		})
	}
}

// outsideState is what exists of an instance outside the cluster.
type outsideState struct {
	database, role, roleLogin, vhost, rabbitUser bool
}

func observeOutside(t *testing.T, pg postgresAdmin, rabbit *rabbithole.Client, names external.Names) outsideState {
	t.Helper()
	var s outsideState
	conn := pg.connect(t)
	defer conn.Close(context.Background())
	ctx := t.Context()
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, names.Database).Scan(&s.database); err != nil {
		t.Fatal(err)
	}
	err := conn.QueryRow(ctx, `SELECT rolcanlogin FROM pg_roles WHERE rolname = $1`, names.DatabaseRole).Scan(&s.roleLogin)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		t.Fatal(err)
	default:
		s.role = true
	}
	s.vhost = rabbitExists(t, func() error { _, err := rabbit.GetVhost(names.RabbitVhost); return err })
	s.rabbitUser = rabbitExists(t, func() error { _, err := rabbit.GetUser(names.RabbitUser); return err })
	return s
}

func rabbitExists(t *testing.T, get func() error) bool {
	t.Helper()
	err := get()
	var e rabbithole.ErrorResponse
	if errors.As(err, &e) && e.StatusCode == 404 {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func rabbitAdmin(t *testing.T, managementURL string) *rabbithole.Client {
	t.Helper()
	u, err := url.Parse(managementURL)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil
	c, err := rabbithole.NewClient(u.String(), user, pass)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(5 * time.Second)
	return c
}

// postgresAdmin looks at a PostgreSQL server as its admin.
type postgresAdmin struct{ dsn string }

func (p postgresAdmin) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// drop removes what a Retain left, so that the shared server doesn't fill up run after run.
func (p postgresAdmin) drop(t *testing.T, names external.Names) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		t.Errorf("cleaning up: %v", err)
		return
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`DROP DATABASE IF EXISTS ` + pgx.Identifier{names.Database}.Sanitize() + ` WITH (FORCE)`,
		`DROP ROLE IF EXISTS ` + pgx.Identifier{names.DatabaseRole}.Sanitize(),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Errorf("cleaning up: %s: %v", q, err)
		}
	}
}

// privatePostgres is a PostgreSQL server of one test, on its own loopback port, that the test may
// stop and start. It runs as the postgres OS user (initdb and postgres refuse root), like
// hack/postgres.sh's.
type privatePostgres struct {
	bindir, dir string
	port        int
}

// privatePostgresPort is its port: SUMMON_ROLLOUT_POSTGRES_PORT, or one of the range kept for
// this test package.
func privatePostgresPort() int {
	if p, err := strconv.Atoi(os.Getenv("SUMMON_ROLLOUT_POSTGRES_PORT")); err == nil {
		return p
	}
	return 56432
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bindir := os.Getenv("SUMMON_POSTGRES_BINDIR")
	if bindir == "" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		slices.Sort(dirs)
		if len(dirs) > 0 {
			bindir = dirs[len(dirs)-1]
		}
	}
	pgUser, err := user.Lookup("postgres")
	if bindir == "" || err != nil || os.Geteuid() != 0 {
		msg := "a private PostgreSQL needs Debian's postgresql (hack/postgres.sh installs it), its postgres user, and root to run it as that user"
		if os.Getenv("SUMMON_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "summon-rollout-pg-")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	p := &privatePostgres{bindir: bindir, dir: dir, port: privatePostgresPort()}
	p.run(t, "initdb", "-D", p.data(), "-U", "summon_admin", "--auth=trust", "-E", "UTF8", "--no-sync")
	p.start(t)
	t.Cleanup(func() {
		_ = p.pgCtl("stop", "-m", "fast", "-w")
		if t.Failed() {
			t.Logf("private PostgreSQL log, last lines:\n%s", testfiles.Tail(filepath.Join(dir, "postgres.log"), 20))
		}
		os.RemoveAll(dir)
	})
	return p
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

func (p *privatePostgres) dsn() string {
	return fmt.Sprintf("postgres://summon_admin@%s:%d/postgres?sslmode=disable", loopback, p.port)
}

// start starts the server and waits until it takes connections.
func (p *privatePostgres) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=%s -k %s -c fsync=off", p.port, loopback, p.dir)
	if err := p.pgCtl("start", "-w", "-l", filepath.Join(p.dir, "postgres.log"), "-o", opts); err != nil {
		t.Fatalf("starting the private PostgreSQL on port %d: %v", p.port, err)
	}
}

// stop stops the server (pg_ctl signals the postmaster by the PID in its pid file).
func (p *privatePostgres) stop(t *testing.T) {
	t.Helper()
	if err := p.pgCtl("stop", "-m", "fast", "-w"); err != nil {
		t.Fatalf("stopping the private PostgreSQL: %v", err)
	}
}

func (p *privatePostgres) pgCtl(args ...string) error {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bindir, "pg_ctl"), "-D", p.data()}, args...)...)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", args[0], err, out)
	}
	return nil
}

func (p *privatePostgres) run(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bindir, bin)}, args...)...)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
}

func (p *privatePostgres) databaseExists(t *testing.T, name string) bool {
	t.Helper()
	conn := postgresAdmin{dsn: p.dsn()}.connect(t)
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
