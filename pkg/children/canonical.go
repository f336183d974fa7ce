package children

import (
	"slices"
	"strings"
)

// CanonicalObject appends to dst what json.Marshal writes of the map json.Unmarshal makes of the
// object text, less its top-level fields named in drop: keys sorted, no white space, the same
// bytes. It answers (ok) only where it can tell those bytes without the decode: every string and
// name plain (no escape, valid UTF-8) and free of what Marshal escapes (<, >, &, U+2028, U+2029),
// every number a whole one of 15 digits at most (which float64 holds and Marshal writes back as
// it was), no name given twice. Anything else is the caller's to do by decoding.
//
// The builder waves hash a spec this way on every sync: its bytes are recorded in every app pod
// template, so they must be the decode's to the byte (FuzzSpecHashIsTheMapsOne, pkg/platform).
func CanonicalObject(dst []byte, text string, drop ...string) ([]byte, bool) {
	p := scanner{s: text}
	if !p.at('{') {
		return dst, false
	}
	out, ok := p.canonical(dst, drop)
	if p.space(); !ok || p.i != len(p.s) {
		return dst, false
	}
	return out, true
}

// member is a name of an object and where its value's text is.
type member struct {
	key        string
	start, end int
}

// canonical appends the value at p.i as Marshal writes its decoded form; drop names fields of this
// object to leave out.
func (p *scanner) canonical(dst []byte, drop []string) ([]byte, bool) {
	p.space()
	if p.i >= len(p.s) {
		return dst, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		var members []member
		ok := p.object(func(key string, plain bool) bool {
			if !plain || !marshalsAsIs(key) {
				return false
			}
			start := p.i
			if !p.skip() {
				return false
			}
			if !slices.Contains(drop, key) {
				members = append(members, member{key, start, p.i})
			}
			return true
		})
		if !ok {
			return dst, false
		}
		slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
		dst = append(dst, '{')
		for i, m := range members {
			if i > 0 {
				if m.key == members[i-1].key {
					return dst, false // a map keeps the last one
				}
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, m.key...)
			dst = append(dst, '"', ':')
			value := scanner{s: p.s[:m.end], i: m.start, depth: p.depth}
			if dst, ok = value.canonical(dst, nil); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	case c == '[':
		dst = append(dst, '[')
		first := true
		ok := p.array(func() bool {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			var ok bool
			dst, ok = p.canonical(dst, nil)
			return ok
		})
		return append(dst, ']'), ok
	case c == '"':
		raw, plain, ok := p.rawString()
		if !ok || !plain || !marshalsAsIs(raw) {
			return dst, false
		}
		dst = append(dst, '"')
		dst = append(dst, raw...)
		return append(dst, '"'), true
	case c == '-' || '0' <= c && c <= '9':
		start := p.i
		if !p.number() || !wholeAndExact(p.s[start:p.i]) {
			return dst, false
		}
		return append(dst, p.s[start:p.i]...), true
	}
	start := p.i
	if _, ok := p.literal(); !ok {
		return dst, false
	}
	return append(dst, p.s[start:p.i]...), true
}

// marshalsAsIs says whether json.Marshal writes a plain string as its own bytes: it escapes <, >
// and & (for HTML), and U+2028 and U+2029 (for JavaScript).
func marshalsAsIs(s string) bool {
	return !strings.ContainsAny(s, "<>&\u2028\u2029")
}

// wholeAndExact says whether a JSON number is a whole one of 15 digits at most: float64 holds it
// exactly, and Marshal writes it back as it was (-0 included).
func wholeAndExact(n string) bool {
	digits := strings.TrimPrefix(n, "-")
	return len(digits) <= 15 && !strings.ContainsAny(digits, ".eE")
}
