package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// parent is the SummonPlatform as the hook could read it. Metadata, spec and status are read
// apart, so that a spec the hook can't read still leaves it the name it needs to keep the
// children and the status it must echo.
type parent struct {
	meta    metav1.ObjectMeta
	spec    v1beta1.Spec
	status  v1beta1.Status
	specErr error
	// rawSpec is the spec as the user wrote it, which the builder waves hash (inputsBase).
	rawSpec json.RawMessage
}

// Parent is a SummonPlatform as the hook reads it.
type Parent struct {
	Meta   metav1.ObjectMeta
	Spec   v1beta1.Spec
	Status v1beta1.Status
	// SpecErr says why the spec can't be read, in the words the hook's status uses; nil when it
	// can.
	SpecErr error
}

// ReadParent reads a SummonPlatform's JSON the way the sync hook does, so that a reader of the
// cluster (summonctl, the dashboard) copes with the same bad input in the same words: metadata,
// spec and status are read apart, and a spec that can't be read leaves the name and the status.
// The error is for JSON that is not an object, or has no metadata.name.
func ReadParent(raw []byte) (Parent, error) {
	p, err := decodeParent(raw)
	return Parent{Meta: p.meta, Spec: p.spec, Status: p.status, SpecErr: p.specErr}, err
}

func decodeParent(raw []byte) (parent, error) {
	var p parent
	var shell struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     json.RawMessage   `json:"spec"`
		Status   json.RawMessage   `json:"status"`
	}
	if err := json.Unmarshal(raw, &shell); err != nil {
		return p, fmt.Errorf("reading the parent: %w", err)
	}
	p.meta = shell.Metadata
	p.rawSpec = shell.Spec
	if p.meta.Name == "" {
		return p, fmt.Errorf("the parent has no metadata.name")
	}
	p.status = decodeStatus(shell.Status)
	if len(shell.Spec) == 0 || string(shell.Spec) == "null" {
		p.specErr = fmt.Errorf("spec is missing: set at least spec.version")
		return p, nil
	}
	dec := json.NewDecoder(bytes.NewReader(shell.Spec))
	// The CRD's structural schema prunes unknown fields; a spec that still has one was written
	// around it, and a misspelt field silently ignored is worse than an error.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.spec); err != nil {
		p.specErr = fmt.Errorf("spec can't be read: %s", plainJSONError(err))
	}
	return p, nil
}

// decodeStatus reads the status the hook wrote last time. If it can't be read whole, the fields
// that carry memory are read on their own: losing migratedVersion would only cost a repeated
// migration, but there is no reason to lose it.
func decodeStatus(raw json.RawMessage) v1beta1.Status {
	var st v1beta1.Status
	if len(raw) == 0 {
		return st
	}
	if err := json.Unmarshal(raw, &st); err == nil {
		return st
	}
	var memory struct {
		Phase           v1beta1.Phase `json:"phase"`
		MigratedVersion string        `json:"migratedVersion"`
		DeployedVersion string        `json:"deployedVersion"`
	}
	_ = json.Unmarshal(raw, &memory)
	return v1beta1.Status{Phase: memory.Phase, MigratedVersion: memory.MigratedVersion, DeployedVersion: memory.DeployedVersion}
}

// plainJSONError drops the Go type names encoding/json puts in its messages.
func plainJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("spec.%s must be a %s, not a %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return strings.ReplaceAll(msg, "unknown field ", "unknown field spec.")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "map", "struct":
		return "object"
	}
	return "number"
}
