package children

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// A JSON scanner for the few texts the core reads on every sync (last-applied texts, the spec the
// builder waves hash), where a decoder's state and allocations cost more than the reading: it
// reads a string in place, and each reader built on it answers only where its answer is the
// decoder's, leaving every other text to the decoder (lastapplied.go, canonical.go).

// maxScanDepth bounds the scan's nesting; a deeper text goes to the decoder (which allows 10,000
// levels), so that no text makes the scan recurse without end.
const maxScanDepth = 512

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
	return p.sequence('{', '}', func() bool {
		p.space()
		key, plain, ok := p.rawString()
		if !ok || !p.eat(':') {
			return false
		}
		p.space()
		return member(key, plain)
	})
}

// array reads an array; elem is called for each element, and must read it.
func (p *scanner) array(elem func() bool) bool { return p.sequence('[', ']', elem) }

// sequence reads what open and close enclose: items separated by commas, each read by item, one
// level deeper.
func (p *scanner) sequence(open, close byte, item func() bool) bool {
	if !p.eat(open) {
		return false
	}
	if p.depth++; p.depth > maxScanDepth {
		return false
	}
	if p.eat(close) {
		p.depth--
		return true
	}
	for {
		if !item() {
			return false
		}
		if p.eat(',') {
			continue
		}
		if p.eat(close) {
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

// unquote unquotes what is between a string's quotes by encoding/json's rules (the strict
// decoders' code is a copy of them): a bad surrogate or byte becomes U+FFFD.
func unquote(raw string) (string, error) {
	var s string
	err := json.Unmarshal([]byte(`"`+raw+`"`), &s)
	return s, err
}
