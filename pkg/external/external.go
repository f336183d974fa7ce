package external

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Instance is what every provider needs to know about one SummonPlatform. The passwords are
// derived (pkg/credentials), so every caller that builds an Instance for the same parent gets the
// same values; nothing here is remembered by a provider between calls.
type Instance struct {
	Namespace string
	Name      string
	// UID is the parent's UID: every resource the providers make carries it as its owner mark.
	UID   string
	Names Names
	// AdoptFromUID is the UID of a deleted SummonPlatform whose retained resources this one may
	// take over (the parent's summon.forklift.dev/adopt-from-uid annotation); empty adopts
	// nothing.
	AdoptFromUID string
	// Inherited are names this instance had before owner marks existed (see ResolveNames): a
	// resource of such a name found without a mark is marked as this instance's.
	Inherited []string
	// DatabasePassword and RabbitPassword are set on the role and the user every time they are
	// created or repaired.
	DatabasePassword string
	RabbitPassword   string
	// HeldAccessKeyID is the IAM access key id in the instance's credentials Secret as observed,
	// empty when that Secret is missing.
	HeldAccessKeyID string
}

// String names the instance without any of its secrets, so that an Instance printed by mistake
// leaks nothing.
func (in Instance) String() string {
	return fmt.Sprintf("%s/%s (uid %s)", in.Namespace, in.Name, in.UID)
}

// Error is a failed call to a system outside the cluster, classified for the status: what was
// being done, in which system, and whether trying again later may help. Its message never holds a
// secret: the secrets a provider knows of are cut out of it (print the Error, not what it wraps).
type Error struct {
	// System is "AWS S3", "AWS IAM", "RabbitMQ" or "PostgreSQL".
	System string
	// Op says what was being done, e.g. `creating vhost "shop.car1"`.
	Op string
	// Retryable is true when the failure may pass by itself (a timeout, a refused connection, a
	// 5xx, throttling); false when a person must act (denied, invalid, owned by someone else).
	Retryable bool
	Err       error
	// NotOurs is set when the resource is not the instance's to change: the provider changed
	// nothing of it.
	NotOurs Ownership

	secrets []string
}

// Failed builds an Error whose message has each of secrets cut out.
func Failed(system, op string, retryable bool, err error, secrets ...string) *Error {
	return &Error{System: system, Op: op, Retryable: retryable, Err: err, secrets: secrets}
}

func (e *Error) Error() string {
	msg := "<nil>"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	for _, s := range e.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return e.System + ": " + e.Op + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// Transient reports the failures that look the same whatever the system: a deadline, a
// cancelled call, a connection that could not be made or broke. Providers add their own
// retryable answers (5xx, throttling, server shutting down) on top.
func Transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// DefaultCallTimeout bounds one call to an outside system. Metacontroller gives a hook 10 s in all
// and an Ensure makes several calls, so one slow system must not spend the whole budget.
const DefaultCallTimeout = 5 * time.Second

// WithCallTimeout bounds one call: d, or DefaultCallTimeout when d is zero or less. It never
// extends a deadline that ctx already has.
func WithCallTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = DefaultCallTimeout
	}
	return context.WithTimeout(ctx, d)
}
