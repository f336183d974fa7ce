package children

import (
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// appliedTemplate is what the builder waves read from a workload's last-applied text: its kind
// and apiVersion, and its pod template's annotations.
type appliedTemplate struct {
	kind, apiVersion string
	// hasTemplate is false when the text has no spec.template object; annotations is then nil,
	// and otherwise never nil.
	hasTemplate bool
	annotations map[string]string
}

// readAppliedTemplate reads a last-applied text as strictAppliedTemplate defines, scanning it
// when it can (every text Metacontroller writes from Summon's answers). ok is false when the text
// is not one the strict decode reads.
func readAppliedTemplate(text string) (t appliedTemplate, ok bool) {
	if t, answered := scanAppliedTemplate(text); answered {
		return t, true
	}
	return strictAppliedTemplate(text)
}

// strictAppliedTemplate is the definition: the text decoded strictly into the few fields the
// waves read, case-sensitive as the API server reads it, a field given twice refused (a map keeps
// the last one, these structs would merge both), and the annotations' values kept when they are
// strings. It builds a decoder's whole state for a text of about 5 KB, which is why
// scanAppliedTemplate exists.
func strictAppliedTemplate(text string) (appliedTemplate, bool) {
	var last struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Spec       *struct {
			Template *struct {
				Metadata *struct {
					Annotations map[string]any `json:"annotations"`
				} `json:"metadata"`
			} `json:"template"`
		} `json:"spec"`
	}
	strict, err := sigsjson.UnmarshalStrict([]byte(text), &last, sigsjson.DisallowDuplicateFields)
	if err != nil || len(strict) > 0 {
		return appliedTemplate{}, false
	}
	t := appliedTemplate{kind: last.Kind, apiVersion: last.APIVersion}
	if last.Spec == nil || last.Spec.Template == nil {
		return t, true
	}
	t.hasTemplate = true
	if last.Spec.Template.Metadata == nil {
		t.annotations = map[string]string{}
		return t, true
	}
	t.annotations = StringValues(last.Spec.Template.Metadata.Annotations)
	return t, true
}

// scanAppliedTemplate reads the text in one pass, without a decoder, and answers only where its
// answer is strictAppliedTemplate's (FuzzAppliedTemplateScanIsTheStrictDecodes): a text that
// is valid JSON, an object whose kind and apiVersion are strings and whose spec, template,
// metadata and annotations are objects, none of them given twice, with string annotations, and
// no escape or invalid UTF-8 in a field name it must match. Anything else is left to the strict
// decode (answered is false), including every text the strict decode refuses. The strings it
// returns share the text's memory: they live as long as the request they came from.
func scanAppliedTemplate(text string) (t appliedTemplate, answered bool) {
	p := scanner{s: text}
	var sawKind, sawAPIVersion, sawSpec bool
	var tpl templateScan
	ok := p.object(func(key string, plain bool) bool {
		if !plain {
			return false // it may be one of the names below, escaped
		}
		switch key {
		case "kind":
			return p.stringOnce(&sawKind, &t.kind)
		case "apiVersion":
			return p.stringOnce(&sawAPIVersion, &t.apiVersion)
		case "spec":
			if sawSpec {
				return false
			}
			sawSpec = true
			return p.spec(&tpl)
		}
		return p.skip()
	})
	if !ok {
		return appliedTemplate{}, false
	}
	p.space()
	if p.i != len(p.s) {
		return appliedTemplate{}, false // text after the object
	}
	if tpl.template {
		t.hasTemplate = true
		t.annotations = tpl.annotations
		if t.annotations == nil {
			t.annotations = map[string]string{}
		}
	}
	return t, true
}

// scanObject reads a last-applied text into the map metacontroller.Decode makes of it, and
// answers only where its map is Decode's (FuzzObjectScanIsTheDecoders): a text that is valid
// JSON and an object, whose numbers Decode reads (a whole number that fits int64 becomes one,
// any other a float64 unless it is beyond float64's range). Names and strings are unquoted by
// encoding/json's rules when they have an escape or bytes that are not UTF-8; a name given twice
// keeps its last value, as Decode does. Unlike Decode it allocates nothing for a plain name or
// string but the box of a string value: the strings share the text's memory. A kept migration
// Job is read this way on every sync of a Ready instance.
func scanObject(text string) (metacontroller.Object, bool) {
	p := scanner{s: text}
	if !p.at('{') {
		return nil, false // null and the other values are Decode's to read
	}
	v, ok := p.value()
	if p.space(); !ok || p.i != len(p.s) {
		return nil, false
	}
	return v.(map[string]any), true
}

// value reads any value as Decode holds it.
func (p *scanner) value() (any, bool) {
	p.space()
	if p.i >= len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		m := map[string]any{}
		ok := p.object(func(key string, plain bool) bool {
			if !plain {
				var err error
				if key, err = unquote(key); err != nil {
					return false
				}
			}
			v, ok := p.value()
			m[key] = v
			return ok
		})
		return m, ok
	case c == '[':
		list := make([]any, 0)
		ok := p.array(func() bool {
			v, ok := p.value()
			list = append(list, v)
			return ok
		})
		return list, ok
	case c == '"':
		return p.stringValue()
	case c == '-' || '0' <= c && c <= '9':
		start := p.i
		if !p.number() {
			return nil, false
		}
		return decodedNumber(p.s[start:p.i])
	}
	return p.literal()
}

// decodedNumber is the number Decode makes of a JSON number (sigs.k8s.io/json with PreserveInts):
// int64 when it has no '.' and fits, float64 otherwise, refused beyond float64's range.
func decodedNumber(s string) (any, bool) {
	if !strings.Contains(s, ".") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// stringOnce reads a string value into into, unless seen says it was read before (a field given
// twice, which the strict decode refuses).
func (p *scanner) stringOnce(seen *bool, into *string) bool {
	if *seen {
		return false
	}
	*seen = true
	s, ok := p.stringValue()
	*into = s
	return ok
}

// templateScan is what the scan found under spec.
type templateScan struct {
	template    bool
	annotations map[string]string
}

// spec reads spec.template.metadata.annotations, each level an object given once.
func (p *scanner) spec(tpl *templateScan) bool {
	return p.onlyMember("template", func() bool {
		tpl.template = true
		return p.onlyMember("metadata", func() bool {
			return p.onlyMember("annotations", func() bool {
				tpl.annotations = map[string]string{}
				return p.object(func(key string, plain bool) bool {
					if _, twice := tpl.annotations[key]; twice || !plain {
						return false
					}
					v, ok := p.stringValue()
					tpl.annotations[key] = v
					return ok
				})
			})
		})
	})
}

// onlyMember reads an object of which one member matters: read reads that member's value, which
// must be an object given once; every other member is skipped.
func (p *scanner) onlyMember(name string, read func() bool) bool {
	seen := false
	return p.object(func(key string, plain bool) bool {
		if !plain {
			return false
		}
		if key != name {
			return p.skip()
		}
		if seen || !p.at('{') {
			return false
		}
		seen = true
		return read()
	})
}
