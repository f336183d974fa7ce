package children

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

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

// maxScanDepth bounds the scan's nesting; a deeper text goes to the strict decode (which allows
// 10,000 levels), so that no text makes the scan recurse without end.
const maxScanDepth = 512

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
	ok := p.object(func(key string, plain bool) (ok bool) {
		if !plain {
			return false // it may be one of the names below, escaped
		}
		switch key {
		case "kind":
			if sawKind {
				return false
			}
			sawKind = true
			t.kind, ok = p.stringValue()
			return ok
		case "apiVersion":
			if sawAPIVersion {
				return false
			}
			sawAPIVersion = true
			t.apiVersion, ok = p.stringValue()
			return ok
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

// unquote unquotes what is between a string's quotes by encoding/json's rules (the strict
// decoders' code is a copy of them): a bad surrogate or byte becomes U+FFFD.
func unquote(raw string) (string, error) {
	var s string
	err := json.Unmarshal([]byte(`"`+raw+`"`), &s)
	return s, err
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

// scanner reads JSON as encoding/json's scanner accepts it, and no more: a string whose bytes
// are not UTF-8 or that escapes a character is accepted (encoding/json accepts both), and marked
// as not plain.
type scanner struct {
	s     string
	i     int
	depth int
}

func (p *scanner) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// at reports whether the next byte after white space is c.
func (p *scanner) at(c byte) bool {
	p.space()
	return p.i < len(p.s) && p.s[p.i] == c
}

func (p *scanner) eat(c byte) bool {
	if p.at(c) {
		p.i++
		return true
	}
	return false
}

// object reads an object; member is called after each member's name and colon, and must read
// its value.
func (p *scanner) object(member func(key string, plain bool) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.depth++; p.depth > maxScanDepth {
		return false
	}
	if p.eat('}') {
		p.depth--
		return true
	}
	for {
		p.space()
		key, plain, ok := p.rawString()
		if !ok || !p.eat(':') {
			return false
		}
		p.space()
		if !member(key, plain) {
			return false
		}
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			p.depth--
			return true
		}
		return false
	}
}

// array reads an array; elem is called for each element, and must read it.
func (p *scanner) array(elem func() bool) bool {
	if !p.eat('[') {
		return false
	}
	if p.depth++; p.depth > maxScanDepth {
		return false
	}
	if p.eat(']') {
		p.depth--
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			p.depth--
			return true
		}
		return false
	}
}

// skip reads any value.
func (p *scanner) skip() bool {
	p.space()
	if p.i >= len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(func(string, bool) bool { return p.skip() })
	case c == '[':
		return p.array(p.skip)
	case c == '"':
		_, _, ok := p.rawString()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	_, ok := p.literal()
	return ok
}

// literal reads true, false or null.
func (p *scanner) literal() (any, bool) {
	for _, lit := range [...]struct {
		text  string
		value any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(p.s[p.i:], lit.text) {
			p.i += len(lit.text)
			return lit.value, true
		}
	}
	return nil, false
}

// stringValue reads a string value and unquotes it: plain, it is the text itself; with escapes
// or bytes that are not UTF-8, encoding/json unquotes it (its rules for a bad surrogate or byte
// are the strict decode's, whose code is a copy of it). Any other value is refused.
func (p *scanner) stringValue() (string, bool) {
	p.space()
	raw, plain, ok := p.rawString()
	if !ok || plain {
		return raw, ok
	}
	s, err := unquote(raw)
	return s, err == nil
}

// rawString reads a string at p.i and returns what is between its quotes; plain is true when
// that is the string itself (no escape, valid UTF-8).
func (p *scanner) rawString() (raw string, plain, ok bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false, false
	}
	start := p.i + 1
	escaped := false
	for j := start; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			p.i = j + 1
			raw = p.s[start:j]
			return raw, !escaped && utf8.ValidString(raw), true
		case c == '\\':
			escaped = true
			j++
			if j >= len(p.s) {
				return "", false, false
			}
			switch p.s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(p.s)-j <= 4 || !isHex(p.s[j+1]) || !isHex(p.s[j+2]) || !isHex(p.s[j+3]) || !isHex(p.s[j+4]) {
					return "", false, false
				}
				j += 4
			default:
				return "", false, false
			}
		case c < 0x20:
			return "", false, false
		}
	}
	return "", false, false
}

// number reads a number as JSON's grammar has it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// (what follows it is the caller's to check).
func (p *scanner) number() bool {
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	switch {
	case j < len(p.s) && p.s[j] == '0':
		j++
	case j < len(p.s) && '1' <= p.s[j] && p.s[j] <= '9':
		j = p.digits(j)
	default:
		return false
	}
	if j < len(p.s) && p.s[j] == '.' {
		if j = p.digits(j + 1); j < 0 {
			return false
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		j++
		if j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		if j = p.digits(j); j < 0 {
			return false
		}
	}
	p.i = j
	return true
}

// digits reads one digit or more from j and returns the index after them, or -1 when there is
// none.
func (p *scanner) digits(j int) int {
	start := j
	for j < len(p.s) && '0' <= p.s[j] && p.s[j] <= '9' {
		j++
	}
	if j == start {
		return -1
	}
	return j
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
