package rabbitmq

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
)

// ManagementAPI is the part of RabbitMQ's management HTTP API that the provider uses. Every call
// takes a context whose deadline it honours. A DELETE of something that does not exist
// succeeds; a GET of it fails with a rabbithole.ErrorResponse of status 404.
type ManagementAPI interface {
	GetVhost(ctx context.Context, vhost string) (*rabbithole.VhostInfo, error)
	// PutVhost creates the vhost, or sets the description of one that exists.
	PutVhost(ctx context.Context, vhost, description string) error
	DeleteVhost(ctx context.Context, vhost string) error
	GetUser(ctx context.Context, user string) (*rabbithole.UserInfo, error)
	PutUser(ctx context.Context, user string, settings rabbithole.UserSettings) error
	DeleteUser(ctx context.Context, user string) error
	ListPermissionsOf(ctx context.Context, user string) ([]rabbithole.PermissionInfo, error)
	UpdatePermissionsIn(ctx context.Context, vhost, user string, permissions rabbithole.Permissions) error
	ClearPermissionsIn(ctx context.Context, vhost, user string) error
}

// Management is the real ManagementAPI. rabbit-hole v2 takes no context, so each call gets a
// client of its own whose transport sends every request with that call's context: a deadline
// or a cancel then ends the request, not just the wait for it.
type Management struct {
	endpoint  string
	username  string
	password  string
	transport http.RoundTripper
}

// NewManagement connects nothing yet; it checks the endpoint, which must carry no credentials
// (they would end up in error messages).
func NewManagement(endpoint, username, password string, transport http.RoundTripper) (*Management, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("parsing the RabbitMQ management URL: %w", err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("the RabbitMQ management endpoint must not hold credentials")
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &Management{endpoint: endpoint, username: username, password: password, transport: transport}, nil
}

func (m *Management) client(ctx context.Context) *rabbithole.Client {
	// The endpoint was parsed in NewManagement, so this cannot fail.
	c, _ := rabbithole.NewTLSClient(m.endpoint, m.username, m.password, boundTransport{ctx: ctx, base: m.transport})
	return c
}

// boundTransport sends every request with one context.
type boundTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (b boundTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return b.base.RoundTrip(r.WithContext(b.ctx))
}

// done closes the body that rabbit-hole hands back from writes.
func done(res *http.Response, err error) error {
	if res != nil && res.Body != nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return err
}

func (m *Management) GetVhost(ctx context.Context, vhost string) (*rabbithole.VhostInfo, error) {
	return m.client(ctx).GetVhost(vhost)
}

func (m *Management) PutVhost(ctx context.Context, vhost, description string) error {
	return done(m.client(ctx).PutVhost(vhost, rabbithole.VhostSettings{Description: description}))
}

func (m *Management) DeleteVhost(ctx context.Context, vhost string) error {
	return done(m.client(ctx).DeleteVhost(vhost))
}

func (m *Management) GetUser(ctx context.Context, user string) (*rabbithole.UserInfo, error) {
	return m.client(ctx).GetUser(user)
}

func (m *Management) PutUser(ctx context.Context, user string, settings rabbithole.UserSettings) error {
	return done(m.client(ctx).PutUser(user, settings))
}

func (m *Management) DeleteUser(ctx context.Context, user string) error {
	return done(m.client(ctx).DeleteUser(user))
}

func (m *Management) ListPermissionsOf(ctx context.Context, user string) ([]rabbithole.PermissionInfo, error) {
	return m.client(ctx).ListPermissionsOf(user)
}

func (m *Management) UpdatePermissionsIn(ctx context.Context, vhost, user string, permissions rabbithole.Permissions) error {
	return done(m.client(ctx).UpdatePermissionsIn(vhost, user, permissions))
}

func (m *Management) ClearPermissionsIn(ctx context.Context, vhost, user string) error {
	return done(m.client(ctx).ClearPermissionsIn(vhost, user))
}
