// Package manifests holds Summon's install manifests (kubectl apply -k manifests/) and makes the
// SummonPlatform CRD available to Go code, so that the CLI checks specs against the very schema
// the API server enforces instead of a copy of it. It performs no I/O.
package manifests

import _ "embed"

// CRD is manifests/crd.yaml, the SummonPlatform CustomResourceDefinition.
//
//go:embed crd.yaml
var CRD []byte

// CompositeController is manifests/compositecontroller.yaml, which tells Metacontroller how to
// apply each child type.
//
//go:embed compositecontroller.yaml
var CompositeController []byte
