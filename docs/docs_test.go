package docs

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/internal/server"
)

// read is a file of the repository, by its path from the root.
func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section is the text of a page under the heading line head, up to the next heading of the same
// or a higher level.
func section(t *testing.T, page, name, head string) string {
	t.Helper()
	level := strings.Index(head, " ")
	_, after, ok := strings.Cut(page, "\n"+head+"\n")
	if !ok {
		t.Fatalf("%s has no heading %q", name, head)
	}
	var out []string
	fenced := false
	for _, line := range strings.Split(after, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if !fenced {
			if m := regexp.MustCompile(`^(#{1,6}) `).FindStringSubmatch(line); m != nil && len(m[1]) <= level {
				break
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// blocks are the fenced code blocks of text whose info string is lang ("" for none), with the
// indentation of a list item taken off.
func blocks(text, lang string) []string {
	const (
		outside = iota
		wanted
		other
	)
	var out, cur []string
	state, indent := outside, ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case state == outside && strings.HasPrefix(trimmed, "```"):
			state = other
			if strings.TrimPrefix(trimmed, "```") == lang {
				state, indent = wanted, line[:len(line)-len(strings.TrimLeft(line, " "))]
			}
		case state != outside && trimmed == "```":
			if state == wanted {
				out = append(out, strings.Join(cur, "\n"))
			}
			state, cur = outside, nil
		case state == wanted:
			cur = append(cur, strings.TrimPrefix(line, indent))
		}
	}
	return out
}

// helpFlag is one flag as `summon --help` prints it.
type helpFlag struct{ env, def string }

// summonHelp reads the flags, their environment variables and defaults from `summon --help`.
func summonHelp(t *testing.T) map[string]helpFlag {
	t.Helper()
	var out bytes.Buffer
	if _, err := server.ParseConfig([]string{"--help"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("summon --help: %v", err)
	}
	flags := map[string]helpFlag{}
	name := ""
	envRE := regexp.MustCompile(`\(env (\w+)\)`)
	defRE := regexp.MustCompile(`\(default (.*)\)$`)
	for _, line := range strings.Split(out.String(), "\n") {
		if m := regexp.MustCompile(`^  -(\S+)`).FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = helpFlag{}
			continue
		}
		if name == "" || !strings.HasPrefix(line, "    \t") {
			continue
		}
		f := flags[name]
		if m := envRE.FindStringSubmatch(line); m != nil {
			f.env = m[1]
		}
		if m := defRE.FindStringSubmatch(line); m != nil {
			f.def = strings.Trim(m[1], `"`)
		}
		flags[name] = f
	}
	if len(flags) == 0 {
		t.Fatalf("no flag read from summon --help:\n%s", out.String())
	}
	return flags
}

// The flags table of docs/configuration.md is `summon --help`: the same flags, each with its
// environment variable, and the same defaults where the table gives a literal one (a default the
// table words, such as "none (AWS off)", is one --help prints none for).
func TestConfigurationListsEveryFlagAsHelpDoes(t *testing.T) {
	const page = "docs/configuration.md"
	table := section(t, read(t, page), page, "## Flags")
	got := map[string]helpFlag{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, row := range strings.Split(table, "\n") {
		if !strings.HasPrefix(row, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(row, "|"), " | ")
		if len(cells) < 3 {
			t.Errorf("%s: a flag row of fewer than 3 cells: %s", page, row)
			continue
		}
		names, envs := code.FindAllStringSubmatch(cells[0], -1), code.FindAllStringSubmatch(cells[1], -1)
		if len(names) != len(envs) {
			t.Errorf("%s: %d flags but %d environment variables in: %s", page, len(names), len(envs), row)
			continue
		}
		def := ""
		if m := regexp.MustCompile("^\\s*`([^`]*)`\\s*$").FindStringSubmatch(cells[2]); m != nil {
			def = m[1]
		}
		if def == "false" || def == "0" {
			def = "" // flag prints no zero default
		}
		for i := range names {
			got[strings.TrimPrefix(names[i][1], "--")] = helpFlag{env: envs[i][1], def: def}
		}
	}
	want := summonHelp(t)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(helpFlag{})); diff != "" {
		t.Errorf("%s's flags table differs from summon --help (-help +table):\n%s", page, diff)
	}
}

// summonctlHelp is `summonctl --help` and the commands it lists.
func summonctlHelp(t *testing.T) (help string, commands []string) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	if code := cli.Main([]string{"summonctl", "--help"}, streams); code != 0 {
		t.Fatalf("summonctl --help exited %d: %s", code, errOut.String())
	}
	for _, c := range cli.NewRootCommand("summonctl", streams).Commands() {
		if c.Name() != "help" && c.Name() != "completion" {
			commands = append(commands, c.Name())
		}
	}
	sort.Strings(commands)
	return out.String(), commands
}

// docs/summonctl.md's commands table names every command of summonctl and no other, and its exit
// codes are the ones --help prints.
func TestSummonctlPageListsEveryCommandAndTheExitCodes(t *testing.T) {
	const name = "docs/summonctl.md"
	page := read(t, name)
	help, commands := summonctlHelp(t)

	var documented []string
	for _, m := range regexp.MustCompile("`([a-z-]+)[ `]").FindAllStringSubmatch(section(t, page, name, "## The commands"), -1) {
		documented = append(documented, m[1])
	}
	sort.Strings(documented)
	documented = slices.Compact(documented)
	if diff := cmp.Diff(commands, documented); diff != "" {
		t.Errorf("%s's commands table differs from summonctl's commands (-summonctl +table):\n%s", name, diff)
	}

	codes := blocks(section(t, page, name, "## Exit codes"), "")
	if len(codes) != 1 {
		t.Fatalf("%s: %d code blocks under Exit codes, want 1", name, len(codes))
	}
	i := strings.Index(help, "Exit codes:")
	if i < 0 {
		t.Fatalf("summonctl --help has no exit codes:\n%s", help)
	}
	fromHelp, _, _ := strings.Cut(help[i:], "\n\n")
	if diff := cmp.Diff(strings.TrimSpace(fromHelp), strings.TrimSpace(codes[0])); diff != "" {
		t.Errorf("%s's exit codes differ from summonctl --help (-help +page):\n%s", name, diff)
	}
}

// The README's "Run it" works as written: the request file exists, curl sends it to the address
// `go run ./cmd/summon` listens on by default, and what the abbreviated answer shows (phase,
// message, conditions, children) is what the hook server with its defaults answers.
func TestTheReadmeRunExampleIsWhatTheHookAnswers(t *testing.T) {
	run := section(t, read(t, "README.md"), "README.md", "## Run it")
	sh := blocks(run, "sh")
	if len(sh) != 1 || !strings.Contains(sh[0], "go run ./cmd/summon") {
		t.Fatalf("README's Run it has no sh block that runs go run ./cmd/summon: %q", sh)
	}
	m := regexp.MustCompile(`curl .*-H '([^:']+): ([^']+)' --data @(\S+) http://([^/\s]+)(/\w+)`).FindStringSubmatch(sh[0])
	if m == nil {
		t.Fatalf("README's Run it has no curl of a request file with its Content-Type: %s", sh[0])
	}
	header, value, file, addr, hook := m[1], m[2], m[3], m[4], m[5]

	cfg, err := server.ParseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if addr != cfg.Listen {
		t.Errorf("the curl calls %s, but summon listens on %s by default", addr, cfg.Listen)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	body := read(t, file)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, hook, strings.NewReader(body))
	// The hooks refuse what a browser could send cross-site: the README's curl must say JSON.
	req.Header.Set(header, value)
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s with %s: %d %s", hook, file, rec.Code, rec.Body.String())
	}
	answer := rec.Body.String()
	if strings.Count(strings.TrimSpace(answer), "\n") != 0 {
		t.Errorf("the README says the answer is one line of JSON; it has %d lines", strings.Count(answer, "\n")+1)
	}
	var got struct {
		Status struct {
			Phase, Message string
			Conditions     []struct{ Type, Status, Reason string }
		}
		Children []struct {
			Kind     string
			Metadata struct{ Name string }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}

	shown := blocks(run, "")
	if len(shown) != 1 {
		t.Fatalf("README's Run it shows %d answers, want 1", len(shown))
	}
	out := shown[0]
	str := func(key string) string {
		m := regexp.MustCompile(`"` + key + `":"([^"]*)"`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("the README's answer shows no %s", key)
		}
		return m[1]
	}
	if p := str("phase"); p != got.Status.Phase {
		t.Errorf("README shows phase %q, the hook answers %q", p, got.Status.Phase)
	}
	if msg := str("message"); msg != got.Status.Message {
		t.Errorf("README shows message %q, the hook answers %q", msg, got.Status.Message)
	}
	for _, c := range regexp.MustCompile(`\{"type":"(\w+)","status":"(\w+)"(?:,"reason":"(\w+)")?`).FindAllStringSubmatch(out, -1) {
		found := false
		for _, g := range got.Status.Conditions {
			found = found || (g.Type == c[1] && g.Status == c[2] && (c[3] == "" || g.Reason == c[3]))
		}
		if !found {
			t.Errorf("README shows condition %s=%s %s, the hook answers %+v", c[1], c[2], c[3], got.Status.Conditions)
		}
	}
	children := map[string]string{}
	for _, c := range got.Children {
		children[c.Kind+" "+c.Metadata.Name] = c.Kind
	}
	var named []string
	for _, m := range regexp.MustCompile(`"kind":"(\w+)","metadata":\{"name":"([\w-]+)"`).FindAllStringSubmatch(out, -1) {
		named = append(named, m[1]+" "+m[2])
	}
	// "... Services a, b, Ingress c ...": a kind in the plural or singular, then names.
	if m := regexp.MustCompile(`\.\.\. (.*) \.\.\.\]\}`).FindStringSubmatch(out); m != nil {
		kind := ""
		for _, word := range strings.Fields(strings.ReplaceAll(m[1], ",", "")) {
			if word[0] >= 'A' && word[0] <= 'Z' {
				kind = word
				if !strings.HasSuffix(word, "ss") {
					kind = strings.TrimSuffix(word, "s") // Services, not Ingress
				}
				continue
			}
			named = append(named, kind+" "+word)
		}
	}
	if len(named) < 3 {
		t.Fatalf("read only %v as children from the README's answer", named)
	}
	for _, n := range named {
		if _, ok := children[n]; !ok {
			t.Errorf("README shows child %s, which the hook's answer does not hold", n)
		}
	}
}

// Every YAML block of the README and the docs parses: a reader copies them as they are.
func TestEveryYAMLBlockParses(t *testing.T) {
	repo := os.DirFS("..")
	for _, page := range pages(t, repo) {
		for i, b := range blocks(read(t, page), "yaml") {
			var v any
			if err := yaml.Unmarshal([]byte(b), &v); err != nil {
				t.Errorf("%s: YAML block %d: %v\n%s", page, i+1, err, b)
			}
		}
	}
}

// The install's Metacontroller kustomization adds the fleet's client flags that docs/fleet.md
// measured, to Metacontroller's StatefulSet.
func TestTheMetacontrollerKustomizationRaisesTheRateLimit(t *testing.T) {
	const name = "docs/install.md"
	var k struct {
		Resources []string
		Patches   []struct {
			Target struct{ Kind, Name string }
			Patch  string
		}
	}
	var found bool
	for _, b := range blocks(read(t, name), "yaml") {
		if !strings.Contains(b, "metacontroller/kustomization.yaml") {
			continue
		}
		found = true
		if err := yaml.UnmarshalStrict([]byte(b), &k); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("%s has no Metacontroller kustomization", name)
	}
	if len(k.Resources) != 1 || !strings.Contains(k.Resources[0], "metacontroller/manifests/production?ref=v4.17") {
		t.Errorf("resources = %v, want Metacontroller's production manifests of v4.17", k.Resources)
	}
	var args []string
	for _, p := range k.Patches {
		if p.Target.Kind != "StatefulSet" || p.Target.Name != "metacontroller" {
			t.Errorf("a patch of %s/%s, want StatefulSet/metacontroller", p.Target.Kind, p.Target.Name)
		}
		var ops []struct{ Op, Path, Value string }
		if err := yaml.UnmarshalStrict([]byte(p.Patch), &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Op != "add" || op.Path != "/spec/template/spec/containers/0/args/-" {
				t.Errorf("patch op %+v, want an add to the container's args", op)
			}
			args = append(args, op.Value)
		}
	}
	if diff := cmp.Diff([]string{"--client-go-qps=1000", "--client-go-burst=2000"}, args); diff != "" {
		t.Errorf("Metacontroller's added args (-want +got):\n%s", diff)
	}
}
