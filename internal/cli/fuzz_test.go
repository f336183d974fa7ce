package cli

import (
	"context"
	"strings"
	"testing"
)

// FuzzLint feeds arbitrary files to lint: every problem names a line inside the file, and nothing
// panics.
func FuzzLint(f *testing.F) {
	f.Add(header + "spec:\n  version: v1\n")
	f.Add(header + "spec:\n  version: [v1\n---\n--- # c\nkind: List\nitems: [1, {a: b}]\n")
	f.Add("apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(header, "\n", "\n  ") + "spec: {replicas: {web: x}}\n")
	crd := crdValidator(f)
	f.Fuzz(func(t *testing.T, text string) {
		docs := splitDocuments("f.yaml", []byte(text))
		var expanded []document
		for _, d := range docs {
			expanded = append(expanded, expandList(d)...)
		}
		lines := strings.Count(text, "\n") + 1
		for _, p := range lintDocuments(context.Background(), expanded, crd).problems {
			if p.line < 1 || p.line > lines {
				t.Errorf("problem at line %d of a %d-line file: %s", p.line, lines, p)
			}
		}
	})
}
