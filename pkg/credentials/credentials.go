// Package credentials derives the secrets Summon generates (Django's SECRET_KEY, the database,
// RabbitMQ and Redis passwords) from one hook-side master key. A derived secret is the same on every sync
// and on every hook replica, so no interleaving of syncs can leave the password in the config
// Secret different from the one set in Postgres or RabbitMQ (DESIGN.md 5.3): there is nothing to
// remember and nothing to race on. Clients of the cluster never hold the key; they use the other
// Sources here, which stand in for it. It performs no I/O.
package credentials

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// Purposes name what a derived secret is for; each gives an unrelated value.
const (
	DjangoSecretKey  = "django-secret-key"
	DatabasePassword = "database-password"
	RabbitMQPassword = "rabbitmq-password"
	// RedisPassword is the password of the instance's own Redis servers.
	RedisPassword = "redis-password"
	// InClusterDatabasePassword is the password of the owner of the instance's own Postgres.
	InClusterDatabasePassword = "in-cluster-database-password"
)

// Purposes are every purpose Summon derives a secret for: a test that no secret leaks checks each.
var Purposes = []string{DjangoSecretKey, DatabasePassword, RabbitMQPassword, RedisPassword, InClusterDatabasePassword}

// MinKeyLength is the shortest master key accepted: 32 bytes, the HMAC-SHA-256 block of security.
const MinKeyLength = 32

// Source gives the generated secrets of an instance: the hook's Deriver, or, in a client that has
// no master key, a stand-in for it.
type Source interface {
	// Derive gives the secret of one instance (by its UID) for one purpose.
	Derive(uid, purpose string) string
	// Ready says whether generated credentials are on at all.
	Ready() bool
}

// Deriver derives per-instance secrets from the master key.
type Deriver struct {
	key []byte
}

// NewDeriver checks and wraps a master key.
func NewDeriver(key []byte) (Deriver, error) {
	if len(key) < MinKeyLength {
		return Deriver{}, errors.New("the credential master key must be at least 32 bytes")
	}
	return Deriver{key: append([]byte(nil), key...)}, nil
}

// Derive is HMAC-SHA-256(master key, uid/purpose), URL-safe base64 without padding: 43
// characters that need no quoting in a URL, a YAML file or a shell. The parent's UID ties the
// secret to one incarnation of the instance: a SummonPlatform deleted and created again under the
// same name gets new credentials.
func (d Deriver) Derive(uid, purpose string) string {
	mac := hmac.New(sha256.New, d.key)
	mac.Write([]byte(uid))
	mac.Write([]byte{'/'})
	mac.Write([]byte(purpose))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Ready says whether a master key was given.
func (d Deriver) Ready() bool { return len(d.key) > 0 }

// Placeholder stands in for the master key where there is none to hand (summonctl render, offline):
// each purpose gives one fixed, visible value that needs no quoting in a URL or a YAML file, so a
// rendered config file shows where a generated secret goes without holding one.
type Placeholder struct{}

// Derive gives the placeholder of a purpose, the same for every instance.
func (Placeholder) Derive(_, purpose string) string { return "generated-by-the-hook-" + purpose }

// Ready is true: the placeholder stands for a hook that has a key.
func (Placeholder) Ready() bool { return true }

// Known gives back secrets that were read elsewhere, such as from the live app config Secret of an
// instance (summonctl diff), so that a client without the key computes the same config file, and
// the same config hash, as the hook did. A purpose it doesn't know comes from Fallback, which also
// says whether generated credentials are on.
type Known struct {
	// Values are the secrets by purpose.
	Values map[string]string
	// Fallback answers what Values lack; it must not be nil.
	Fallback Source
}

// Derive gives the known secret of a purpose, or the fallback's.
func (k Known) Derive(uid, purpose string) string {
	if v, ok := k.Values[purpose]; ok {
		return v
	}
	return k.Fallback.Derive(uid, purpose)
}

// Ready is the fallback's: a known value says nothing about whether the hook generates any.
func (k Known) Ready() bool { return k.Fallback.Ready() }
