// Package docs tests the documentation against the repository: every relative link resolves
// (links_test.go), and the pages that describe the code say what the code does (docs_test.go).
package docs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// pages are the Markdown files whose links are checked, relative to the repository root.
func pages(t *testing.T, repo fs.FS) []string {
	t.Helper()
	out := []string{"README.md"}
	err := fs.WalkDir(repo, "docs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryRelativeLinkResolves(t *testing.T) {
	repo := os.DirFS("..")
	for _, p := range brokenLinks(repo, pages(t, repo)) {
		t.Error(p)
	}
}

// The checker finds what it is there to find, on a made-up repository.
func TestBrokenLinksAreFound(t *testing.T) {
	repo := fstest.MapFS{
		"README.md": {Data: []byte("# Summon\n\n[install](docs/install.md#the-steps) [gone](docs/gone.md)\n" +
			"[bad anchor](docs/install.md#no-such-heading) [here](#summon) [web](https://example.com/x.md)\n" +
			"`[in code](docs/nowhere.md)`\n\n```\n[in a block](docs/nowhere.md)\n```\n" +
			"[later](docs/upgrading.md) ![picture](docs/dashboard.png) [folder](manifests/)\n")},
		"docs/install.md":    {Data: []byte("# Installing\n\n## The steps\n\n[back](../README.md#summon) [self](#installing) [up](../README.md#nope)\n")},
		"docs/dashboard.png": {Data: []byte("png")},
		"manifests/x.yaml":   {Data: []byte("x: 1")},
	}
	problems := brokenLinks(repo, []string{"README.md", "docs/install.md"})
	want := []string{
		"README.md: [gone](docs/gone.md): docs/gone.md does not exist",
		"README.md: [bad anchor](docs/install.md#no-such-heading): docs/install.md has no heading #no-such-heading",
		"README.md: [later](docs/upgrading.md): docs/upgrading.md does not exist",
		"docs/install.md: [up](../README.md#nope): README.md has no heading #nope",
	}
	if diff := cmp.Diff(want, problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestAnchorsAreGitHubs(t *testing.T) {
	tests := map[string]struct {
		headings string
		want     []string
	}{
		"words are lower-cased and joined by hyphens":    {"## Who may call the hooks", []string{"who-may-call-the-hooks"}},
		"punctuation goes, hyphens and underscores stay": {"## Hardening: who may call the hooks, overload, secrets, tenants", []string{"hardening-who-may-call-the-hooks-overload-secrets-tenants"}},
		"code spans keep their text, slashes go":         {"## The test machinery: `internal/testing/`", []string{"the-test-machinery-internaltesting"}},
		"a link keeps its text":                          {"### See [the docs](x.md) now", []string{"see-the-docs-now"}},
		"emphasis goes":                                  {"## **Bold** and _snake_case_", []string{"bold-and-snake_case"}},
		"a repeated heading gets a number":               {"## Setup\n## Setup\n## Setup", []string{"setup", "setup-1", "setup-2"}},
		"a heading in a code block is not a heading":     {"## Real\n```sh\n# a comment\n```", []string{"real"}},
		"non-ASCII letters stay":                         {"## Phase Ready → Migrating", []string{"phase-ready--migrating"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, anchors([]byte(tc.headings))); diff != "" {
				t.Errorf("anchors (-want +got):\n%s", diff)
			}
		})
	}
}

var (
	// A Markdown inline link or image: [text](target) or ![alt](target), with an optional title.
	linkRE = regexp.MustCompile(`!?\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// A reference definition: [label]: target
	refRE       = regexp.MustCompile(`(?m)^\s{0,3}\[[^\]]+\]:\s+(\S+)`)
	codeSpanRE  = regexp.MustCompile("`[^`]*`")
	headingRE   = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	schemeRE    = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	emphasisRE  = regexp.MustCompile(`[*]+|(^|\W)_+|_+(\W|$)`)
	htmlTagRE   = regexp.MustCompile(`<[^>]+>`)
	inlineLinkR = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// brokenLinks checks every relative link of the given pages: its file exists in repo and, when it
// has a #fragment, the file has a heading with that anchor.
func brokenLinks(repo fs.FS, files []string) (problems []string) {
	anchorsOf := map[string][]string{}
	for _, file := range files {
		src, err := fs.ReadFile(repo, file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", file, err))
			continue
		}
		for _, l := range links(src) {
			if schemeRE.MatchString(l.target) {
				continue // https:, mailto: and the like
			}
			target, fragment, _ := strings.Cut(l.target, "#")
			resolved := file
			if target != "" {
				resolved = path.Clean(path.Join(path.Dir(file), target))
			}
			show := fmt.Sprintf("%s: [%s](%s)", file, l.text, l.target)
			if _, err := fs.Stat(repo, resolved); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s does not exist", show, resolved))
				continue
			}
			if fragment == "" {
				continue
			}
			if !strings.HasSuffix(resolved, ".md") {
				problems = append(problems, fmt.Sprintf("%s: a #fragment on %s, which is not a Markdown page", show, resolved))
				continue
			}
			known, ok := anchorsOf[resolved]
			if !ok {
				b, err := fs.ReadFile(repo, resolved)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", show, err))
					continue
				}
				known = anchors(b)
				anchorsOf[resolved] = known
			}
			if !slices.Contains(known, fragment) {
				problems = append(problems, fmt.Sprintf("%s: %s has no heading #%s", show, resolved, fragment))
			}
		}
	}
	return problems
}

type link struct{ text, target string }

// links are the link targets of a Markdown page outside code blocks and code spans.
func links(src []byte) []link {
	var out []link
	for _, line := range proseLines(src) {
		line = codeSpanRE.ReplaceAllString(line, "")
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			out = append(out, link{text: m[1], target: m[2]})
		}
		for _, m := range refRE.FindAllStringSubmatch(line, -1) {
			out = append(out, link{text: "ref", target: m[1]})
		}
	}
	return out
}

// proseLines are a page's lines outside fenced code blocks.
func proseLines(src []byte) []string {
	var out []string
	var fence string
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		out = append(out, line)
	}
	return out
}

// anchors are the ids GitHub gives a page's headings: the heading's text lower-cased, every
// character that is not a letter, a digit, a space, a hyphen or an underscore dropped, spaces
// made hyphens, and -1, -2, ... appended to a repeated one.
func anchors(src []byte) []string {
	seen := map[string]int{}
	var out []string
	for _, line := range proseLines(bytes.TrimSpace(src)) {
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		text := inlineLinkR.ReplaceAllString(m[2], "$1")
		text = strings.ReplaceAll(text, "`", "")
		text = htmlTagRE.ReplaceAllString(text, "")
		text = emphasisRE.ReplaceAllString(text, "$1$2")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		id := b.String()
		if n := seen[id]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", id, n))
		} else {
			out = append(out, id)
		}
		seen[id]++
	}
	return out
}
