package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/crdschema"
	"github.com/forklift-dev/summon/pkg/platform"
)

// problem is one thing lint found, printed as file:line: field: message.
type problem struct {
	file    string
	line    int
	field   string
	message string
}

func (p problem) String() string {
	if p.field == "" {
		return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.message)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.file, p.line, p.field, p.message)
}

// lintResult is what lint found in a set of documents.
type lintResult struct {
	problems  []problem
	platforms int
}

// lintDocuments checks every SummonPlatform among docs with the two implementations Summon has
// of its rules: the CRD's schema as the API server applies it (types, patterns, bounds, CEL rules,
// unknown fields) and v1beta1.Validate, which the hook runs. Where both find something wrong with
// one field, the hook's message is kept: it says what to do. Other documents (a kustomization,
// a SealedSecret) are not Summon's to check and are skipped.
func lintDocuments(ctx context.Context, docs []document, crd *crdschema.Validator) lintResult {
	var r lintResult
	seen := map[string]problem{}
	inputs := inputDocuments(docs)
	for _, d := range docs {
		if d.err != nil {
			r.problems = append(r.problems, problem{file: d.file, line: d.line, message: d.err.Error()})
			continue
		}
		if !isSummonPlatform(d.object) {
			continue
		}
		r.platforms++
		r.problems = append(r.problems, lintPlatform(ctx, d, crd)...)
		r.problems = append(r.problems, lintInputs(d, inputs)...)

		key := metaString(d.object, "namespace") + "/" + metaString(d.object, "name")
		if first, ok := seen[key]; ok {
			r.problems = append(r.problems, problem{file: d.file, line: d.fieldLine("metadata.name"), field: "metadata.name",
				message: fmt.Sprintf("this instance is also defined at %s:%d; one file per instance, or both are applied and fight", first.file, first.line)})
		} else {
			seen[key] = problem{file: d.file, line: d.line}
		}
	}
	return r
}

// lintPlatform checks one SummonPlatform document.
func lintPlatform(ctx context.Context, d document, crd *crdschema.Validator) []problem {
	at := func(e *field.Error) problem {
		return problem{file: d.file, line: d.fieldLine(e.Field), field: e.Field, message: e.ErrorBody()}
	}
	if v := d.object["apiVersion"]; v != v1beta1.APIVersion {
		return []problem{{file: d.file, line: d.fieldLine("apiVersion"), field: "apiVersion",
			message: fmt.Sprintf("%v is not served: use %s", v, v1beta1.APIVersion)}}
	}
	obj := runtime.DeepCopyJSON(d.object)
	fromCRD := crd.Validate(ctx, obj)
	for _, e := range fromCRD {
		if e.Field == "<nil>" {
			// A CEL rule on the whole object names its field in its message.
			e.Field = ""
			if first, _, ok := strings.Cut(e.Detail, " "); ok && strings.Contains(first, ".") {
				e.Field = first
			}
		}
	}
	fromHook := hookErrors(obj, fromCRD)

	var out []problem
	for _, e := range fromHook {
		out = append(out, at(e))
	}
	for _, e := range fromCRD {
		if !coveredBy(e.Field, fromHook) {
			out = append(out, at(e))
		}
	}
	slices.SortStableFunc(out, func(a, b problem) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return strings.Compare(a.field, b.field)
	})
	return out
}

// hookErrors runs v1beta1.Validate on what the server would store. A field whose value the
// schema refused for its type can't be decoded; it is left out, so that the hook still judges
// every other field.
func hookErrors(obj map[string]any, fromCRD field.ErrorList) field.ErrorList {
	decode := func(o map[string]any) (*v1beta1.SummonPlatform, bool) {
		b, err := json.Marshal(o)
		if err != nil {
			return nil, false
		}
		var p v1beta1.SummonPlatform
		return &p, json.Unmarshal(b, &p) == nil
	}
	p, ok := decode(obj)
	if !ok {
		trimmed := runtime.DeepCopyJSON(obj)
		for _, e := range fromCRD {
			if e.Type == field.ErrorTypeTypeInvalid {
				removePath(trimmed, pathSegments(e.Field))
			}
		}
		if p, ok = decode(trimmed); !ok {
			return nil
		}
	}
	return v1beta1.Validate(p)
}

// removePath deletes the field at a path of keys (list indexes are not followed).
func removePath(obj map[string]any, segs []string) {
	for i, s := range segs {
		if i == len(segs)-1 {
			delete(obj, s)
			return
		}
		next, ok := obj[s].(map[string]any)
		if !ok {
			delete(obj, s)
			return
		}
		obj = next
	}
}

// coveredBy says whether the hook already reports on a field, on a part of it, or on what holds
// it; its message is the one to keep.
func coveredBy(path string, hook field.ErrorList) bool {
	a := pathSegments(path)
	for _, e := range hook {
		b := pathSegments(e.Field)
		n := min(len(a), len(b))
		if n > 0 && slices.Equal(a[:n], b[:n]) {
			return true
		}
	}
	return false
}

// inputDocument is a Secret that the documents will create: a Secret, or the template of a
// SealedSecret or an ExternalSecret (docs/gitops.md), as the Secret it becomes.
type inputDocument struct {
	doc    document
	secret *corev1.Secret
}

// inputDocuments finds the Secrets the documents will create, by namespace/name.
func inputDocuments(docs []document) map[string]inputDocument {
	out := map[string]inputDocument{}
	for _, d := range docs {
		if d.err != nil {
			continue
		}
		kind, _ := d.object["kind"].(string)
		var meta map[string]any
		name := metaString(d.object, "name")
		var secretType string
		switch kind {
		case "Secret":
			meta, _ = d.object["metadata"].(map[string]any)
			secretType, _ = d.object["type"].(string)
		case "SealedSecret":
			tpl, _ := nested(d.object, "spec", "template").(map[string]any)
			meta, _ = tpl["metadata"].(map[string]any)
			secretType, _ = tpl["type"].(string)
		case "ExternalSecret":
			if n, ok := nested(d.object, "spec", "target", "name").(string); ok && n != "" {
				name = n
			}
			meta, _ = nested(d.object, "spec", "target", "template", "metadata").(map[string]any)
			secretType, _ = nested(d.object, "spec", "target", "template", "type").(string)
		default:
			continue
		}
		s := &corev1.Secret{Type: corev1.SecretType(secretType)}
		s.Name, s.Namespace = name, metaString(d.object, "namespace")
		s.Labels, s.Annotations = stringValues(meta["labels"]), stringValues(meta["annotations"])
		out[s.Namespace+"/"+s.Name] = inputDocument{doc: d, secret: s}
	}
	return out
}

// lintInputs checks that every input Secret a SummonPlatform names, when the documents create it,
// is marked as one of its inputs, as the hook requires (platform.InputRefusal). An input that the
// documents don't create is not checked: it may exist in the cluster already.
func lintInputs(d document, inputs map[string]inputDocument) []problem {
	ns, instance := metaString(d.object, "namespace"), metaString(d.object, "name")
	var out []problem
	check := func(field, name string) {
		in, ok := inputs[ns+"/"+name]
		if !ok {
			return
		}
		if why := platform.InputRefusal(in.secret, instance); why != "" {
			out = append(out, problem{file: d.file, line: d.fieldLine(field), field: field,
				message: fmt.Sprintf("%s (%s:%d)", why, in.doc.file, in.doc.line)})
		}
	}
	if names, ok := nested(d.object, "spec", "secrets").([]any); ok {
		for i, n := range names {
			if s, ok := n.(string); ok {
				check(fmt.Sprintf("spec.secrets[%d]", i), s)
			}
		}
	}
	for _, f := range []string{"spec.database.urlSecret", "spec.redis.urlSecret"} {
		if s, ok := nested(d.object, append(strings.Split(f, "."), "name")...).(string); ok {
			check(f+".name", s)
		}
	}
	return out
}

func nested(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func stringValues(v any) map[string]string {
	m, _ := v.(map[string]any)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		if s, ok := x.(string); ok {
			out[k] = s
		}
	}
	return out
}
