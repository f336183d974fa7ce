package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestNoFormOfThePasswordReachesPsqlsArgv(t *testing.T) {
	tests := map[string]struct {
		dsn, wantURL, wantPassword string
	}{
		"a password in the user info": {
			dsn:     "postgres://car1:s3cret@db:5432/car1?sslmode=require",
			wantURL: "postgres://car1@db:5432/car1?sslmode=require", wantPassword: "s3cret",
		},
		"a password in the query string": {
			dsn:     "postgres://car1@db:5432/car1?sslmode=require&password=s3cret",
			wantURL: "postgres://car1@db:5432/car1?sslmode=require", wantPassword: "s3cret",
		},
		"a password in the query string spelt with escapes": {
			dsn:     "postgres://car1@db:5432/car1?pass%77ord=s3cret",
			wantURL: "postgres://car1@db:5432/car1", wantPassword: "s3cret",
		},
		"both: the user info's is used, neither is shown": {
			dsn:     "postgres://car1:s3cret@db:5432/car1?password=other",
			wantURL: "postgres://car1@db:5432/car1", wantPassword: "s3cret",
		},
		"a passfile in the query string would win over summonctl's: dropped": {
			dsn:     "postgres://car1:s3cret@db/car1?passfile=/tmp/x",
			wantURL: "postgres://car1@db/car1", wantPassword: "s3cret",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := psqlConnection(tc.dsn, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(psqlConn{url: tc.wantURL, password: tc.wantPassword}, c, cmp.AllowUnexported(psqlConn{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for _, secret := range []string{"s3cret", "other"} {
				if strings.Contains(c.url, secret) {
					t.Errorf("argv holds %q: %s", secret, c.url)
				}
			}
		})
	}
}

// runPSQLChild is the summonctl of TestThePasswordFileGoesWhateverSignalEndsTheShell: it runs a
// stand-in psql, when the test runs this binary as that child.
func TestRunPSQLChild(t *testing.T) {
	psql := os.Getenv("SUMMONCTL_TEST_PSQL")
	if psql == "" {
		t.Skip("run as a child of TestThePasswordFileGoesWhateverSignalEndsTheShell")
	}
	g := &globals{streams: genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: os.Stdout, ErrOut: os.Stderr}}
	_ = runPSQL(psql, psqlConn{url: "postgres://car1@db/car1", password: "s3cret"}, nil, g)
}

// The password file is removed however the session ends: a closed terminal (SIGHUP), a kill
// (SIGTERM), Ctrl-C (SIGINT, which psql gets too and outlives). Today's summonctl dies of the
// signal and leaves the file behind.
func TestThePasswordFileGoesWhateverSignalEndsTheShell(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			mark := filepath.Join(dir, "passfile-path")
			// A stand-in psql (a hand-written fake: no psql here) that says where its password
			// file is, then waits until a signal ends it, or, for SIGINT, until told to exit.
			psql := filepath.Join(dir, "psql")
			script := "#!/bin/sh\ntrap 'exit 0' INT\necho \"$PGPASSFILE\" > " + mark + ".tmp && mv " + mark + ".tmp " + mark +
				"\nwhile [ ! -e " + filepath.Join(dir, "quit") + " ] && [ -d " + dir + " ]; do sleep 0.05; done\n"
			if err := os.WriteFile(psql, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			child := exec.Command(os.Args[0], "-test.run=^TestRunPSQLChild$")
			child.Env = append(os.Environ(), "SUMMONCTL_TEST_PSQL="+psql, "TMPDIR="+dir)
			// A file, not a buffer: an orphaned stand-in psql would hold a pipe open, and Wait
			// with it.
			out, err := os.Create(filepath.Join(dir, "output"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			child.Stdout, child.Stderr = out, out
			output := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			var passfile string
			for passfile == "" {
				b, err := os.ReadFile(mark)
				if err == nil {
					passfile = strings.TrimSpace(string(b))
					break
				}
				if child.ProcessState != nil {
					t.Fatalf("the child ended early:\n%s", output())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := os.Stat(passfile); err != nil {
				t.Fatalf("the password file is not there while psql runs: %v", err)
			}
			if err := child.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if sig == syscall.SIGINT {
				// The terminal would send psql the SIGINT too; psql outlives it and the session
				// goes on until psql exits.
				if err := os.WriteFile(filepath.Join(dir, "quit"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_ = child.Wait()
			if _, err := os.Stat(passfile); !os.IsNotExist(err) {
				t.Errorf("after %s the password file %s is still there (%v); child output:\n%s", sig, passfile, err, output())
			}
			_ = os.WriteFile(filepath.Join(dir, "quit"), nil, 0o600)
		})
	}
}
