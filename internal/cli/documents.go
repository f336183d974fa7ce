package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// document is one YAML (or JSON) document of a file, with where it starts, so that a problem
// can name its line.
type document struct {
	file string
	// line is the document's first line in the file, from 1.
	line int
	// base is the file's line of the node's line 1 (a List's items share their List's).
	base int
	// node is the document as a YAML tree, for the lines of its fields.
	node *yamlv3.Node
	// object is the document as the API server decodes it (sigs.k8s.io/yaml, as kubectl reads
	// YAML; whole numbers as int64).
	object map[string]any
	// err is why the document could not be read; line then says where.
	err error
}

// splitDocuments cuts a YAML stream at its "---" lines, as kubectl and
// k8s.io/apimachinery/pkg/util/yaml do: a line that starts with three dashes followed by nothing,
// or by a comment, ends a document. Documents with nothing but comments are left out.
func splitDocuments(file string, data []byte) []document {
	var docs []document
	var cur bytes.Buffer
	start, n := 1, 0
	flush := func() {
		text := cur.Bytes()
		cur = bytes.Buffer{}
		if onlyComments(text) {
			return
		}
		docs = append(docs, decodeDocument(file, start, append([]byte(nil), text...)))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "---"); ok {
			if t := strings.TrimSpace(rest); t == "" || strings.HasPrefix(t, "#") {
				flush()
				start = n + 1
				continue
			}
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func onlyComments(text []byte) bool {
	for line := range strings.SplitSeq(string(text), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// yamlLine finds the line number in a YAML library's error message.
var yamlLine = regexp.MustCompile(`line (\d+)`)

func decodeDocument(file string, start int, text []byte) document {
	d := document{file: file, line: start, base: start}
	var node yamlv3.Node
	if err := yamlv3.Unmarshal(text, &node); err == nil && len(node.Content) == 1 {
		d.node = node.Content[0]
	}
	j, err := yaml.YAMLToJSON(text)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			// At the end of a document the parser names the line after it.
			n = max(1, min(n, bytes.Count(text, []byte("\n"))))
			d.line = start + n - 1
			// The line is the document's; file:line says it already.
			msg = strings.Replace(msg, m[0]+": ", "", 1)
		}
		d.err = fmt.Errorf("%s", msg)
		return d
	}
	var obj any
	if err := metacontroller.Decode(j, &obj); err != nil {
		d.err = fmt.Errorf("reading the document: %w", err)
		return d
	}
	m, ok := obj.(map[string]any)
	if !ok {
		d.err = fmt.Errorf("the document is not an object (a YAML mapping)")
		return d
	}
	d.object = m
	return d
}

// readDocuments reads every document of the named files; a directory stands for every .yaml,
// .yml and .json file below it, in name order. Kubernetes List objects are expanded into their
// items, which keep the List's line.
func readDocuments(paths []string, stdin io.Reader) ([]document, error) {
	files, err := expandPaths(paths)
	if err != nil {
		return nil, err
	}
	var docs []document
	for _, f := range files {
		data, err := readInput(f, stdin)
		if err != nil {
			return nil, err
		}
		for _, d := range splitDocuments(f, data) {
			docs = append(docs, expandList(d)...)
		}
	}
	return docs, nil
}

// readInput reads a file, or stdin for "-".
func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

func expandPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == "-" {
			out = append(out, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && path != p && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					found = append(found, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		slices.Sort(found)
		out = append(out, found...)
	}
	return out, nil
}

// expandList turns a List (kubectl get ... -o yaml) into one document per item.
func expandList(d document) []document {
	if d.object == nil || d.object["kind"] != "List" {
		return []document{d}
	}
	items, _ := d.object["items"].([]any)
	var out []document
	var itemNodes []*yamlv3.Node
	if n := mappingValue(d.node, "items"); n != nil && n.Kind == yamlv3.SequenceNode {
		itemNodes = n.Content
	}
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		item := document{file: d.file, line: d.line, base: d.base, object: m}
		if i < len(itemNodes) {
			item.node = itemNodes[i]
			item.line = d.base + itemNodes[i].Line - 1
		}
		out = append(out, item)
	}
	return out
}

// isSummonPlatform says whether a document is a SummonPlatform, of any version of the API group.
func isSummonPlatform(obj map[string]any) bool {
	apiVersion, _ := obj["apiVersion"].(string)
	return obj["kind"] == v1beta1.Kind && strings.HasPrefix(apiVersion, v1beta1.Group+"/")
}

// metaString reads metadata.<key> of an object.
func metaString(obj map[string]any, key string) string {
	m, _ := obj["metadata"].(map[string]any)
	s, _ := m[key].(string)
	return s
}

// fieldLine is the line in the file of a field path such as spec.aliases[1] or
// spec.config[SITE-NAME]: the line of the deepest part of the path the document has, or the
// document's first line.
func (d document) fieldLine(path string) int {
	n := d.node
	if n == nil {
		return d.line
	}
	if path == "" {
		return d.line
	}
	line := n.Line
	for _, seg := range pathSegments(path) {
		var next *yamlv3.Node
		switch n.Kind {
		case yamlv3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		case yamlv3.SequenceNode:
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return d.base + line - 1
}

// pathSegments splits a field path (k8s.io/apimachinery/pkg/util/validation/field's form) into
// its keys and indexes: a.b[2].c[x.y] is a, b, 2, c, x.y.
func pathSegments(path string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '.':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		case '[':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			end := strings.IndexByte(path[i:], ']')
			if end < 0 {
				out = append(out, path[i+1:])
				return out
			}
			out = append(out, path[i+1:i+end])
			i += end
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// mappingValue is the value node of a key in a YAML mapping.
func mappingValue(n *yamlv3.Node, key string) *yamlv3.Node {
	if n == nil || n.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
