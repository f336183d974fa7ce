package integration

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// dbshell runs a real psql against the test PostgreSQL with the DATABASE_URL of an instance's
// config Secret. The password goes through a 0600 password file that is gone afterwards: it is in
// no process's argv (the real psql's own command line, read from /proc by a shell it starts, and
// a fake psql's, which records it) and in no output.
func TestSummonctlDBShellOpensPsqlWithoutThePasswordInArgv(t *testing.T) {
	admin := testenv.Postgres(t)
	s := newCLISetup(t)
	n := cliRuns.Add(1)
	ns := fmt.Sprintf("summon-cli-db-%d", n)
	ensureNamespace(t, s.c, ns)

	role := fmt.Sprintf("cli_dbshell_%d_%d", os.Getpid(), n)
	password := "s3cret:with\\colon-" + role
	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, strings.ReplaceAll(password, "'", "''")),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", role, role),
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(q, " PASSWORD", 2)[0], err)
		}
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(t.Context(), "DROP DATABASE IF EXISTS "+role)
		_, _ = conn.Exec(t.Context(), "DROP ROLE IF EXISTS "+role)
	})
	server, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	dsn := url.URL{Scheme: "postgres", User: url.UserPassword(role, password), Host: server.Host, Path: "/" + role, RawQuery: "sslmode=disable"}

	p := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": "car1-qa", "namespace": ns},
		"spec":     map[string]any{"version": "v1"},
	}}
	if err := s.c.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := s.run(t, "dbshell", "car1-qa", "-n", ns); code != cli.ExitFailed || !strings.Contains(stderr, "has no app config Secret") {
		t.Errorf("dbshell before the config Secret exists: exit %d: %s", code, stderr)
	}
	config := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: children.NamesFor("car1-qa").Config(), Namespace: ns},
		Data:       map[string][]byte{children.ConfigFileName: []byte(fmt.Sprintf("DATABASE_URL: %q\nDEBUG: true\n", dsn.String()))},
	}
	if err := s.c.Create(t.Context(), config); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := s.run(t, "dbshell", "car1-qa", "-n", ns, "--", "-At", "-c", "select current_user")
	if code != cli.ExitOK || strings.TrimSpace(stdout) != role {
		t.Fatalf("dbshell with the real psql: exit %d, want %q:\n%s%s", code, role, stdout, stderr)
	}
	// psql's \! runs a shell whose parent is psql: its /proc/$PPID/cmdline is psql's argv.
	stdout, stderr, code = s.run(t, "dbshell", "car1-qa", "-n", ns, "--", "-At", "-c", `\! tr '\0' ' ' < /proc/$PPID/cmdline; echo; tr '\0' '\n' < /proc/$PPID/environ | grep -c '^PGPASSFILE=' `)
	if code != cli.ExitOK {
		t.Fatalf("dbshell reading psql's argv: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "postgres://"+role+"@") {
		t.Errorf("psql's argv should hold the URL without its password: %q", stdout)
	}
	if !strings.Contains(stdout, "\n1\n") {
		t.Errorf("psql should have PGPASSFILE in its environment: %q", stdout)
	}
	for _, out := range []string{stdout, stderr} {
		if strings.Contains(out, password) || strings.Contains(out, url.QueryEscape(password)) || strings.Contains(out, "s3cret") {
			t.Errorf("the password shows in psql's argv or the output: %q", out)
		}
	}

	// A fake psql, first on PATH, records its argv and what it finds in PGPASSFILE.
	bin := t.TempDir()
	record := filepath.Join(bin, "record")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\necho \"file=$PGPASSFILE\" >> %s\nstat -c 'mode=%%a' \"$PGPASSFILE\" >> %s\necho \"password=$PGPASSWORD\" >> %s\n", record, record, record, record)
	if err := os.WriteFile(filepath.Join(bin, "psql"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("PGPASSWORD", "from-the-users-environment")
	if _, stderr, code := s.run(t, "dbshell", "car1-qa", "-n", ns, "--host", "db.tunnel.example", "--port", "15432"); code != cli.ExitOK {
		t.Fatalf("dbshell with the fake psql: exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	want := []string{"postgres://" + role + "@db.tunnel.example:15432/" + role + "?sslmode=disable"}
	if len(lines) != 4 || lines[0] != want[0] || lines[2] != "mode=600" || lines[3] != "password=" {
		t.Errorf("the fake psql saw (argv, then its password file and PGPASSWORD):\n%s\nwant argv %q, mode 600 and no PGPASSWORD", got, want)
	}
	if strings.Contains(string(got), "s3cret") {
		t.Errorf("the password reached psql's argv or environment: %s", got)
	}
	file := strings.TrimPrefix(lines[1], "file=")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the password file %s is still there after psql exited (%v)", file, err)
	}
}
