package children

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// maxChildName bounds every child name. A StatefulSet's pods carry the label
// controller-revision-hash=<name>-<10 characters>, and a label value is at most 63 characters, so a
// StatefulSet name longer than 52 characters can never run a pod. One bound for every child keeps
// the names of one instance alike.
const maxChildName = 52

// longestSuffix is the longest suffix a child name takes: "-migrate-" and an 8-character hash.
const longestSuffix = len("-migrate-") + 8

// Names are the names of one instance's children. They are derived here and nowhere else.
type Names struct {
	base string
}

// NamesFor derives the children's names from the parent's name. A short parent name is used as
// it is; a long one is cut and given a hash of the whole name, so that two long names that share
// a prefix never share children.
func NamesFor(parent string) Names {
	limit := maxChildName - longestSuffix
	if len(parent) <= limit {
		return Names{base: parent}
	}
	h := shortHash(parent)
	cut := parent[:limit-len(h)-1]
	for len(cut) > 0 && cut[len(cut)-1] == '-' {
		cut = cut[:len(cut)-1]
	}
	return Names{base: cut + "-" + h}
}

// Of is the name of a component's workload, Service, PDB and HPA (each kind has its own namespace
// of names, so they share it).
func (n Names) Of(c Component) string { return n.base + "-" + string(c) }

// Config is the app config Secret.
func (n Names) Config() string { return n.base + "-config" }

// TLS is the default Secret that holds the Ingress certificate.
func (n Names) TLS() string { return n.base + "-tls" }

// Ingress is the one Ingress.
func (n Names) Ingress() string { return n.base }

// MigrationJob is the migration Job for one version and attempt. Jobs are immutable, so each
// version (and each retry of it) gets a Job of its own.
func (n Names) MigrationJob(version string, attempt int32) string {
	return n.base + "-migrate-" + shortHash(fmt.Sprintf("%s/%d", version, attempt))
}

// BackupJob is the Job that backs the database up before the migration of one version and
// attempt: named like the migration Job it precedes.
func (n Names) BackupJob(version string, attempt int32) string {
	return n.base + "-backup-" + shortHash(fmt.Sprintf("%s/%d", version, attempt))
}

// RestoreJob is the Job summonctl restore runs to bring one backup back.
func (n Names) RestoreJob(backup string) string {
	return n.base + "-restore-" + shortHash(backup)
}

// Database is the Secret that holds the libpq environment (PGHOST, PGUSER, PGPASSWORD, ...) of
// the instance's own role, which the backup and restore Jobs read.
func (n Names) Database() string { return n.base + "-database" }

// shortHash is 8 hex characters of SHA-256: stable across releases, since names must never change
// under a running instance.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// AWSCredentials is the Secret that holds the instance's IAM access key.
func (n Names) AWSCredentials() string { return n.base + "-aws" }

// PostgresOwner is the basic-auth Secret that holds the password of the in-cluster database's
// owner. It is not <cluster>-app, the Secret CloudNativePG makes when it is given none.
func (n Names) PostgresOwner() string { return n.Of(Postgres) + "-owner" }
