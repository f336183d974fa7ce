// Package rabbitmq owns an instance's vhost and user on a shared RabbitMQ: Ensure creates or
// repairs them, Finalize always deletes the user and, under the Delete policy, the vhost. It talks
// to RabbitMQ only through ManagementAPI, with a deadline on every call, and checks every name
// before it sends one.
package rabbitmq

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
)

const system = "RabbitMQ"

// Config says which RabbitMQ to manage and how the apps reach it.
type Config struct {
	// ManagementURL is the management HTTP API, e.g. http://rabbitmq.infra:15672. It may carry
	// the admin's credentials (http://user:password@host:15672). Empty turns the provider off.
	ManagementURL string
	// Username and Password, when set, are the admin's credentials instead of the URL's.
	Username string
	Password string
	// AMQPHost and AMQPPort are where the apps connect: empty means the management URL's host,
	// zero means 5672 (5671 with AMQPS).
	AMQPHost string
	AMQPPort int
	// AMQPS makes the apps' URL amqps://.
	AMQPS bool
	// CallTimeout bounds each call; zero means external.DefaultCallTimeout.
	CallTimeout time.Duration
}

// Enabled says whether a RabbitMQ is configured; when it is not, nothing here is called.
func (c Config) Enabled() bool { return c.ManagementURL != "" }

// Provider ensures and finalizes vhosts and users on one RabbitMQ.
type Provider struct {
	api         ManagementAPI
	amqpScheme  string
	amqpAddr    string
	callTimeout time.Duration
	secrets     []string
}

// New makes a provider that calls the management API at cfg.ManagementURL.
func New(cfg Config) (*Provider, error) {
	endpoint, user, password, err := splitCredentials(cfg)
	if err != nil {
		return nil, err
	}
	api, err := NewManagement(endpoint, user, password, http.DefaultTransport)
	if err != nil {
		return nil, err
	}
	return NewWithAPI(api, cfg)
}

// NewWithAPI makes a provider that uses api; cfg still gives the apps' AMQP address.
func NewWithAPI(api ManagementAPI, cfg Config) (*Provider, error) {
	endpoint, _, password, err := splitCredentials(cfg)
	if err != nil {
		return nil, err
	}
	host, port, scheme := cfg.AMQPHost, cfg.AMQPPort, "amqp"
	if host == "" {
		u, _ := url.Parse(endpoint) // parsed by splitCredentials
		host = u.Hostname()
	}
	if port == 0 {
		port = 5672
	}
	if cfg.AMQPS {
		scheme = "amqps"
		if cfg.AMQPPort == 0 {
			port = 5671
		}
	}
	return &Provider{
		api:         api,
		amqpScheme:  scheme,
		amqpAddr:    net.JoinHostPort(host, strconv.Itoa(port)),
		callTimeout: cfg.CallTimeout,
		secrets:     []string{password},
	}, nil
}

// splitCredentials takes the admin's credentials out of the management URL.
func splitCredentials(cfg Config) (endpoint, user, password string, err error) {
	u, err := url.Parse(cfg.ManagementURL)
	if err != nil {
		// A *url.Error quotes the URL, password and all: keep only its reason.
		return "", "", "", fmt.Errorf("parsing the RabbitMQ management URL: %w", errors.Unwrap(err))
	}
	if u.Scheme == "" || u.Host == "" {
		return "", "", "", errors.New("the RabbitMQ management URL needs a scheme and a host")
	}
	user, password = u.User.Username(), ""
	if p, ok := u.User.Password(); ok {
		password = p
	}
	if cfg.Username != "" {
		user, password = cfg.Username, cfg.Password
	}
	u.User = nil
	return strings.TrimSuffix(u.String(), "/"), user, password, nil
}

// allPermissions lets the app do anything in its own vhost, and only there.
var allPermissions = rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}

// Ensure makes the instance's vhost exist, and its user exist with the derived password, no tag
// but its owner mark (so no management access) and every permission on that vhost and none
// elsewhere. The vhost carries the owner mark in its description, the user as its one tag; a
// vhost or a user of the instance's names that is not the instance's (another UID, or no mark)
// is refused before anything is changed. The password is set whenever the user is created or
// found with another one. It returns the AMQP URL for the apps.
func (p *Provider) Ensure(ctx context.Context, in external.Instance) (string, error) {
	vhost, user := in.Names.RabbitVhost, in.Names.RabbitUser
	if err := p.checkNames(in); err != nil {
		return "", err
	}
	if in.RabbitPassword == "" {
		return "", external.Failed(system, fmt.Sprintf("ensuring user %q", user), false, errors.New("no RabbitMQ password was derived"))
	}
	mine := external.Mark{UID: in.UID}

	info, err := call(ctx, p, in, fmt.Sprintf("looking up vhost %q", vhost), func(ctx context.Context) (*rabbithole.VhostInfo, error) {
		return p.api.GetVhost(ctx, vhost)
	})
	remark := notFound(err)
	if err != nil && !remark {
		return "", err
	}
	if !remark {
		mark, found := external.ParseMarkText(info.Description)
		claim, err := in.Claim(system, "vhost", vhost, mark, found, false)
		if err != nil {
			return "", err
		}
		remark = claim == external.Remark
	}
	if remark {
		err := p.do(ctx, in, fmt.Sprintf("marking vhost %q as %s's", vhost, in), func(ctx context.Context) error {
			return p.api.PutVhost(ctx, vhost, mine.Text())
		})
		if err != nil {
			return "", err
		}
	}

	found, err := call(ctx, p, in, fmt.Sprintf("looking up user %q", user), func(ctx context.Context) (*rabbithole.UserInfo, error) {
		return p.api.GetUser(ctx, user)
	})
	created := notFound(err)
	if err != nil && !created {
		return "", err
	}
	if !created {
		// A user of the instance's name that lost its tag (a person set its tags or password by
		// hand) is taken back: the names are unique to the namespace and name, and the vhost
		// was just found to be the instance's. One marked as another's is not.
		mark, marked := userMark(found)
		if _, err := in.Claim(system, "user", user, mark, marked, true); err != nil {
			return "", err
		}
	}
	if created || !hasPassword(found, in.RabbitPassword) || !onlyTag(found, mine.Text()) {
		err := p.do(ctx, in, fmt.Sprintf("setting the password of user %q", user), func(ctx context.Context) error {
			settings := rabbithole.UserSettings{Name: user, Password: in.RabbitPassword, Tags: rabbithole.UserTags{mine.Text()}}
			err := p.api.PutUser(ctx, user, settings)
			if hasStatus(err, http.StatusBadRequest) {
				// Of two PUTs that create one user at once, RabbitMQ answers the second with 400
				// user_already_exists; the same PUT again is an update of that user.
				err = p.api.PutUser(ctx, user, settings)
			}
			return err
		})
		if err != nil {
			return "", err
		}
	}

	var perms []rabbithole.PermissionInfo
	if !created {
		perms, err = call(ctx, p, in, fmt.Sprintf("listing the permissions of user %q", user), func(ctx context.Context) ([]rabbithole.PermissionInfo, error) {
			return p.api.ListPermissionsOf(ctx, user)
		})
		if err != nil {
			return "", err
		}
	}
	granted := false
	for _, perm := range perms {
		if perm.Vhost == vhost {
			granted = perm.Configure == allPermissions.Configure && perm.Write == allPermissions.Write && perm.Read == allPermissions.Read
			continue
		}
		err := p.do(ctx, in, fmt.Sprintf("revoking the permissions of user %q on vhost %q", user, perm.Vhost), func(ctx context.Context) error {
			return p.api.ClearPermissionsIn(ctx, perm.Vhost, user)
		})
		if err != nil {
			return "", err
		}
	}
	if !granted {
		err := p.do(ctx, in, fmt.Sprintf("granting user %q its vhost %q", user, vhost), func(ctx context.Context) error {
			return p.api.UpdatePermissionsIn(ctx, vhost, user, allPermissions)
		})
		if err != nil {
			return "", err
		}
	}
	return p.amqpURL(in), nil
}

// userMark reads the owner mark among a user's tags.
func userMark(u *rabbithole.UserInfo) (external.Mark, bool) {
	for _, t := range u.Tags {
		if m, ok := external.ParseMarkText(t); ok {
			return m, true
		}
	}
	return external.Mark{}, false
}

// onlyTag says the user's one tag is tag: any other (management, administrator) would open the
// HTTP API to the app. Old servers send tags as one comma-joined string.
func onlyTag(u *rabbithole.UserInfo, tag string) bool {
	n := 0
	for _, t := range u.Tags {
		switch t {
		case "":
		case tag:
			n++
		default:
			return false
		}
	}
	return n == 1
}

// Finalize deletes the user, and under the Delete policy the vhost with everything in it; under
// Retain it marks the vhost as released (retained), so that a recreated parent may adopt it on
// purpose. A user or vhost that is not the instance's is left alone: not changed, not waited
// for, and reported through a *external.Error with NotOurs set, next to what is left. It
// returns, in words for the status, what it has not yet seen gone; nothing left means done.
func (p *Provider) Finalize(ctx context.Context, in external.Instance, policy v1beta1.DeletionPolicy) ([]string, error) {
	vhost, user := in.Names.RabbitVhost, in.Names.RabbitUser
	if err := p.checkNames(in); err != nil {
		return nil, err
	}
	del := policy == v1beta1.DeletionPolicyDelete
	var alone []error

	info, err := call(ctx, p, in, fmt.Sprintf("looking up vhost %q", vhost), func(ctx context.Context) (*rabbithole.VhostInfo, error) {
		return p.api.GetVhost(ctx, vhost)
	})
	ourVhost := err == nil
	if err != nil && !notFound(err) {
		return nil, err
	}
	if ourVhost {
		mark, marked := external.ParseMarkText(info.Description)
		if _, err := in.Claim(system, "vhost", vhost, mark, marked, false); err != nil {
			ourVhost, alone = false, append(alone, err)
		}
	}
	found, err := call(ctx, p, in, fmt.Sprintf("looking up user %q", user), func(ctx context.Context) (*rabbithole.UserInfo, error) {
		return p.api.GetUser(ctx, user)
	})
	ourUser := err == nil
	if err != nil && !notFound(err) {
		return nil, err
	}
	if ourUser {
		mark, marked := userMark(found)
		// As in Ensure: a user that lost its tag to a hand edit is the instance's when its vhost is.
		if _, err := in.Claim(system, "user", user, mark, marked, ourVhost); err != nil {
			ourUser, alone = false, append(alone, err)
		}
	}
	if ourUser {
		err := p.do(ctx, in, fmt.Sprintf("deleting user %q", user), func(ctx context.Context) error {
			return p.api.DeleteUser(ctx, user)
		})
		if err != nil {
			return nil, err
		}
	}

	switch {
	case ourVhost && del:
		err := p.do(ctx, in, fmt.Sprintf("deleting vhost %q", vhost), func(ctx context.Context) error {
			return p.api.DeleteVhost(ctx, vhost)
		})
		if err != nil {
			return nil, err
		}
	case ourVhost:
		released := external.Mark{UID: in.UID, Retained: true}
		if info.Description != released.Text() {
			err := p.do(ctx, in, fmt.Sprintf("marking vhost %q as released by %s", vhost, in), func(ctx context.Context) error {
				return p.api.PutVhost(ctx, vhost, released.Text())
			})
			if err != nil {
				return nil, err
			}
		}
	}

	var left []string
	if ourUser {
		_, err = call(ctx, p, in, fmt.Sprintf("checking user %q", user), func(ctx context.Context) (*rabbithole.UserInfo, error) {
			return p.api.GetUser(ctx, user)
		})
		switch {
		case err == nil:
			left = append(left, fmt.Sprintf("RabbitMQ user %q still exists", user))
		case !notFound(err):
			return nil, err
		}
	}
	if ourVhost && del {
		_, err := call(ctx, p, in, fmt.Sprintf("checking vhost %q", vhost), func(ctx context.Context) (*rabbithole.VhostInfo, error) {
			return p.api.GetVhost(ctx, vhost)
		})
		switch {
		case err == nil:
			left = append(left, fmt.Sprintf("RabbitMQ vhost %q still exists", vhost))
		case !notFound(err):
			return nil, err
		}
	}
	return left, errors.Join(alone...)
}

// amqpURL is what the apps use; the vhost is one path segment, escaped.
func (p *Provider) amqpURL(in external.Instance) string {
	return p.amqpScheme + "://" + url.UserPassword(in.Names.RabbitUser, in.RabbitPassword).String() + "@" +
		p.amqpAddr + "/" + url.PathEscape(in.Names.RabbitVhost)
}

// checkNames refuses, before any call, a name the management API would take but mean otherwise:
// it accepts a '/' in a vhost name (and "/" is the default vhost every user may share).
func (p *Provider) checkNames(in external.Instance) error {
	for _, n := range []struct{ kind, name string }{{"vhost", in.Names.RabbitVhost}, {"user", in.Names.RabbitUser}} {
		if err := checkName(n.name); err != nil {
			return external.Failed(system, fmt.Sprintf("checking %s name %q", n.kind, n.name), false, err)
		}
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("the name is empty")
	case len(name) > 255:
		return fmt.Errorf("the name is %d bytes long, more than 255", len(name))
	case strings.Contains(name, "/"):
		return errors.New("the name holds a '/'")
	case !utf8.ValidString(name):
		return errors.New("the name is not UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("the name holds a control character")
	}
	return nil
}

// hasPassword checks password against the salted hash RabbitMQ keeps (4 bytes of salt, then
// the hash of salt and password), so a repeated Ensure sets nothing when nothing changed. A
// hash it cannot check counts as another password: setting it again is always safe.
func hasPassword(u *rabbithole.UserInfo, password string) bool {
	raw, err := base64.StdEncoding.DecodeString(u.PasswordHash)
	if err != nil || len(raw) < 5 {
		return false
	}
	salted := append(append([]byte(nil), raw[:4]...), password...)
	var sum []byte
	switch u.HashingAlgorithm {
	case rabbithole.HashingAlgorithmSHA256:
		s := sha256.Sum256(salted)
		sum = s[:]
	case rabbithole.HashingAlgorithmSHA512:
		s := sha512.Sum512(salted)
		sum = s[:]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(raw[4:], sum) == 1
}

// call runs one call with its own deadline and classifies its failure.
func call[T any](ctx context.Context, p *Provider, in external.Instance, op string, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := external.WithCallTimeout(ctx, p.callTimeout)
	defer cancel()
	v, err := f(ctx)
	if err != nil {
		return v, p.failed(in, op, err)
	}
	return v, nil
}

func (p *Provider) do(ctx context.Context, in external.Instance, op string, f func(context.Context) error) error {
	_, err := call(ctx, p, in, op, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

func (p *Provider) failed(in external.Instance, op string, err error) error {
	return external.Failed(system, op, retryable(err), err, append([]string{in.RabbitPassword}, p.secrets...)...)
}

func notFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

func hasStatus(err error, status int) bool {
	var rerr rabbithole.ErrorResponse
	return errors.As(err, &rerr) && rerr.StatusCode == status
}

// retryable: the management API answered 5xx or 429, or could not be reached in time. A 4xx
// (denied, invalid) needs a person; rabbit-hole reports a 401 as a plain error, which lands there.
func retryable(err error) bool {
	var rerr rabbithole.ErrorResponse
	if errors.As(err, &rerr) {
		return rerr.StatusCode >= 500 || rerr.StatusCode == http.StatusTooManyRequests
	}
	return external.Transient(err)
}
