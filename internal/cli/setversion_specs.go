package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/forklift-dev/summon/pkg/platform"
)

// versionPick chooses the instances of a GitOps repository whose spec.version moves: a label
// selector, and a wave by a stable hash of namespace/name (instance files carry no UID, so these
// are not the builder waves' buckets; a larger wave still holds every instance of a smaller one).
type versionPick struct {
	selector labels.Selector
	// percent is the wave's share, 0 to 100; 100 takes every instance the selector matches.
	percent int
}

func (p versionPick) takes(namespace, name string, l map[string]string) bool {
	if p.selector != nil && !p.selector.Matches(labels.Set(l)) {
		return false
	}
	return p.percent >= 100 || platform.WaveBucket(namespace+"/"+name) < p.percent
}

// versionChange is one instance whose spec.version a file edit changes.
type versionChange struct {
	File, Namespace, Name string
	Line                  int
	From, To              string
}

// setVersion rewrites spec.version of the SummonPlatforms that pick takes in one file's text, and
// nothing else: every other byte (comments, order, quoting, blank lines) stays as it was. It
// edits the text where the YAML parser found the value, rather than re-encoding the document,
// which would lose a comment's place and restyle the file. matched counts the instances taken,
// changed or already on the version.
func setVersion(file string, data []byte, version string, pick versionPick) (out []byte, changes []versionChange, matched int, err error) {
	lines := strings.SplitAfter(string(data), "\n")
	for _, d := range splitDocuments(file, data) {
		if d.err != nil {
			return nil, nil, 0, fmt.Errorf("%s:%d: %v", file, d.line, d.err)
		}
		for _, doc := range expandList(d) {
			if !isSummonPlatform(doc.object) {
				continue
			}
			meta, _ := doc.object["metadata"].(map[string]any)
			ns, name := metaString(doc.object, "namespace"), metaString(doc.object, "name")
			if !pick.takes(ns, name, stringLabels(meta["labels"])) {
				continue
			}
			matched++
			if doc.node == nil {
				return nil, nil, 0, fmt.Errorf("%s:%d: %s/%s: can't place spec.version in the file; edit it by hand", file, doc.line, ns, name)
			}
			v := mappingValue(mappingValue(doc.node, "spec"), "version")
			if v == nil {
				return nil, nil, 0, fmt.Errorf("%s:%d: %s/%s has no spec.version to set", file, doc.line, ns, name)
			}
			if v.Value == version {
				continue
			}
			line := doc.base + v.Line - 1
			edited, err := replaceScalar(lines[line-1], v, version)
			if err != nil {
				return nil, nil, 0, fmt.Errorf("%s:%d: %s/%s: %v", file, line, ns, name, err)
			}
			lines[line-1] = edited
			changes = append(changes, versionChange{File: file, Namespace: ns, Name: name, Line: line, From: v.Value, To: version})
		}
	}
	return []byte(strings.Join(lines, "")), changes, matched, nil
}

func stringLabels(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, x := range m {
		if s, ok := x.(string); ok {
			out[k] = s
		}
	}
	return out
}

// replaceScalar replaces the one-line scalar n on its line with value, in the same quoting style
// (a plain value that YAML would read as something else than that string is double-quoted).
func replaceScalar(line string, n *yamlv3.Node, value string) (string, error) {
	start := byteOffset(line, n.Column-1)
	if start < 0 || start >= len(line) {
		return "", fmt.Errorf("spec.version is not where the parser put it")
	}
	rest := line[start:]
	var end int
	switch n.Style {
	case yamlv3.DoubleQuotedStyle:
		end = closingQuote(rest, '"')
	case yamlv3.SingleQuotedStyle:
		end = closingQuote(rest, '\'')
	case 0:
		if strings.HasPrefix(rest, n.Value) {
			end = len(n.Value)
		} else {
			end = -1
		}
	default:
		end = -1
	}
	if end <= 0 {
		return "", fmt.Errorf("spec.version is not a one-line scalar; edit it by hand")
	}
	var token string
	switch n.Style {
	case yamlv3.SingleQuotedStyle:
		token = "'" + strings.ReplaceAll(value, "'", "''") + "'"
	case yamlv3.DoubleQuotedStyle:
		token = strconv.Quote(value)
	default:
		token = value
		if !plainString(value) {
			token = strconv.Quote(value)
		}
	}
	return line[:start] + token + rest[end:], nil
}

// closingQuote is the length of a quoted scalar at the start of s, quotes included, or -1 when
// it doesn't close on this line.
func closingQuote(s string, q byte) int {
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return -1
}

// plainString says whether YAML reads value, unquoted, as that very string (not a number, a
// boolean or null, and not cut by a comment).
func plainString(value string) bool {
	var m map[string]any
	if err := yamlv3.Unmarshal([]byte("v: "+value), &m); err != nil {
		return false
	}
	s, ok := m["v"].(string)
	return ok && s == value
}

// byteOffset turns a column in characters (as the YAML parser counts) into a byte offset.
func byteOffset(line string, col int) int {
	off := 0
	for i := 0; i < col; i++ {
		if off >= len(line) {
			return -1
		}
		_, size := utf8.DecodeRuneInString(line[off:])
		off += size
	}
	return off
}
