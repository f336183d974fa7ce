package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
)

// countingDB counts the statements sent to the real server, by their first two words.
type countingDB struct {
	testenv.Calls
	db DB
}

// record counts a statement by its first two words ("CREATE ROLE", "SELECT rolcanlogin,").
func (c *countingDB) record(sql string) {
	words := strings.Fields(sql)
	c.Add(strings.Join(words[:min(2, len(words))], " "))
}

func (c *countingDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.record(sql)
	return c.db.Exec(ctx, sql, args...)
}

func (c *countingDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.record(sql)
	return c.db.QueryRow(ctx, sql, args...)
}

func (c *countingDB) take() map[string]int { return c.Take() }

// admin is a superuser connection for looking at what the provider did.
func admin(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connecting as admin: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func newProvider(t *testing.T, dsn string) (*Provider, *countingDB) {
	t.Helper()
	inner, err := New(Config{AdminDSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inner.Close)
	counting := &countingDB{db: inner.pool}
	p, err := NewWithDB(counting, Config{AdminDSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	return p, counting
}

var testKey = []byte("summon-test-master-key-0123456789abcdef")

// instance is a fresh instance with names no other test (or earlier run) uses.
func instance(t *testing.T) external.Instance {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := "pgtest-" + hex.EncodeToString(b)
	return withUID(external.Instance{Namespace: ns, Name: "car1", Names: external.NamesFor("summon-test-", ns, "car1")}, "uid-"+ns)
}

// withUID gives the instance another incarnation: a new UID, so a new derived password.
func withUID(in external.Instance, uid string) external.Instance {
	d, err := credentials.NewDeriver(testKey)
	if err != nil {
		panic(err)
	}
	in.UID = uid
	in.DatabasePassword = d.Derive(uid, credentials.DatabasePassword)
	return in
}

// serverState is what the server holds for an instance, as a superuser sees it.
type serverState struct {
	RoleExists, CanLogin bool
	DatabaseOwner        string
	PublicCanConnect     bool
	Verifier             string
}

func stateOf(t *testing.T, conn *pgx.Conn, in external.Instance) serverState {
	t.Helper()
	var s serverState
	var owner, verifier *string
	var public *bool
	err := conn.QueryRow(context.Background(), `SELECT
		EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolcanlogin),
		(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $2),
		(SELECT has_database_privilege('public', oid, 'CONNECT') FROM pg_database WHERE datname = $2),
		(SELECT rolpassword FROM pg_authid WHERE rolname = $1)`,
		in.Names.DatabaseRole, in.Names.Database).Scan(&s.RoleExists, &s.CanLogin, &owner, &public, &verifier)
	if err != nil {
		t.Fatalf("reading server state: %v", err)
	}
	if owner != nil {
		s.DatabaseOwner = *owner
	}
	if public != nil {
		s.PublicCanConnect = *public
	}
	if verifier != nil {
		s.Verifier = *verifier
	}
	return s
}

// login connects as the instance's role with the URL Ensure returned.
func login(databaseURL string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pgx.Connect(ctx, databaseURL)
}

func cleanup(t *testing.T, p *Provider, in external.Instance) {
	t.Cleanup(func() {
		// What another instance took over (adopted) is not this one's to drop any more.
		if _, err := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete); err != nil && !external.LeftAlone(err) {
			t.Errorf("cleaning up: %v", err)
		}
	})
}

func TestEnsureCreatesRoleAndDatabaseAndIsIdempotent(t *testing.T) {
	dsn := testenv.Postgres(t)
	p, counting := newProvider(t, dsn)
	conn := admin(t, dsn)
	in := instance(t)
	cleanup(t, p, in)
	ctx := context.Background()

	url, err := p.Ensure(ctx, in)
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"SELECT EXISTS": 1, "CREATE ROLE": 1, "CREATE DATABASE": 1, "COMMENT ON": 1, "REVOKE ALL": 1}, counting.take()); diff != "" {
		t.Errorf("first Ensure calls (-want +got):\n%s", diff)
	}
	first := stateOf(t, conn, in)
	want := serverState{RoleExists: true, CanLogin: true, DatabaseOwner: in.Names.DatabaseRole, Verifier: first.Verifier}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("after first Ensure (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(first.Verifier, "SCRAM-SHA-256$4096:") {
		t.Errorf("stored password is not a SCRAM verifier: %.20s...", first.Verifier)
	}

	again, err := p.Ensure(ctx, in)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	// The password is set on every Ensure, by design; the verifier it sets is the same one.
	if diff := cmp.Diff(map[string]int{"SELECT EXISTS": 1, "ALTER ROLE": 1}, counting.take()); diff != "" {
		t.Errorf("second Ensure calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first, stateOf(t, conn, in)); diff != "" {
		t.Errorf("second Ensure changed the server (-first +second):\n%s", diff)
	}
	if again != url {
		t.Errorf("second Ensure returned another URL")
	}

	app, err := login(url)
	if err != nil {
		t.Fatalf("logging in with the DATABASE_URL: %v", err)
	}
	defer app.Close(ctx)
	var user, db string
	if err := app.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{in.Names.DatabaseRole, in.Names.Database}, []string{user, db}); diff != "" {
		t.Errorf("logged in as (-want +got):\n%s", diff)
	}
}

func TestEnsureRepairs(t *testing.T) {
	dsn := testenv.Postgres(t)
	conn := admin(t, dsn)
	ctx := context.Background()

	tests := map[string]struct {
		damage string // a statement with %[1]s for the role and %[2]s for the database
		calls  map[string]int
	}{
		"a role without login logs in again": {
			damage: `ALTER ROLE %[1]s NOLOGIN`,
			calls:  map[string]int{"SELECT EXISTS": 1, "ALTER ROLE": 1},
		},
		"a password changed by hand is set back": {
			damage: `ALTER ROLE %[1]s PASSWORD 'changed-by-hand'`,
			calls:  map[string]int{"SELECT EXISTS": 1, "ALTER ROLE": 1},
		},
		"a database given away is given back": {
			damage: `ALTER DATABASE %[2]s OWNER TO CURRENT_USER`,
			calls:  map[string]int{"SELECT EXISTS": 1, "ALTER ROLE": 1, "ALTER DATABASE": 1},
		},
		"a database opened to PUBLIC is closed again": {
			damage: `GRANT CONNECT ON DATABASE %[2]s TO PUBLIC`,
			calls:  map[string]int{"SELECT EXISTS": 1, "ALTER ROLE": 1, "REVOKE ALL": 1},
		},
		"a dropped database is created again": {
			damage: `DROP DATABASE %[2]s`,
			calls:  map[string]int{"SELECT EXISTS": 1, "ALTER ROLE": 1, "CREATE DATABASE": 1, "COMMENT ON": 1, "REVOKE ALL": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, counting := newProvider(t, dsn)
			in := instance(t)
			cleanup(t, p, in)
			if _, err := p.Ensure(ctx, in); err != nil {
				t.Fatal(err)
			}
			want := stateOf(t, conn, in)
			if _, err := conn.Exec(ctx, fmt.Sprintf(tc.damage, ident(in.Names.DatabaseRole), ident(in.Names.Database))); err != nil {
				t.Fatalf("damaging: %v", err)
			}
			counting.take()

			url, err := p.Ensure(ctx, in)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if diff := cmp.Diff(tc.calls, counting.take()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, stateOf(t, conn, in)); diff != "" {
				t.Errorf("state after repair (-want +got):\n%s", diff)
			}
			app, err := login(url)
			if err != nil {
				t.Fatalf("logging in after repair: %v", err)
			}
			app.Close(ctx)
		})
	}
}

func TestFinalize(t *testing.T) {
	dsn := testenv.Postgres(t)
	conn := admin(t, dsn)
	ctx := context.Background()

	tests := map[string]struct {
		policy v1beta1.DeletionPolicy
		want   func(in external.Instance) serverState
		// calls on the first Finalize and on every later one
		calls, again map[string]int
	}{
		"retain keeps the database and leaves the role without login": {
			policy: v1beta1.DeletionPolicyRetain,
			want: func(in external.Instance) serverState {
				return serverState{RoleExists: true, DatabaseOwner: in.Names.DatabaseRole}
			},
			// the role and the database are marked released: adopted only on purpose
			calls: map[string]int{"SELECT EXISTS": 2, "ALTER ROLE": 1, "SELECT pg_terminate_backend(pid,": 1, "COMMENT ON": 2},
			again: map[string]int{"SELECT EXISTS": 2, "ALTER ROLE": 1, "SELECT pg_terminate_backend(pid,": 1},
		},
		"delete drops the database and the role": {
			policy: v1beta1.DeletionPolicyDelete,
			want:   func(external.Instance) serverState { return serverState{} },
			calls:  map[string]int{"SELECT EXISTS": 2, "ALTER ROLE": 1, "SELECT pg_terminate_backend(pid,": 1, "DROP DATABASE": 1, "DROP ROLE": 1},
			again:  map[string]int{"SELECT EXISTS": 2},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, counting := newProvider(t, dsn)
			in := instance(t)
			cleanup(t, p, in)
			url, err := p.Ensure(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			app, err := login(url)
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close(ctx)
			counting.take()

			for i := range 3 {
				left, err := p.Finalize(ctx, in, tc.policy)
				if err != nil {
					t.Fatalf("Finalize #%d: %v", i+1, err)
				}
				if diff := cmp.Diff([]string(nil), left); diff != "" {
					t.Errorf("Finalize #%d left (-want +got):\n%s", i+1, diff)
				}
				want := tc.again
				if i == 0 {
					want = tc.calls
				}
				if diff := cmp.Diff(want, counting.take()); diff != "" {
					t.Errorf("Finalize #%d calls (-want +got):\n%s", i+1, diff)
				}
			}
			got := stateOf(t, conn, in)
			got.Verifier = ""
			if diff := cmp.Diff(tc.want(in), got); diff != "" {
				t.Errorf("state after Finalize (-want +got):\n%s", diff)
			}
			if err := app.Ping(ctx); err == nil {
				t.Errorf("the app's session survived Finalize")
			}
			if c, err := login(url); err == nil {
				c.Close(ctx)
				t.Errorf("the role can still log in after Finalize")
			}
		})
	}
}

// A recreated parent (a new UID) is refused the role and database its predecessor retained, and
// changes nothing of them; with the adopt annotation it takes them over, data and all.
func TestARecreatedParentAdoptsItsRetainedDatabaseOnlyOnPurpose(t *testing.T) {
	dsn := testenv.Postgres(t)
	p, _ := newProvider(t, dsn)
	ctx := context.Background()
	old := instance(t)
	cleanup(t, p, old)

	oldURL, err := p.Ensure(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	app, err := login(oldURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('data')"); err != nil {
		t.Fatal(err)
	}
	app.Close(ctx)
	if _, err := p.Finalize(ctx, old, v1beta1.DeletionPolicyRetain); err != nil {
		t.Fatal(err)
	}

	conn := admin(t, dsn)
	retained := stateOf(t, conn, old)
	recreated := withUID(old, old.UID+"-again")
	cleanup(t, p, recreated)
	_, err = p.Ensure(ctx, recreated)
	var e *external.Error
	if !errors.As(err, &e) || e.NotOurs != external.OwnedByAnotherInstance || e.Retryable ||
		!strings.Contains(err.Error(), "adopt-from-uid="+old.UID) {
		t.Fatalf("Ensure without the annotation: %v, want a non-retryable OwnedByAnotherInstance naming the annotation", err)
	}
	if diff := cmp.Diff(retained, stateOf(t, conn, old)); diff != "" {
		t.Errorf("a refused Ensure changed the retained role or database (-want +got):\n%s", diff)
	}

	recreated.AdoptFromUID = old.UID
	newURL, err := p.Ensure(ctx, recreated)
	if err != nil {
		t.Fatal(err)
	}
	app, err = login(newURL)
	if err != nil {
		t.Fatalf("logging in with the new incarnation's password: %v", err)
	}
	defer app.Close(ctx)
	var v string
	if err := app.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "data" {
		t.Errorf("retained data: %q, %v", v, err)
	}
	if c, err := login(oldURL); err == nil {
		c.Close(ctx)
		t.Errorf("the old incarnation's password still works")
	}
}

// silentServer accepts connections and never answers, like a server that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestUnreachableServerGivesAClassifiedError(t *testing.T) {
	const adminPassword = "admin-secret-password"
	tests := map[string]struct {
		addr     func(t *testing.T) string
		deadline bool
	}{
		"nothing listens on the port":  {addr: func(t *testing.T) string { return testenv.ClosedAddr(t) }},
		"the server accepts and hangs": {addr: silentServer, deadline: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dsn := "postgres://summon_admin:" + adminPassword + "@" + tc.addr(t) + "/postgres?sslmode=disable"
			p, err := New(Config{AdminDSN: dsn, CallTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			in := instance(t)

			// A hanging system must end in a deadline error (checked below), never in a wait
			// for the hook's whole budget; no wall-clock time is asserted.
			_, ensureErr := p.Ensure(context.Background(), in)
			_, finalizeErr := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete)
			for op, err := range map[string]error{"Ensure": ensureErr, "Finalize": finalizeErr} {
				testenv.ExpectFailure(t, op, err, "PostgreSQL", true, tc.deadline, adminPassword, in.DatabasePassword)
			}
		})
	}
}

func TestDatabaseURLUsesTheAppsHost(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"without app settings the admin DSN's host and port are used": {
			cfg:  Config{AdminDSN: "postgres://admin:pw@10.0.0.5:5433/postgres"},
			want: "postgres://shop_car1_0a1b2c3d:pass-word_1@10.0.0.5:5433/shop_car1_0a1b2c3d",
		},
		"app host, port and sslmode come from configuration": {
			cfg:  Config{AdminDSN: "postgres://admin:pw@10.0.0.5:5433/postgres", AppHost: "pgbouncer.db.svc", AppPort: 6432, AppSSLMode: "require"},
			want: "postgres://shop_car1_0a1b2c3d:pass-word_1@pgbouncer.db.svc:6432/shop_car1_0a1b2c3d?sslmode=require",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := NewWithDB(nil, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			in := external.Instance{
				Names:            external.Names{DatabaseRole: "shop_car1_0a1b2c3d", Database: "shop_car1_0a1b2c3d"},
				DatabasePassword: "pass-word_1",
			}
			if diff := cmp.Diff(tc.want, p.databaseURL(in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestQuoteLiteral(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain text is quoted":                 {in: "abc-_9", want: `'abc-_9'`},
		"a single quote is doubled":            {in: `it's`, want: `'it''s'`},
		"a backslash uses the escape form":     {in: `a\b'`, want: `E'a\\b'''`},
		"an injection attempt stays a literal": {in: `x'; DROP ROLE admin; --`, want: `'x''; DROP ROLE admin; --'`},
	}
	conn := admin(t, testenv.Postgres(t))
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, quoteLiteral(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var back string
			if err := conn.QueryRow(context.Background(), "SELECT "+quoteLiteral(tc.in)).Scan(&back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.in, back); diff != "" {
				t.Errorf("the server read it back as (-want +got):\n%s", diff)
			}
		})
	}
}

func TestATenantsRoleCannotConnectToAnotherTenantsDatabase(t *testing.T) {
	dsn := testenv.Postgres(t)
	p, _ := newProvider(t, dsn)
	a, b := instance(t), instance(t)
	cleanup(t, p, a)
	cleanup(t, p, b)
	ctx := context.Background()
	urlA, err := p.Ensure(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ensure(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Only other tenants' databases: the server's own "postgres" database is open to PUBLIC unless
	// the server's administrator revokes that (docs/reliability.md says so).
	for _, other := range []string{b.Names.Database} {
		u, err := url.Parse(urlA)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + other
		conn, err := login(u.String())
		if err == nil {
			conn.Close(ctx)
			t.Errorf("tenant A's role connected to the database %s", other)
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
			t.Errorf("tenant A's role on the database %s: want permission denied (42501), got %v", other, err)
		}
	}
}
