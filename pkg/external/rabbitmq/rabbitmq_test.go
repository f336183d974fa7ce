package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
)

// countingAPI counts the calls that reach the real management API, by method.
type countingAPI struct {
	testenv.Calls
	api ManagementAPI
}

func (c *countingAPI) count(method string) { c.Add(method) }

func (c *countingAPI) take() map[string]int { return c.Take() }

func (c *countingAPI) GetVhost(ctx context.Context, vhost string) (*rabbithole.VhostInfo, error) {
	c.count("GetVhost")
	return c.api.GetVhost(ctx, vhost)
}

func (c *countingAPI) PutVhost(ctx context.Context, vhost, description string) error {
	c.count("PutVhost")
	return c.api.PutVhost(ctx, vhost, description)
}

func (c *countingAPI) DeleteVhost(ctx context.Context, vhost string) error {
	c.count("DeleteVhost")
	return c.api.DeleteVhost(ctx, vhost)
}

func (c *countingAPI) GetUser(ctx context.Context, user string) (*rabbithole.UserInfo, error) {
	c.count("GetUser")
	return c.api.GetUser(ctx, user)
}

func (c *countingAPI) PutUser(ctx context.Context, user string, settings rabbithole.UserSettings) error {
	c.count("PutUser")
	return c.api.PutUser(ctx, user, settings)
}

func (c *countingAPI) DeleteUser(ctx context.Context, user string) error {
	c.count("DeleteUser")
	return c.api.DeleteUser(ctx, user)
}

func (c *countingAPI) ListPermissionsOf(ctx context.Context, user string) ([]rabbithole.PermissionInfo, error) {
	c.count("ListPermissionsOf")
	return c.api.ListPermissionsOf(ctx, user)
}

func (c *countingAPI) UpdatePermissionsIn(ctx context.Context, vhost, user string, permissions rabbithole.Permissions) error {
	c.count("UpdatePermissionsIn")
	return c.api.UpdatePermissionsIn(ctx, vhost, user, permissions)
}

func (c *countingAPI) ClearPermissionsIn(ctx context.Context, vhost, user string) error {
	c.count("ClearPermissionsIn")
	return c.api.ClearPermissionsIn(ctx, vhost, user)
}

// newProvider wraps the real management client in a counter.
func newProvider(t *testing.T, cfg Config) (*Provider, *countingAPI) {
	t.Helper()
	endpoint, user, password, err := splitCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := NewManagement(endpoint, user, password, nil)
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingAPI{api: inner}
	p, err := NewWithAPI(counting, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, counting
}

// adminClient looks at the server as the admin.
func adminClient(t *testing.T, managementURL string) *rabbithole.Client {
	t.Helper()
	endpoint, user, password, err := splitCredentials(Config{ManagementURL: managementURL})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rabbithole.NewClient(endpoint, user, password)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(5 * time.Second)
	return c
}

var testKey = []byte("summon-test-master-key-0123456789abcdef")

// instance is a fresh instance with names no other test (or earlier run) uses.
func instance(t *testing.T) external.Instance {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := "rmqtest-" + hex.EncodeToString(b)
	d, err := credentials.NewDeriver(testKey)
	if err != nil {
		t.Fatal(err)
	}
	uid := "uid-" + ns
	return external.Instance{
		Namespace: ns, Name: "car1", UID: uid,
		Names:          external.NamesFor("summon-test-", ns, "car1"),
		RabbitPassword: d.Derive(uid, credentials.RabbitMQPassword),
	}
}

func cleanup(t *testing.T, p *Provider, in external.Instance) {
	t.Cleanup(func() {
		if _, err := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete); err != nil && !external.LeftAlone(err) {
			t.Errorf("cleaning up: %v", err)
		}
	})
}

// serverState is what RabbitMQ holds for an instance, as the admin sees it.
type serverState struct {
	VhostExists  bool
	UserExists   bool
	Tags         []string
	PasswordHash string
	Permissions  []rabbithole.PermissionInfo
}

func stateOf(t *testing.T, admin *rabbithole.Client, in external.Instance) serverState {
	t.Helper()
	var s serverState
	if _, err := admin.GetVhost(in.Names.RabbitVhost); err == nil {
		s.VhostExists = true
	} else if !notFound(err) {
		t.Fatal(err)
	}
	u, err := admin.GetUser(in.Names.RabbitUser)
	if notFound(err) {
		return s
	}
	if err != nil {
		t.Fatal(err)
	}
	s.UserExists, s.PasswordHash = true, u.PasswordHash
	for _, tag := range u.Tags {
		// The owner mark is the one tag Summon sets; the ownership tests check it.
		if _, mark := external.ParseMarkText(tag); tag != "" && !mark {
			s.Tags = append(s.Tags, tag)
		}
	}
	if s.Permissions, err = admin.ListPermissionsOf(in.Names.RabbitUser); err != nil {
		t.Fatal(err)
	}
	return s
}

// dial logs in over AMQP with the URL Ensure returned.
func dial(amqpURL string) error {
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

func ownPermissions(in external.Instance) []rabbithole.PermissionInfo {
	return []rabbithole.PermissionInfo{{User: in.Names.RabbitUser, Vhost: in.Names.RabbitVhost, Configure: ".*", Write: ".*", Read: ".*"}}
}

func TestEnsureCreatesVhostAndUserAndIsIdempotent(t *testing.T) {
	mgmt := testenv.RabbitMQ(t)
	p, counting := newProvider(t, Config{ManagementURL: mgmt})
	admin := adminClient(t, mgmt)
	in := instance(t)
	cleanup(t, p, in)
	ctx := context.Background()

	amqpURL, err := p.Ensure(ctx, in)
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"GetVhost": 1, "PutVhost": 1, "GetUser": 1, "PutUser": 1, "UpdatePermissionsIn": 1}, counting.take()); diff != "" {
		t.Errorf("first Ensure calls (-want +got):\n%s", diff)
	}
	first := stateOf(t, admin, in)
	want := serverState{VhostExists: true, UserExists: true, PasswordHash: first.PasswordHash, Permissions: ownPermissions(in)}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("after first Ensure (-want +got):\n%s", diff)
	}

	again, err := p.Ensure(ctx, in)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"GetVhost": 1, "GetUser": 1, "ListPermissionsOf": 1}, counting.take()); diff != "" {
		t.Errorf("second Ensure calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first, stateOf(t, admin, in)); diff != "" {
		t.Errorf("second Ensure changed the server (-first +second):\n%s", diff)
	}
	if again != amqpURL {
		t.Errorf("second Ensure returned another URL")
	}
	if err := dial(amqpURL); err != nil {
		t.Errorf("logging in over AMQP with the URL Ensure returned: %v", err)
	}
}

func TestEnsureRepairs(t *testing.T) {
	mgmt := testenv.RabbitMQ(t)
	admin := adminClient(t, mgmt)
	ctx := context.Background()

	tests := map[string]struct {
		damage func(in external.Instance) (*http.Response, error)
		calls  map[string]int
	}{
		"a password changed by hand is set back": {
			damage: func(in external.Instance) (*http.Response, error) {
				return admin.PutUser(in.Names.RabbitUser, rabbithole.UserSettings{Password: "changed-by-hand", Tags: rabbithole.UserTags{}})
			},
			calls: map[string]int{"GetVhost": 1, "GetUser": 1, "PutUser": 1, "ListPermissionsOf": 1},
		},
		"a user given the management tag loses it": {
			damage: func(in external.Instance) (*http.Response, error) {
				return admin.PutUser(in.Names.RabbitUser, rabbithole.UserSettings{Password: in.RabbitPassword, Tags: rabbithole.UserTags{"management"}})
			},
			calls: map[string]int{"GetVhost": 1, "GetUser": 1, "PutUser": 1, "ListPermissionsOf": 1},
		},
		"narrowed permissions are widened again": {
			damage: func(in external.Instance) (*http.Response, error) {
				return admin.UpdatePermissionsIn(in.Names.RabbitVhost, in.Names.RabbitUser, rabbithole.Permissions{Configure: "^$", Write: ".*", Read: ".*"})
			},
			calls: map[string]int{"GetVhost": 1, "GetUser": 1, "ListPermissionsOf": 1, "UpdatePermissionsIn": 1},
		},
		"permissions on another vhost are revoked": {
			damage: func(in external.Instance) (*http.Response, error) {
				// The default vhost "/" is shared by everything on the server.
				return admin.UpdatePermissionsIn("/", in.Names.RabbitUser, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
			},
			calls: map[string]int{"GetVhost": 1, "GetUser": 1, "ListPermissionsOf": 1, "ClearPermissionsIn": 1},
		},
		"a deleted vhost is created again": {
			damage: func(in external.Instance) (*http.Response, error) {
				return admin.DeleteVhost(in.Names.RabbitVhost)
			},
			calls: map[string]int{"GetVhost": 1, "PutVhost": 1, "GetUser": 1, "ListPermissionsOf": 1, "UpdatePermissionsIn": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, counting := newProvider(t, Config{ManagementURL: mgmt})
			in := instance(t)
			cleanup(t, p, in)
			if _, err := p.Ensure(ctx, in); err != nil {
				t.Fatal(err)
			}
			if res, err := tc.damage(in); err != nil {
				t.Fatalf("damaging: %v", err)
			} else {
				res.Body.Close()
			}
			counting.take()

			amqpURL, err := p.Ensure(ctx, in)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if diff := cmp.Diff(tc.calls, counting.take()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			got := stateOf(t, admin, in)
			want := serverState{VhostExists: true, UserExists: true, PasswordHash: got.PasswordHash, Permissions: ownPermissions(in)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("after repair (-want +got):\n%s", diff)
			}
			if err := dial(amqpURL); err != nil {
				t.Errorf("logging in after repair: %v", err)
			}
		})
	}
}

func TestFinalize(t *testing.T) {
	mgmt := testenv.RabbitMQ(t)
	admin := adminClient(t, mgmt)
	ctx := context.Background()

	tests := map[string]struct {
		policy v1beta1.DeletionPolicy
		want   serverState
		// calls on the first Finalize and on every later one
		calls, again map[string]int
	}{
		"retain keeps the vhost and deletes the user": {
			policy: v1beta1.DeletionPolicyRetain,
			want:   serverState{VhostExists: true},
			// the vhost is marked released: a recreated parent adopts it only on purpose
			calls: map[string]int{"GetUser": 2, "DeleteUser": 1, "GetVhost": 1, "PutVhost": 1},
			again: map[string]int{"GetUser": 1, "GetVhost": 1},
		},
		"delete deletes the vhost and the user": {
			policy: v1beta1.DeletionPolicyDelete,
			want:   serverState{},
			calls:  map[string]int{"GetUser": 2, "DeleteUser": 1, "GetVhost": 2, "DeleteVhost": 1},
			again:  map[string]int{"GetUser": 1, "GetVhost": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, counting := newProvider(t, Config{ManagementURL: mgmt})
			in := instance(t)
			cleanup(t, p, in)
			amqpURL, err := p.Ensure(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
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
			if diff := cmp.Diff(tc.want, stateOf(t, admin, in)); diff != "" {
				t.Errorf("after Finalize (-want +got):\n%s", diff)
			}
			if err := dial(amqpURL); err == nil {
				t.Errorf("the user can still log in after Finalize")
			}
		})
	}
}

func TestBadNamesAreRefusedBeforeAnyCall(t *testing.T) {
	good := external.Instance{Names: external.Names{RabbitVhost: "shop.car1", RabbitUser: "shop.car1"}, RabbitPassword: "pw"}
	tests := map[string]func(n *external.Names){
		"a vhost with a slash":              func(n *external.Names) { n.RabbitVhost = "shop/car1" },
		"the default vhost":                 func(n *external.Names) { n.RabbitVhost = "/" },
		"an empty vhost":                    func(n *external.Names) { n.RabbitVhost = "" },
		"a vhost longer than 255 bytes":     func(n *external.Names) { n.RabbitVhost = strings.Repeat("v", 256) },
		"a vhost with a control character":  func(n *external.Names) { n.RabbitVhost = "shop\ncar1" },
		"a vhost that is not UTF-8":         func(n *external.Names) { n.RabbitVhost = "shop\xffcar1" },
		"a user with a slash":               func(n *external.Names) { n.RabbitUser = "shop/car1" },
		"an empty user":                     func(n *external.Names) { n.RabbitUser = "" },
		"a user name longer than 255 bytes": func(n *external.Names) { n.RabbitUser = strings.Repeat("u", 256) },
	}
	for name, damage := range tests {
		t.Run(name, func(t *testing.T) {
			counting := &countingAPI{} // no real API: any call panics
			p, err := NewWithAPI(counting, Config{ManagementURL: "http://127.0.0.1:15672"})
			if err != nil {
				t.Fatal(err)
			}
			in := good
			damage(&in.Names)
			_, ensureErr := p.Ensure(context.Background(), in)
			_, finalizeErr := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete)
			for op, err := range map[string]error{"Ensure": ensureErr, "Finalize": finalizeErr} {
				var xerr *external.Error
				if !errors.As(err, &xerr) || xerr.Retryable {
					t.Errorf("%s: want a non-retryable *external.Error, got %#v", op, err)
				}
			}
			if diff := cmp.Diff(map[string]int{}, counting.take()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("the longest good name is accepted", func(t *testing.T) {
		if err := checkName(strings.Repeat("v", 255)); err != nil {
			t.Error(err)
		}
	})
}

func TestUnreachableManagementAPIGivesAClassifiedError(t *testing.T) {
	const adminPassword = "admin-secret-password"
	tests := map[string]struct {
		endpoint  func(t *testing.T) string
		deadline  bool
		retryable bool
	}{
		"nothing listens on the port": {
			endpoint:  func(t *testing.T) string { return "http://" + testenv.ClosedAddr(t) },
			retryable: true,
		},
		"the API answers 500": {
			endpoint: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, `{"error":"internal","reason":"boom"}`, http.StatusInternalServerError)
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			retryable: true,
		},
		"the API refuses the admin": {
			endpoint: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, `{"error":"not_authorised"}`, http.StatusUnauthorized)
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			retryable: false,
		},
		"the API hangs": {
			endpoint: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					<-r.Context().Done()
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			deadline:  true,
			retryable: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			endpoint := strings.Replace(tc.endpoint(t), "http://", "http://summon-admin:"+adminPassword+"@", 1)
			p, err := New(Config{ManagementURL: endpoint, CallTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			in := instance(t)

			// A hanging system must end in a deadline error (checked below), never in a wait
			// for the hook's whole budget; no wall-clock time is asserted.
			_, ensureErr := p.Ensure(context.Background(), in)
			_, finalizeErr := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete)
			for op, err := range map[string]error{"Ensure": ensureErr, "Finalize": finalizeErr} {
				testenv.ExpectFailure(t, op, err, "RabbitMQ", tc.retryable, tc.deadline, adminPassword, in.RabbitPassword)
			}
		})
	}
}

func TestAMQPURL(t *testing.T) {
	in := external.Instance{Names: external.Names{RabbitVhost: "shop.car 1%", RabbitUser: "shop.car1"}, RabbitPassword: "p4ss-w_rd"}
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"the management host and the AMQP port by default": {
			cfg:  Config{ManagementURL: "http://admin:pw@rabbit.infra:15672"},
			want: "amqp://shop.car1:p4ss-w_rd@rabbit.infra:5672/shop.car%201%25",
		},
		"the apps' host and port from configuration": {
			cfg:  Config{ManagementURL: "http://rabbit-mgmt:15672", AMQPHost: "rabbit.infra.svc", AMQPPort: 5673},
			want: "amqp://shop.car1:p4ss-w_rd@rabbit.infra.svc:5673/shop.car%201%25",
		},
		"TLS uses amqps and its port": {
			cfg:  Config{ManagementURL: "https://rabbit.infra:15671", AMQPS: true},
			want: "amqps://shop.car1:p4ss-w_rd@rabbit.infra:5671/shop.car%201%25",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := NewWithAPI(nil, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, p.amqpURL(in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// otherVhostURL is an instance's own AMQP URL pointed at another vhost.
func otherVhostURL(t *testing.T, own string, vhost string) string {
	t.Helper()
	u, err := url.Parse(own)
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = "/"+vhost, "/"+url.PathEscape(vhost)
	return u.String()
}

func TestATenantsUserIsRefusedOnAnotherTenantsVhost(t *testing.T) {
	mgmt := testenv.RabbitMQ(t)
	p, _ := newProvider(t, Config{ManagementURL: mgmt})
	a, b := instance(t), instance(t)
	cleanup(t, p, a)
	cleanup(t, p, b)
	urlA, err := p.Ensure(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ensure(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := dial(urlA); err != nil {
		t.Fatalf("tenant A can't log in to its own vhost: %v", err)
	}
	err = dial(otherVhostURL(t, urlA, b.Names.RabbitVhost))
	if err == nil {
		t.Fatal("tenant A's user opened a connection on tenant B's vhost")
	}
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.AccessRefused && amqpErr.Code != amqp.NotAllowed {
		t.Errorf("tenant A on tenant B's vhost: want RabbitMQ's access refused, got %v", err)
	}
	if err := dial(otherVhostURL(t, urlA, "/")); err == nil {
		t.Error("tenant A's user opened a connection on the default vhost")
	}
}
