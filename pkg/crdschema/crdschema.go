// Package crdschema checks SummonPlatform objects against manifests/crd.yaml the way the API
// server does when one is created or updated: nulls it has no use for are dropped, then the
// OpenAPI schema, the list types and the CEL rules apply. It is the CRD half of `summonctl lint`
// (v1beta1.Validate is the hook's half), and the schema tests of pkg/apis/summon/v1beta1 use it.
// It reads only the CRD embedded in package manifests and performs no I/O.
package crdschema

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	schemavalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/manifests"
)

// Decode reads a CRD strictly (a misspelt field is an error, not a field the server drops) and
// checks that it has the one version with a schema that SummonPlatform has.
func Decode(b []byte) (*apiextensionsv1.CustomResourceDefinition, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		return nil, fmt.Errorf("decoding the CRD: %w", err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Schema == nil || crd.Spec.Versions[0].Schema.OpenAPIV3Schema == nil {
		return nil, errors.New("the CRD must have exactly one version with an openAPIV3Schema")
	}
	return &crd, nil
}

// InternalSchema is the CRD's schema in the API server's internal form, which the
// structural-schema, validation and CEL packages take.
func InternalSchema(crd *apiextensionsv1.CustomResourceDefinition) (*apiextensions.JSONSchemaProps, error) {
	var out apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &out, nil); err != nil {
		return nil, fmt.Errorf("converting the schema to the internal version: %w", err)
	}
	return &out, nil
}

// Validator applies one CRD's schema as the API server does.
type Validator struct {
	structural *structuralschema.Structural
	schema     schemavalidation.SchemaValidator
	cel        *cel.Validator
}

// NewValidator compiles a CRD's schema, its CEL rules included.
func NewValidator(crd *apiextensionsv1.CustomResourceDefinition) (*Validator, error) {
	internal, err := InternalSchema(crd)
	if err != nil {
		return nil, err
	}
	structural, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("the CRD's schema is not structural: %w", err)
	}
	sv, _, err := schemavalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, fmt.Errorf("compiling the CRD's schema: %w", err)
	}
	return &Validator{structural: structural, schema: sv, cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
}

// SummonPlatform is the Validator of the CRD in manifests/crd.yaml, compiled once.
var SummonPlatform = sync.OnceValues(func() (*Validator, error) {
	crd, err := Decode(manifests.CRD)
	if err != nil {
		return nil, fmt.Errorf("manifests/crd.yaml: %w", err)
	}
	return NewValidator(crd)
})

// Validate checks one object, decoded as the API server decodes JSON (whole numbers as int64, as
// k8s.io/apimachinery/pkg/util/json gives them). Like the server, it first drops, in obj itself,
// the nulls that the schema has no use for and the fields it doesn't know: what is left is what
// the server would store. Each unknown field is an error here, as the server's strict field
// validation (kubectl apply's default) makes it.
func (v *Validator) Validate(ctx context.Context, obj map[string]any) field.ErrorList {
	defaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	var errs field.ErrorList
	for _, path := range pruning.PruneWithOptions(obj, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		errs = append(errs, field.Forbidden(field.NewPath(path), "unknown field: the schema has no such field (check its spelling and indentation)"))
	}
	errs = append(errs, schemavalidation.ValidateCustomResource(nil, obj, v.schema)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}
