package v1beta1

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func valid() *SummonPlatform {
	return &SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: "car1-qa", Namespace: "summon-qa"},
		Spec:       Spec{Version: "108912-6e2f8b7-release-2019-8", Hostname: "car1-qa.example.com"},
	}
}

func i32(v int32) *int32 { return &v }

func quantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		edit func(*SummonPlatform)
		want string // a substring of the error list; "" means valid
	}{
		"a minimal platform is valid":               {edit: func(*SummonPlatform) {}},
		"a missing version is refused":              {edit: func(p *SummonPlatform) { p.Spec.Version = "" }, want: "spec.version: Required value"},
		"a version with a slash is refused":         {edit: func(p *SummonPlatform) { p.Spec.Version = "release/1" }, want: "must be an image tag"},
		"a version longer than a label is refused":  {edit: func(p *SummonPlatform) { p.Spec.Version = strings.Repeat("a", 64) }, want: "spec.version"},
		"an image with a tag is refused":            {edit: func(p *SummonPlatform) { p.Spec.Image = "registry.example.com/app:v1" }, want: "without a tag"},
		"an image with a registry port is valid":    {edit: func(p *SummonPlatform) { p.Spec.Image = "registry.example.com:5000/team/app" }},
		"an upper-case name is refused":             {edit: func(p *SummonPlatform) { p.Name = "Car1" }, want: "metadata.name"},
		"a 64-character name is refused":            {edit: func(p *SummonPlatform) { p.Name = "a" + strings.Repeat("b", 63) }, want: "metadata.name"},
		"a 63-character name is valid":              {edit: func(p *SummonPlatform) { p.Name = "a" + strings.Repeat("b", 62) }},
		"two beats are refused":                     {edit: func(p *SummonPlatform) { p.Spec.Replicas.CeleryBeat = i32(2) }, want: "a second beat would run every scheduled task twice"},
		"negative replicas are refused":             {edit: func(p *SummonPlatform) { p.Spec.Replicas.Web = i32(-1) }, want: "spec.replicas.web"},
		"aliases without a hostname are refused":    {edit: func(p *SummonPlatform) { p.Spec.Hostname = ""; p.Spec.Aliases = []string{"a.example.com"} }, want: "aliases need a hostname"},
		"an alias equal to the hostname is refused": {edit: func(p *SummonPlatform) { p.Spec.Aliases = []string{"car1-qa.example.com"} }, want: "Duplicate value"},
		"a setting that is not an identifier":       {edit: func(p *SummonPlatform) { p.Spec.Config = map[string]ConfigValue{"not-a-setting": StringValue("x")} }, want: "Python identifier"},
		"both kinds of database are refused": {edit: func(p *SummonPlatform) {
			p.Spec.Database = Database{Shared: &SharedDatabase{Host: "pg"}, URLSecret: &SecretKeyRef{Name: "db", Key: "url"}}
		}, want: "not more"},
		"an in-cluster database beside a shared one is refused": {edit: func(p *SummonPlatform) {
			p.Spec.Database = Database{Shared: &SharedDatabase{Host: "pg"}, InCluster: &InClusterDatabase{}}
		}, want: "not more"},
		"an in-cluster database with defaults is valid": {edit: func(p *SummonPlatform) { p.Spec.Database.InCluster = &InClusterDatabase{} }},
		"an in-cluster database smaller than 256Mi is refused": {edit: func(p *SummonPlatform) {
			p.Spec.Database.InCluster = &InClusterDatabase{StorageSize: quantity("100Mi")}
		}, want: "spec.database.inCluster.storageSize"},
		"a storage class for an in-cluster database with Retain is refused": {edit: func(p *SummonPlatform) {
			p.Spec.Database.InCluster = &InClusterDatabase{StorageClass: "fast"}
		}, want: "only with deletionPolicy Delete"},
		"a storage class for an in-cluster database with Delete is valid": {edit: func(p *SummonPlatform) {
			p.Spec.Database.InCluster = &InClusterDatabase{StorageClass: "fast"}
			p.Spec.DeletionPolicy = DeletionPolicyDelete
		}},
		"redis with defaults is valid": {edit: func(p *SummonPlatform) { p.Spec.Redis = &Redis{} }},
		"an external redis is valid":   {edit: func(p *SummonPlatform) { p.Spec.Redis = &Redis{URLSecret: &SecretKeyRef{Name: "redis", Key: "url"}} }},
		"an external redis sized like an own one is refused": {edit: func(p *SummonPlatform) {
			p.Spec.Redis = &Redis{URLSecret: &SecretKeyRef{Name: "redis", Key: "url"}, CacheMemory: quantity("1Gi")}
		}, want: "set one or the other"},
		"an external redis without a key is refused": {edit: func(p *SummonPlatform) { p.Spec.Redis = &Redis{URLSecret: &SecretKeyRef{Name: "redis"}} }, want: "spec.redis.urlSecret.key"},
		"a redis cache of 8Mi is refused":            {edit: func(p *SummonPlatform) { p.Spec.Redis = &Redis{CacheMemory: quantity("8Mi")} }, want: "spec.redis.cacheMemory"},
		"a Channels layer of 65Gi is refused":        {edit: func(p *SummonPlatform) { p.Spec.Redis = &Redis{ChannelsMemory: quantity("65Gi")} }, want: "spec.redis.channelsMemory"},
		"an unknown sslMode is refused":              {edit: func(p *SummonPlatform) { p.Spec.Database.Shared = &SharedDatabase{Host: "pg", SSLMode: "sometimes"} }, want: "sslMode"},
		"autoscaling with max below min is refused":  {edit: func(p *SummonPlatform) { p.Spec.Autoscaling.Web = &HorizontalScaling{MinReplicas: 3, MaxReplicas: 2} }, want: "must be at least minReplicas"},
		"an unknown deletion policy is refused":      {edit: func(p *SummonPlatform) { p.Spec.DeletionPolicy = "Orphan" }, want: "deletionPolicy"},
		"a too short migration deadline is refused":  {edit: func(p *SummonPlatform) { d := int64(5); p.Spec.Migrations.ActiveDeadlineSeconds = &d }, want: "between 60 and 86400"},
		"a websocket path under /static is refused":  {edit: func(p *SummonPlatform) { p.Spec.Ingress.WebsocketPath = "/static/ws" }, want: "websocketPath"},
		"a duplicate input Secret is refused":        {edit: func(p *SummonPlatform) { p.Spec.Secrets = []string{"a", "a"} }, want: "spec.secrets[1]"},
		"an ASGI path that is not Python is refused": {edit: func(p *SummonPlatform) { p.Spec.App.ASGI = "my-app:app" }, want: "spec.app.asgi"},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			p := valid()
			tt.edit(p)
			errs := Validate(p)
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Errorf("want valid, got %v", errs.ToAggregate())
			case tt.want != "" && len(errs) == 0:
				t.Errorf("want an error containing %q, got none", tt.want)
			case tt.want != "" && !strings.Contains(errs.ToAggregate().Error(), tt.want):
				t.Errorf("want an error containing %q, got %v", tt.want, errs.ToAggregate())
			}
		})
	}
}

func TestDefaultsFillEverythingTheBuildersRead(t *testing.T) {
	s := valid().Spec.Defaulted(HookDefaults{Image: "registry.example.com/summon-platform"})
	for name, p := range map[string]*int32{
		"web": s.Replicas.Web, "daphne": s.Replicas.Daphne, "channelWorker": s.Replicas.ChannelWorker,
		"celeryd": s.Replicas.Celeryd, "static": s.Replicas.Static, "celeryBeat": s.Replicas.CeleryBeat,
		"backoffLimit": s.Migrations.BackoffLimit,
	} {
		if p == nil {
			t.Errorf("%s has no default", name)
		}
	}
	if s.Image == "" || s.DeletionPolicy != DeletionPolicyRetain || len(s.Migrations.Command) == 0 || s.Migrations.ActiveDeadlineSeconds == nil {
		t.Errorf("defaults missing: %+v", s)
	}
}

func TestDefaultsSizeTheDataServicesInsideTheCluster(t *testing.T) {
	spec := valid().Spec
	spec.Redis = &Redis{}
	spec.Database.InCluster = &InClusterDatabase{}
	s := spec.Defaulted(HookDefaults{})
	got := map[string]string{
		"cacheMemory":    s.Redis.CacheMemory.String(),
		"channelsMemory": s.Redis.ChannelsMemory.String(),
		"storageSize":    s.Database.InCluster.StorageSize.String(),
	}
	want := map[string]string{"cacheMemory": "256Mi", "channelsMemory": "64Mi", "storageSize": "1Gi"}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s defaults to %s, want %s", k, got[k], want[k])
		}
	}
	if spec.Redis.CacheMemory != nil || spec.Database.InCluster.StorageSize != nil {
		t.Error("Defaulted changed its input")
	}
	external := valid().Spec
	external.Redis = &Redis{URLSecret: &SecretKeyRef{Name: "redis", Key: "url"}}
	if r := external.Defaulted(HookDefaults{}).Redis; r.CacheMemory != nil || r.ChannelsMemory != nil {
		t.Errorf("an external Redis got the sizes of an own one: %+v", r)
	}
}

func TestDefaultingLeavesTheInputAlone(t *testing.T) {
	in := valid().Spec
	_ = in.Defaulted(HookDefaults{Image: "x"})
	if in.Replicas.Web != nil || in.Image != "" {
		t.Errorf("Defaulted changed its input: %+v", in)
	}
}

func TestConfigValueAcceptsOnlyScalars(t *testing.T) {
	tests := map[string]struct {
		json string
		ok   bool
	}{
		"a string": {`"x"`, true}, "a bool": {`true`, true}, "a number": {`1.5`, true},
		"a list": {`[1]`, false}, "a map": {`{"a":1}`, false}, "null": {`null`, false},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			var v ConfigValue
			err := json.Unmarshal([]byte(tt.json), &v)
			if (err == nil) != tt.ok {
				t.Fatalf("Unmarshal(%s) error = %v, want ok=%v", tt.json, err, tt.ok)
			}
			if tt.ok {
				back, _ := json.Marshal(v)
				if string(back) != tt.json {
					t.Errorf("round trip: got %s, want %s", back, tt.json)
				}
			}
		})
	}
}

func FuzzConfigValue(f *testing.F) {
	for _, s := range []string{`"x"`, `true`, `1e9`, `[1]`, `{"a":1}`, `null`, `"\u00e9"`, `-0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v ConfigValue
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			return
		}
		switch v.Value().(type) {
		case string, bool, json.Number:
		default:
			t.Fatalf("%q decoded to a %T", in, v.Value())
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("%q decoded but does not encode: %v", in, err)
		}
	})
}
