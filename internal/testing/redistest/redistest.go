// Package redistest renders the Redis that Summon gives an instance, for the real-Redis test: the
// config file of each of its two servers, the command each container runs, and the app config file
// that points the app at them, all taken from what platform.Sync answers for a fresh install.
// hack/redis.sh starts Debian's redis-server with exactly those files (through ./render), and the
// test in this package connects with the URLs of the app config file. It is test support: nothing
// in the hook imports it.
package redistest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// The fixture's instance. Its Redis is small, so that filling it takes a few megabytes.
var (
	cacheMemory    = resource.MustParse("32Mi")
	channelsMemory = resource.MustParse("16Mi")
	masterKey      = []byte("redistest-credential-master-key-0123456789")
)

// Fixture is an instance's Redis as its children describe it.
type Fixture struct {
	Platform children.Platform
	// Servers are the two servers, as the builder sizes them.
	Servers []children.RedisServer
	// Files are the Redis config Secret's files, by file name, and the app config file under
	// children.ConfigFileName.
	Files map[string][]byte
	// Commands are the command of each Redis container, by server name.
	Commands map[string][]string
}

// Render runs platform.Sync on the fresh install of an instance with its own Redis and reads the
// Redis out of the answer.
func Render() (Fixture, error) {
	p := &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: "car1-qa", Namespace: "summon-qa"},
		Spec: v1beta1.Spec{
			Version: "108912-6e2f8b7-release-2019-8",
			Redis:   &v1beta1.Redis{CacheMemory: &cacheMemory, ChannelsMemory: &channelsMemory},
		},
	}
	d, err := credentials.NewDeriver(masterKey)
	if err != nil {
		return Fixture{}, err
	}
	env := platform.Env{
		Now:         time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
		Defaults:    v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"},
		Credentials: d,
		Data:        platform.DataServices{RedisImage: children.DefaultRedisImage},
	}
	resp := platform.Sync(sim.NewCluster(p).Request(), env)
	pl := children.NewPlatform(p.Name, p.Namespace, p.Spec.Defaulted(env.Defaults))
	f := Fixture{Platform: pl, Servers: children.RedisServers(pl), Files: map[string][]byte{}, Commands: map[string][]string{}}

	var config, redisConfig struct {
		Data map[string]string `json:"data"`
	}
	var sts appsv1.StatefulSet
	for _, want := range []struct {
		kind, name string
		into       any
	}{
		{"Secret", pl.Names.Config(), &config},
		{"Secret", pl.Names.Of(children.Redis), &redisConfig},
		{"StatefulSet", pl.Names.Of(children.Redis), &sts},
	} {
		obj := find(resp, want.kind, want.name)
		if obj == nil {
			return Fixture{}, fmt.Errorf("the fresh install has no %s %s: %v", want.kind, want.name, resp.Status)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return Fixture{}, err
		}
		if err := json.Unmarshal(b, want.into); err != nil {
			return Fixture{}, fmt.Errorf("reading %s %s: %w", want.kind, want.name, err)
		}
	}
	for name, b64 := range redisConfig.Data {
		if f.Files[name], err = base64.StdEncoding.DecodeString(b64); err != nil {
			return Fixture{}, err
		}
	}
	if f.Files[children.ConfigFileName], err = base64.StdEncoding.DecodeString(config.Data[children.ConfigFileName]); err != nil {
		return Fixture{}, err
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		f.Commands[c.Name] = slices.Concat(c.Command, c.Args)
	}
	return f, nil
}

func find(resp *metacontroller.SyncResponse, kind, name string) metacontroller.Object {
	for _, obj := range resp.Children {
		meta, _ := obj["metadata"].(map[string]any)
		if obj["kind"] == kind && meta["name"] == name {
			return obj
		}
	}
	return nil
}

// Write puts the fixture's files into dir, readable by their owner only: they hold passwords.
func (f Fixture) Write(dir string) error {
	for name, b := range f.Files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}
