package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// The example app's images are run from their unpacked layers by `hack/app-images.sh run`, as
// their pods run them: the image's user, a read-only root, a writable /tmp, the config file
// mounted at /etc/summon, and the commands Summon's builders give each component. The network is
// the host's, so the app reaches the test's PostgreSQL on 127.0.0.1.

// app is the example app's images, a database of its own, and the config file that points at it.
type app struct {
	t         *testing.T
	images    string
	configDir string
	settings  children.Settings
	db        *pgx.Conn
	commands  map[children.Component][]string
}

// newApp makes the app's database and config file; tune, if set, changes the settings first.
func newApp(t *testing.T, tune func(children.Settings)) *app {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("SUMMON_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("running the example app's images needs root (chroot, unshare), and SUMMON_REQUIRE_INTEGRATION=1")
		}
		t.Skip("running the example app's images needs root (chroot, unshare)")
	}
	images := testenv.AppImages(t)
	dsn := testenv.Postgres(t)

	// A database of the test's own, dropped at the end.
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	name := fmt.Sprintf("summon_example_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	db, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })

	a := &app{t: t, images: images, configDir: t.TempDir(), db: db, settings: children.Settings{
		"ALLOWED_HOSTS": "127.0.0.1,localhost",
		"DATABASE_URL":  u.String(),
		"SECRET_KEY":    "example-app-test-not-secret",
		"DEBUG":         false,
	}}
	if tune != nil {
		tune(a.settings)
	}
	a.writeConfig(t)

	// The commands Summon gives each component, from its own builders.
	spec := v1beta1.Spec{Version: "v1"}.Defaulted(v1beta1.HookDefaults{Image: "localhost/summon-example"})
	p := children.NewPlatform("example", "example", spec)
	r := children.Release{Version: "v1"}
	a.commands = map[children.Component][]string{
		children.Web:           children.WebDeployment(p, r, 1).Spec.Template.Spec.Containers[0].Command,
		children.Daphne:        children.DaphneDeployment(p, r).Spec.Template.Spec.Containers[0].Command,
		children.ChannelWorker: children.ChannelWorkerDeployment(p, r).Spec.Template.Spec.Containers[0].Command,
		children.Celeryd:       children.CeleryWorkerDeployment(p, r, 1).Spec.Template.Spec.Containers[0].Command,
		children.CeleryBeat:    children.BeatStatefulSet(p, r, 1).Spec.Template.Spec.Containers[0].Command,
		children.Static:        children.StaticDeployment(p, r).Spec.Template.Spec.Containers[0].Command,
		children.Migrations:    children.MigrationJob(p, r, 0).Spec.Template.Spec.Containers[0].Command,
	}
	return a
}

// writeConfig renders the settings as Summon renders the config file, into a folder the image's
// user can read, as the Secret volume is (mode 0444).
func (a *app) writeConfig(t *testing.T) {
	t.Helper()
	file, err := children.ConfigFile(a.settings)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a.configDir, children.ConfigFileName)
	os.Remove(path)
	if err := os.WriteFile(path, file, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.configDir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// configure sets one setting, for the processes started after it.
func (a *app) configure(t *testing.T, key string, value any) {
	t.Helper()
	a.settings[key] = value
	a.writeConfig(t)
}

// script is hack/app-images.sh, from this package's folder.
func script() string { return filepath.Join("..", "..", "hack", "app-images.sh") }

func (a *app) cmd(version string, args ...string) *exec.Cmd {
	c := exec.Command(script(), append([]string{"run", a.images, version}, args...)...)
	c.Env = append(os.Environ(), "SUMMON_CONFIG_DIR="+a.configDir)
	return c
}

// run runs a command to its end in a version's image and returns its output.
func (a *app) run(version string, args ...string) (string, error) {
	out, err := a.cmd(version, args...).CombinedOutput()
	return string(out), err
}

// migrate runs Summon's migration command in a version's image.
func (a *app) migrate(version string) (string, error) {
	return a.run(version, a.commands[children.Migrations]...)
}

// server is one component's server process, listening on a loopback port.
type server struct {
	name string
	cmd  *exec.Cmd
	port int
	out  *lockedBuffer
	done chan error
}

// start starts a component of a version with Summon's command, as it is.
func (a *app) start(c children.Component, version string) *server {
	a.t.Helper()
	return a.launch(c, version, a.commands[c], 0)
}

// serve starts a serving component of a version on a free loopback port: Summon's command, with
// its listening address moved from the pod's port 8000 on every address to that port. It
// returns once the server answers.
func (a *app) serve(c children.Component, version string) *server {
	t := a.t
	t.Helper()
	port := freePort(t)
	rebind := map[string]string{
		"--bind=0.0.0.0:8000": "--bind=127.0.0.1:" + strconv.Itoa(port),   // gunicorn
		"--bind=0.0.0.0":      "--bind=127.0.0.1",                         // daphne
		"--port=8000":         "--port=" + strconv.Itoa(port),             // daphne
		"--listen=:8000":      "--listen=127.0.0.1:" + strconv.Itoa(port), // caddy
	}
	var args []string
	moved := false
	for _, arg := range a.commands[c] {
		if to, ok := rebind[arg]; ok {
			arg, moved = to, true
		}
		args = append(args, arg)
	}
	if !moved {
		t.Fatalf("%s's command %q doesn't listen where this test expects (port 8000): update the test", c, a.commands[c])
	}
	s := a.launch(c, version, args, port)
	testenv.Eventually(t, 2*time.Minute, 200*time.Millisecond, s.name+" to answer", func(ctx context.Context) (bool, string) {
		resp, err := http.Get(s.url("/"))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	}, s.exited)
	return s
}

func (a *app) launch(c children.Component, version string, args []string, port int) *server {
	t := a.t
	t.Helper()
	s := &server{name: fmt.Sprintf("%s %s", c, version), cmd: a.cmd(version, args...), port: port, out: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", s.name, s.out.String())
		}
	})
	return s
}

// exited reports, once the process has exited, how and what it wrote.
func (s *server) exited() error {
	select {
	case err := <-s.done:
		s.done <- err
		return fmt.Errorf("%s exited: %v\n%s", s.name, err, s.out.String())
	default:
		return nil
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (s *server) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", s.port, path) }

// stop sends SIGTERM, as the kubelet does, and checks that the server shuts down cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("%s on SIGTERM: %v, want a clean exit\n%s", s.name, err, s.out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s did not stop within a minute of SIGTERM", s.name)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// probe is what /probe/ answers: which version wrote and read a note, and the schema it saw.
type probe struct {
	Version string `json:"version"`
	Pod     string `json:"pod"`
	Wrote   struct {
		ID   int64  `json:"id"`
		Text string `json:"text"`
	} `json:"wrote"`
	Read *struct {
		ID      int64  `json:"id"`
		Text    string `json:"text"`
		Version string `json:"version"`
	} `json:"read"`
	Fields     []string `json:"fields"`
	Columns    []string `json:"columns"`
	Migrations []string `json:"migrations"`
}

// schema is the part of a probe that says which schema a version's code saw.
type schema struct {
	Version    string
	Fields     []string
	Columns    []string
	Migrations []string
}

func (s *server) probe(t *testing.T, text string) probe {
	t.Helper()
	resp, err := http.Get(s.url("/probe/?text=" + url.QueryEscape(text)))
	if err != nil {
		t.Fatalf("%s /probe/: %v", s.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /probe/: %s\n%s\n%s", s.name, resp.Status, body, s.out.String())
	}
	var p probe
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%s /probe/: %v: %s", s.name, err, body)
	}
	if p.Wrote.Text != text {
		t.Errorf("%s wrote %q and read back %q", s.name, text, p.Wrote.Text)
	}
	return p
}

func (p probe) schema() schema {
	return schema{Version: p.Version, Fields: p.Fields, Columns: p.Columns, Migrations: p.Migrations}
}

// The schema of each version, as its code sees it.
var (
	v1Fields  = []string{"id", "text", "pod", "version", "created"}
	v2Fields  = []string{"id", "body", "pod", "version", "created"}
	v1Columns = []string{"created", "id", "pod", "text", "version"}
	v2Columns = []string{"body", "created", "id", "pod", "text", "version"}
	v3Columns = []string{"body", "created", "id", "pod", "version"}
	at1       = []string{"0001_initial"}
	at2       = []string{"0001_initial", "0002_body"}
	at3       = []string{"0001_initial", "0002_body", "0003_drop_text"}
)

func expectSchema(t *testing.T, p probe, want schema) {
	t.Helper()
	if diff := cmp.Diff(want, p.schema()); diff != "" {
		t.Errorf("the schema %s's code saw (-want +got):\n%s", want.Version, diff)
	}
}

// TestTheExampleAppMovesThroughItsVersionsWhileTheOldOneServes runs the example app's versions
// in order against one database, as Summon rolls them: each version's migration runs while the
// version before it still serves, and that older version must keep answering on the new schema.
// v2-broken's migration fails and must leave the database as it was.
func TestTheExampleAppMovesThroughItsVersionsWhileTheOldOneServes(t *testing.T) {
	a := newApp(t, nil)

	for _, v := range []string{"v1", "v2", "v3", "v2-broken"} {
		if out, err := a.run(v, "python", "manage.py", "check", "--fail-level=WARNING"); err != nil {
			t.Fatalf("manage.py check in %s: %v\n%s", v, err, out)
		}
	}
	// Each version's migrations describe its models exactly.
	for _, v := range []string{"v1", "v2", "v3"} {
		if out, err := a.run(v, "python", "manage.py", "makemigrations", "--check", "--dry-run"); err != nil {
			t.Fatalf("%s's models and migrations differ: %v\n%s", v, err, out)
		}
	}

	if out, err := a.migrate("v1"); err != nil {
		t.Fatalf("migrating a fresh database to v1: %v\n%s", err, out)
	}
	v1 := a.serve(children.Web, "v1")
	expectSchema(t, v1.probe(t, "first"), schema{"v1", v1Fields, v1Columns, at1})

	t.Run("a failing migration leaves nothing behind", func(t *testing.T) {
		out, err := a.migrate("v2-broken")
		if err == nil || !strings.Contains(out, "v2-broken fails on purpose") {
			t.Fatalf("v2-broken's migration: err = %v, want its own failure\n%s", err, out)
		}
		expectSchema(t, v1.probe(t, "after v2-broken"), schema{"v1", v1Fields, v1Columns, at1})
		var triggers int
		if err := a.db.QueryRow(t.Context(), `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'notes_note%'`).Scan(&triggers); err != nil {
			t.Fatal(err)
		}
		if triggers != 0 {
			t.Errorf("%d triggers on notes_note after v2-broken failed, want 0", triggers)
		}
	})

	if out, err := a.migrate("v2"); err != nil {
		t.Fatalf("migrating to v2: %v\n%s", err, out)
	}
	// v1 still serves on the expanded schema, and reads what v2 writes.
	expectSchema(t, v1.probe(t, "v1 after expand"), schema{"v1", v1Fields, v2Columns, at2})
	v2 := a.serve(children.Web, "v2")
	p := v2.probe(t, "from v2")
	expectSchema(t, p, schema{"v2", v2Fields, v2Columns, at2})
	if p.Read == nil || p.Read.Text != "v1 after expand" {
		t.Errorf("v2 read the note v1 wrote after the expand as %+v, want its words", p.Read)
	}
	p = v1.probe(t, "v1 beside v2")
	if p.Read == nil || p.Read.Text != "from v2" {
		t.Errorf("v1 read the note v2 wrote as %+v, want its words", p.Read)
	}
	v1.stop(t)

	if out, err := a.migrate("v3"); err != nil {
		t.Fatalf("migrating to v3: %v\n%s", err, out)
	}
	// v2 still serves on the contracted schema.
	expectSchema(t, v2.probe(t, "v2 after contract"), schema{"v2", v2Fields, v3Columns, at3})
	v3 := a.serve(children.Web, "v3")
	p = v3.probe(t, "from v3")
	expectSchema(t, p, schema{"v3", v2Fields, v3Columns, at3})
	if p.Read == nil || p.Read.Text != "v2 after contract" {
		t.Errorf("v3 read the note v2 wrote as %+v, want its words", p.Read)
	}
	v2.stop(t)
	v3.stop(t)

	// Every note kept its words through both migrations.
	var empty int
	if err := a.db.QueryRow(t.Context(), `SELECT count(*) FROM notes_note WHERE body IS NULL OR body = ''`).Scan(&empty); err != nil {
		t.Fatal(err)
	}
	if empty != 0 {
		t.Errorf("%d notes lost their words", empty)
	}

	// Summon may run a version's migration again: it must be a no-op.
	if out, err := a.migrate("v3"); err != nil || !strings.Contains(out, "No migrations to apply") {
		t.Errorf("migrating to v3 again: %v\n%s", err, out)
	}
}

// TestTheStaticComponentServesTheVersionsFiles runs Summon's static command (Caddy) in each
// image and fetches the files collectstatic put there.
func TestTheStaticComponentServesTheVersionsFiles(t *testing.T) {
	a := newApp(t, nil)
	for _, v := range []string{"v1", "v3"} {
		s := a.serve(children.Static, v)
		for path, want := range map[string]string{
			"/static/version.txt":              v + "\n",
			"/static/summon_platform/site.css": "",
		} {
			resp, err := http.Get(s.url(path))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (want != "" && string(body) != want) {
				t.Errorf("%s %s: %s %q, want 200 %q", s.name, path, resp.Status, body, want)
			}
		}
		s.stop(t)
	}
}

// TestTheProbeSeesAColumnAddedWhileItWaits holds a migration's ALTER TABLE open, as v2's
// migration does while v1 serves, and reads the notes table's columns the way /probe/ does,
// from v1's image. The read must wait for the migration and then see the new column: Django's
// own introspection reads the catalog before the table, saw one without the other, and failed
// one /probe/ request of a real-pod rollout with a KeyError (HTTP 500).
func TestTheProbeSeesAColumnAddedWhileItWaits(t *testing.T) {
	a := newApp(t, nil)
	if out, err := a.migrate("v1"); err != nil {
		t.Fatalf("migrating a fresh database to v1: %v\n%s", err, out)
	}
	ctx := t.Context()
	tx, err := a.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "ALTER TABLE notes_note ADD COLUMN added_meanwhile integer"); err != nil {
		t.Fatal(err)
	}

	read := a.cmd("v1", "python", "manage.py", "shell", "-c",
		"import json; from summon_platform.views import table_columns; print(json.dumps(sorted(table_columns())))")
	out := &lockedBuffer{}
	read.Stdout, read.Stderr = out, out
	if err := read.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- read.Wait() }()
	t.Cleanup(func() {
		if read.ProcessState == nil {
			read.Process.Kill()
			<-done
		}
	})

	// The read waits on the table's lock: the migration commits only then.
	testenv.Eventually(t, 2*time.Minute, 100*time.Millisecond, "the column read to wait on the migration's lock", func(ctx context.Context) (bool, string) {
		// pg_locks, not pg_stat_activity: a transaction sees the latter as it was at its first
		// read.
		var waiting int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'notes_note'::regclass`).Scan(&waiting); err != nil {
			return false, err.Error()
		}
		return waiting > 0, fmt.Sprintf("%d sessions wait on a lock; the read's output so far: %q", waiting, out.String())
	}, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("the column read ended before the migration committed: %v\n%s", err, out.String())
		default:
			return nil
		}
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("reading the columns while a migration added one: %v\n%s", err, out.String())
	}
	var got []string
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("the column read's output: %v\n%s", err, out.String())
	}
	want := append([]string{"added_meanwhile"}, v1Columns...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the columns read while a migration added one (-want +got):\n%s", diff)
	}
}
