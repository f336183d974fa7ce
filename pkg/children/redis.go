package children

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The instance's own Redis is two Redis servers in one pod of a StatefulSet of one replica: one
// for Django's cache and one for the Channels layer.
//
// Two servers, because a Redis has one maxmemory and one maxmemory-policy, whatever its logical
// databases, and no policy suits both. channels_redis sets a TTL on every key it writes (messages
// expire after a minute, group memberships after a day), so under a volatile-* policy its keys are
// as evictable as the cache's, and under allkeys-* as well. A cache must evict when full; a Channels
// layer must not: an evicted group membership or message vanishes without a word. So the cache runs
// allkeys-lru, and the Channels layer runs noeviction: when it is full a send fails with an error the
// app sees, and its keys still expire on their own.
//
// A StatefulSet, not a Deployment: the Channels layer must never run on two servers at once. Behind
// one Service, a message published through the new pod never reaches a consumer subscribed through
// the old one. A Deployment's rolling update runs both; a StatefulSet deletes pod 0 before it starts
// its replacement, and never starts a second pod 0 while the first may still run on a lost node (as
// for Celerybeat). Nothing is persisted (no RDB, no AOF, no volume): a cache and a Channels layer are
// rebuilt by use, and a volume would tie the pod to one zone.
//
// Its pod template carries no app version and no app config hash: a deploy or a settings change of
// the app must not empty the cache or drop every websocket group. Its own hash, of its own config
// files, rolls it when the Redis settings change, and nothing else does.

// DefaultRedisImage is the Redis the hook runs when its --redis-image is not given: Valkey, the
// BSD-licensed fork of Redis that most distributions now ship. Redis itself is no longer under a
// BSD licence since 7.4. Its config and commands are Redis 7's, and the image has the redis-server
// name too, so --redis-image may name an official redis image instead.
const DefaultRedisImage = "docker.io/valkey/valkey:8.1"

// Settings that point the app at its Redis (docs/app-image.md).
const (
	RedisCacheURLSetting    = "REDIS_CACHE_URL"
	RedisChannelsURLSetting = "REDIS_CHANNELS_URL"
)

// RedisConfigDir is where each Redis container finds its config file.
const RedisConfigDir = "/etc/redis"

// redisUser is the uid and gid of the redis (and valkey) user of the official images; the config
// files are readable by its group only.
const redisUser = 999

// RedisServer is one of the two Redis servers of an instance.
type RedisServer struct {
	// Name is the container's and its port's name: cache or channels.
	Name string
	// Port is where it listens, in the pod and on the Service.
	Port int32
	// Policy is its maxmemory-policy.
	Policy string
	// Memory is its container's memory request and limit.
	Memory resource.Quantity
	// Setting is the app setting that holds its URL.
	Setting string
}

// File is the name of the server's config file in the Redis config Secret.
func (s RedisServer) File() string { return s.Name + ".conf" }

// MaxMemory is the server's maxmemory in bytes: three quarters of its container's memory. Redis
// counts only its dataset against maxmemory; the rest covers its own structures, fragmentation and
// client buffers, so that Redis evicts (or refuses) before the kernel kills it.
func (s RedisServer) MaxMemory() int64 { return s.Memory.Value() / 4 * 3 }

// RedisServers are the two servers of an instance's own Redis, sized by its defaulted spec.
func RedisServers(p Platform) []RedisServer {
	r := p.Spec.Redis
	return []RedisServer{
		{Name: "cache", Port: 6379, Policy: "allkeys-lru", Memory: *r.CacheMemory, Setting: RedisCacheURLSetting},
		{Name: "channels", Port: 6380, Policy: "noeviction", Memory: *r.ChannelsMemory, Setting: RedisChannelsURLSetting},
	}
}

// RedisConfig is one server's redis.conf. The password is in it, so it lives in a Secret and never
// in the pod spec.
func RedisConfig(p Platform, s RedisServer, password string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# The %s Redis of SummonPlatform %s/%s, written by Summon.\n", s.Name, p.Namespace, p.Name)
	fmt.Fprintf(&b, "port %d\n", s.Port)
	// Every address of the pod; "-" makes IPv6 optional, for clusters without it.
	b.WriteString("bind * -::*\n")
	fmt.Fprintf(&b, "requirepass %s\n", password)
	fmt.Fprintf(&b, "maxmemory %d\n", s.MaxMemory())
	fmt.Fprintf(&b, "maxmemory-policy %s\n", s.Policy)
	b.WriteString("# Rebuilt by use: nothing is written to disk.\n")
	b.WriteString("save \"\"\n")
	b.WriteString("appendonly no\n")
	return []byte(b.String())
}

// RedisConfigSecret holds the config file of each Redis server.
func RedisConfigSecret(p Platform, password string) *corev1.Secret {
	data := map[string][]byte{}
	for _, s := range RedisServers(p) {
		data[s.File()] = RedisConfig(p, s, password)
	}
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, p.Names.Of(Redis), Labels(p.Name, Redis)),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// RedisConfigHash names the content of the Redis config files. It is the only hash in the Redis
// pod template.
func RedisConfigHash(secret *corev1.Secret) string {
	var all []byte
	for _, name := range slices.Sorted(maps.Keys(secret.Data)) {
		all = append(all, name...)
		all = append(all, 0)
		all = append(all, secret.Data[name]...)
	}
	return ConfigHash(all)
}

// RedisStatefulSet runs the two Redis servers of an instance in one pod (see the top of this file
// for why).
func RedisStatefulSet(p Platform, image, configHash string) *appsv1.StatefulSet {
	var containers []corev1.Container
	for _, s := range RedisServers(p) {
		port := intstr.FromString(s.Name)
		containers = append(containers, corev1.Container{
			Name:  s.Name,
			Image: image,
			// redis-server rather than the image's entrypoint: the same command in a Valkey or a
			// Redis image, and the one the real-Redis test runs.
			Command:    []string{"redis-server", RedisConfigDir + "/" + s.File()},
			WorkingDir: "/data",
			Ports:      []corev1.ContainerPort{{Name: s.Name, ContainerPort: s.Port, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: s.Memory},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: s.Memory},
			},
			// A TCP check: a PING would need the password in the probe, that is in the pod spec.
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: port}}, PeriodSeconds: 10, FailureThreshold: 3},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: port}}, PeriodSeconds: 20, FailureThreshold: 6},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: RedisConfigDir, ReadOnly: true},
				{Name: "data", MountPath: "/data"},
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		})
	}
	return &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: objectMeta(p, p.Names.Of(Redis), Labels(p.Name, Redis)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: p.Names.Of(Redis),
			Selector:    &metav1.LabelSelector{MatchLabels: SelectorLabels(p.Name, Redis)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      Labels(p.Name, Redis),
					Annotations: map[string]string{AnnotationRedisConfigHash: configHash},
				},
				Spec: corev1.PodSpec{
					Containers: containers,
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName:  p.Names.Of(Redis),
							DefaultMode: ptr.To[int32](0o440),
						}}},
						{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](redisUser),
						RunAsGroup:     ptr.To[int64](redisUser),
						FSGroup:        ptr.To[int64](redisUser),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				},
			},
			RevisionHistoryLimit: ptr.To[int32](revisionHistory),
		},
	}
}

// RedisService is the ClusterIP Service of both Redis servers; the StatefulSet names it too.
func RedisService(p Platform) *corev1.Service {
	var ports []corev1.ServicePort
	for _, s := range RedisServers(p) {
		ports = append(ports, corev1.ServicePort{Name: s.Name, Port: s.Port, TargetPort: intstr.FromString(s.Name), Protocol: corev1.ProtocolTCP})
	}
	return clusterIPService(p, Redis, ports)
}

// RedisSettings are the app settings that point at the instance's own Redis: one URL per server,
// with the password, on the Service.
func RedisSettings(p Platform, password string) map[string]string {
	out := map[string]string{}
	for _, s := range RedisServers(p) {
		u := url.URL{
			Scheme: "redis",
			User:   url.UserPassword("", password),
			Host:   serviceHost(p, p.Names.Of(Redis)) + ":" + strconv.Itoa(int(s.Port)),
			Path:   "/0",
		}
		out[s.Setting] = u.String()
	}
	return out
}

// serviceHost is a Service's name in the instance's namespace, as the app's pods resolve it.
func serviceHost(p Platform, service string) string {
	return service + "." + p.Namespace + ".svc"
}
