// Package credentials derives the secrets Summon generates (Django's SECRET_KEY, the database,
// RabbitMQ and Redis passwords) from one hook-side master key. A derived secret is the same on every sync
// and on every hook replica, so no interleaving of syncs can leave the password in the config
// Secret different from the one set in Postgres or RabbitMQ (DESIGN.md 5.3): there is nothing to
// remember and nothing to race on. It performs no I/O.
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

// MinKeyLength is the shortest master key accepted: 32 bytes, the HMAC-SHA-256 block of security.
const MinKeyLength = 32

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
