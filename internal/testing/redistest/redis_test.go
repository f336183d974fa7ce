package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/children"
)

// TestTheRedisOfAnInstanceRunsAsItsChildrenSay runs against the two redis-server processes that
// hack/redis.sh started with the instance's own config files. The app's side is the URLs in the
// generated app config file; only their host is replaced, by the loopback address the script
// moved each server to.
func TestTheRedisOfAnInstanceRunsAsItsChildrenSay(t *testing.T) {
	dir := testenv.Redis(t)
	f, err := Render()
	if err != nil {
		t.Fatal(err)
	}

	// The servers run what the code renders now, not what it rendered when they were started.
	for name, want := range f.Files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s in %s is not what the builder renders now; restart the servers: hack/redis.sh stop && hack/redis.sh start", name, dir)
		}
	}
	// Each container runs redis-server on its config file and nothing more: the script's command
	// line is the same, with only the port and the bind address added after the file.
	for _, s := range f.Servers {
		if want := []string{"redis-server", children.RedisConfigDir + "/" + s.File()}; !slices.Equal(f.Commands[s.Name], want) {
			t.Errorf("the %s container runs %q, but the test starts redis-server as %q", s.Name, f.Commands[s.Name], want)
		}
	}

	var settings map[string]string
	if err := yaml.Unmarshal(f.Files[children.ConfigFileName], &settings); err != nil {
		t.Fatalf("reading the app config file: %v", err)
	}
	ports := readPorts(t, filepath.Join(dir, "ports"))
	for _, s := range f.Servers {
		t.Run(s.Name, func(t *testing.T) {
			opts, err := redis.ParseURL(settings[s.Setting])
			if err != nil {
				t.Fatalf("%s is not a Redis URL: %v", s.Setting, err)
			}
			wantAddr := net.JoinHostPort(f.Platform.Names.Of(children.Redis)+"."+f.Platform.Namespace+".svc", strconv.Itoa(int(s.Port)))
			if opts.Addr != wantAddr {
				t.Errorf("%s points at %s, want the Service's %s", s.Setting, opts.Addr, wantAddr)
			}
			opts.Addr = net.JoinHostPort("127.0.0.1", ports[s.Name])
			ctx := t.Context()

			rdb := redis.NewClient(opts)
			t.Cleanup(func() { rdb.Close() })
			if err := rdb.Ping(ctx).Err(); err != nil {
				t.Fatalf("PING with the URL's password: %v", err)
			}
			refusedWithout(t, ctx, opts, "", "NOAUTH")
			refusedWithout(t, ctx, opts, "not-the-password", "WRONGPASS")

			info := infoFields(t, ctx, rdb, "memory")
			if got, want := info["maxmemory"], strconv.FormatInt(s.MaxMemory(), 10); got != want {
				t.Errorf("maxmemory = %s, want %s (three quarters of %s)", got, want, s.Memory.String())
			}
			if got := info["maxmemory_policy"]; got != s.Policy {
				t.Errorf("maxmemory_policy = %s, want %s", got, s.Policy)
			}

			// The policy in effect: write twice maxmemory in 256 KiB values.
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rdb.FlushAll(context.Background()) })
			value := strings.Repeat("x", 256<<10)
			var writeErr error
			for i := range int(2 * s.MaxMemory() / int64(len(value))) {
				if writeErr = rdb.Set(ctx, "fill:"+strconv.Itoa(i), value, 0).Err(); writeErr != nil {
					break
				}
			}
			evicted := infoFields(t, ctx, rdb, "stats")["evicted_keys"]
			// What each server is for decides what it must do when full, whatever its config says.
			switch s.Name {
			case "cache":
				// A cache that is full evicts and keeps taking writes.
				if writeErr != nil || evicted == "0" {
					t.Errorf("the cache, once full: write error %v, %s keys evicted; want no error and evictions", writeErr, evicted)
				}
			case "channels":
				// The Channels layer never drops what it holds: once full, writes fail loudly.
				if writeErr == nil || !strings.Contains(writeErr.Error(), "OOM") || evicted != "0" {
					t.Errorf("the Channels layer, once full: write error %v, %s keys evicted; want an OOM error and no eviction", writeErr, evicted)
				}
			}
		})
	}
}

// refusedWithout checks that a client with another password (none: "") is refused.
func refusedWithout(t *testing.T, ctx context.Context, opts *redis.Options, password, want string) {
	t.Helper()
	o := *opts
	o.Password = password
	c := redis.NewClient(&o)
	defer c.Close()
	err := c.Set(ctx, "intruder", "x", 0).Err()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a client with password %q: err = %v, want %s", password, err, want)
	}
	var redisErr redis.Error
	if err != nil && !errors.As(err, &redisErr) {
		t.Errorf("a client with password %q was not answered by Redis: %v", password, err)
	}
}

// infoFields reads one section of INFO as key: value.
func infoFields(t *testing.T, ctx context.Context, rdb *redis.Client, section string) map[string]string {
	t.Helper()
	text, err := rdb.Info(ctx, section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	out := map[string]string{}
	lines := bufio.NewScanner(strings.NewReader(text))
	for lines.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(lines.Text()), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// readPorts reads the loopback port of each server, as hack/redis.sh wrote them.
func readPorts(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}
