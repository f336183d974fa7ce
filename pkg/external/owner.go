package external

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// OwnerKey names the owner mark: the key of the S3 bucket's and the IAM user's tag, and the
// prefix of the mark in a PostgreSQL comment, a RabbitMQ vhost's description and a RabbitMQ
// user's tag.
const OwnerKey = "summon.forklift.dev/uid"

// Mark is who owns a resource outside the cluster: the UID of the SummonPlatform that made it,
// and whether that SummonPlatform was deleted with deletionPolicy Retain, which releases the
// resource to be adopted on purpose by another one (Instance.AdoptFromUID).
type Mark struct {
	UID      string
	Retained bool
}

// retainedPrefix starts the value of a released mark. ':' is allowed in every system's tags.
const retainedPrefix = "retained:"

// Value is the mark as a tag value: the UID, or "retained:" and the UID.
func (m Mark) Value() string {
	if m.Retained {
		return retainedPrefix + m.UID
	}
	return m.UID
}

// Text is the mark as free text (a comment, a description, a RabbitMQ user tag): OwnerKey=Value.
func (m Mark) Text() string { return OwnerKey + "=" + m.Value() }

// ParseMarkValue reads a tag value; "" is no mark.
func ParseMarkValue(v string) (Mark, bool) {
	if uid, ok := strings.CutPrefix(v, retainedPrefix); ok {
		return Mark{UID: uid, Retained: true}, uid != ""
	}
	return Mark{UID: v}, v != ""
}

// ParseMarkText reads a mark written by Text; any other text (a comment a person wrote) is no
// mark.
func ParseMarkText(s string) (Mark, bool) {
	v, ok := strings.CutPrefix(s, OwnerKey+"=")
	if !ok {
		return Mark{}, false
	}
	return ParseMarkValue(v)
}

// Ownership says why a resource is not an instance's to change; it is also the reason the
// status gives.
type Ownership string

const (
	// OwnedByAnotherInstance: the resource carries another SummonPlatform's UID.
	OwnedByAnotherInstance Ownership = "OwnedByAnotherInstance"
	// NotCreatedBySummon: the resource carries no owner mark (a person or another tool made it).
	NotCreatedBySummon Ownership = "NotCreatedBySummon"
	// OwnedByAnotherAccount: an S3 bucket of the name exists in another AWS account.
	OwnedByAnotherAccount Ownership = "OwnedByAnotherAccount"
)

// Claim is what an instance may do with a resource it found.
type Claim int

const (
	// Ours: the mark is the instance's own.
	Ours Claim = iota
	// Remark: the resource becomes the instance's (adopted, or inherited from before marks), and
	// must carry the instance's mark before anything else is changed.
	Remark
)

// Claim decides whether in may change a resource that exists with the mark found (found false:
// no mark). unmarkedIsOurs says the provider knows an unmarked resource to be the instance's
// anyway (a database owned by the instance's own role, an empty bucket its create left
// untagged). Anything else is refused with a non-retryable *Error whose NotOurs is set; its
// message names the resource and what to do, and holds another instance's UID only when that
// instance released the resource (so the UID of a running tenant is never shown to another).
func (in Instance) Claim(system, kind, name string, mark Mark, found, unmarkedIsOurs bool) (Claim, error) {
	op := fmt.Sprintf("checking the owner of %s %q", kind, name)
	switch {
	case found && mark.UID == in.UID:
		if mark.Retained {
			return Remark, nil
		}
		return Ours, nil
	case found && mark.Retained && in.AdoptFromUID != "" && mark.UID == in.AdoptFromUID:
		return Remark, nil
	case found && mark.Retained:
		return Ours, notOurs(system, op, OwnedByAnotherInstance, fmt.Errorf(
			"it holds the data of SummonPlatform uid %s, deleted with deletionPolicy Retain; "+
				"to take it over, annotate this SummonPlatform with summon.forklift.dev/adopt-from-uid=%s", mark.UID, mark.UID))
	case found:
		return Ours, notOurs(system, op, OwnedByAnotherInstance, errors.New(
			"it belongs to another SummonPlatform, which still exists: Summon changes nothing of it; "+
				"give this SummonPlatform another name, or ask an operator"))
	case unmarkedIsOurs || slices.Contains(in.Inherited, name):
		return Remark, nil
	default:
		return Ours, notOurs(system, op, NotCreatedBySummon, fmt.Errorf(
			"it exists without Summon's owner mark (%s), so Summon did not create it and changes nothing of it; "+
				"remove it, give this SummonPlatform another name, or mark it by hand (see docs/security.md)", OwnerKey))
	}
}

func notOurs(system, op string, why Ownership, err error) *Error {
	return &Error{System: system, Op: op, Err: err, NotOurs: why}
}

// LeftAlone reports, from a Finalize, the resources that were not the instance's and so were
// neither changed nor waited for: err is nil, or a *Error with NotOurs set (or an errors.Join
// of them).
func LeftAlone(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !LeftAlone(e) {
				return false
			}
		}
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.NotOurs != ""
}
