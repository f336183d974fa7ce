package children

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// goldenLastApplied returns every last-applied text of the observed children in the sync
// goldens' requests: the texts a Ready instance's syncs read, as Metacontroller wrote them.
func goldenLastApplied(t testing.TB) []string {
	t.Helper()
	requests, err := filepath.Glob("../../testdata/sync/*/request.json")
	if err != nil || len(requests) == 0 {
		t.Fatalf("no golden request found: %v", err)
	}
	var texts []string
	for _, path := range requests {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var req struct {
			Children map[string]map[string]metacontroller.Object `json:"children"`
		}
		if err := json.Unmarshal(raw, &req); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, group := range req.Children {
			for _, obj := range group {
				meta, _ := obj["metadata"].(map[string]any)
				ann, _ := meta["annotations"].(map[string]any)
				if s, ok := ann[LastAppliedAnnotation].(string); ok && s != "" {
					texts = append(texts, s)
				}
			}
		}
	}
	sort.Strings(texts)
	return texts
}

// largestGoldenText is the longest golden last-applied text that holds kind (a "kind":"..."
// member): the workload whose reading costs the most.
func largestGoldenText(t *testing.T, kind string) string {
	t.Helper()
	var text string
	for _, s := range goldenLastApplied(t) {
		if strings.Contains(s, kind) && len(s) > len(text) {
			text = s
		}
	}
	if text == "" {
		t.Fatalf("no golden last-applied text holds %s", kind)
	}
	return text
}

// appliedWithTemplate is a workload's last-applied text with the given pod template annotations
// object (raw JSON), in the order and spacing Metacontroller writes it.
func appliedWithTemplate(annotations string) string {
	return `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"shop-web"},"spec":{"replicas":2,` +
		`"template":{"metadata":{"annotations":` + annotations + `,"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","ports":[{"containerPort":8000}]}]}}}}`
}

var allowAppliedTemplate = cmp.AllowUnexported(appliedTemplate{})

// syntaxSeeds are, for every fuzz test of the scanner, a member "x" with each value whose syntax
// needs care: every shape of number, JSON's refusals (leading zeros, bare signs and points, cut
// literals, trailing commas, a missing colon or comma, an unterminated string), white space of
// each kind, and nesting just past the scan's depth and past the decoders'. wrap places the
// member in a text.
func syntaxSeeds(wrap func(member string) string) []string {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	var seeds []string
	for _, v := range []string{
		`[1,-0,0.5,-1.5e+10,2E-3,true,false,null,"s",{},[]]`,
		"01", "1.", "-", "1e", ".5", "tru", "nul", "[1,]", `{"a":1,}`, `{"a" 1}`, "[1 2]", `"unterminated`,
		"\t\n\r [ 1 , 2 ] \n",
		deep(maxScanDepth + 1), deep(10001),
	} {
		seeds = append(seeds, wrap(`"x":`+v))
	}
	return seeds
}

// FuzzAppliedTemplateScanIsTheStrictDecodes gives the scan any text: whenever it answers, the
// strict decode reads the text too, with the same answer. A text the strict decode refuses is
// never answered by the scan.
func FuzzAppliedTemplateScanIsTheStrictDecodes(f *testing.F) {
	for _, text := range goldenLastApplied(f) {
		f.Add(text)
	}
	for _, seed := range []string{
		"", "null", "[]", `"x"`, "{}", " {} ", "{}x", "{},", "\ufeff{}",
		`{"kind":"Deployment","apiVersion":"apps/v1"}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":null}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":null}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{}}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"metadata":null}}}`,
		`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"metadata":{"annotations":null}}}}`,
		`{"kind":null,"apiVersion":"apps/v1"}`,
		`{"kind":1,"apiVersion":"apps/v1"}`,
		`{"ki\u006ed":"StatefulSet","kind":"Deployment"}`,
		`{"Kind":"StatefulSet","kind":"Deployment"}`,
		`{"kind":"Deployment","kind":"StatefulSet"}`,
		`{"spec":{"template":{"metadata":{"annotations":{"a":"b"}}}},"spec":{"replicas":1}}`,
		`{"other":1,"other":2,"kind":"Deployment"}`,
		appliedWithTemplate(`{"a":"b","a":"c"}`),
		appliedWithTemplate(`{"a":1,"b":"c"}`),
		appliedWithTemplate(`{"a":1e999,"b":"c"}`),
		appliedWithTemplate(`{"a":{"x":1,"x":2}}`),
		appliedWithTemplate(`{"a":null}`),
		appliedWithTemplate(`{"a\u0062":"c"}`),
		appliedWithTemplate(`{"a":"\u003c\ud800\"\\\/\b\f\n\r\t"}`),
		appliedWithTemplate(`{"a":"` + "\xff\xfe" + `"}`),
		appliedWithTemplate(`{"` + "\xff" + `":"b"}`),
		appliedWithTemplate(`{"a":"` + "\x01" + `"}`),
		appliedWithTemplate(`{"a":"\x"}`),
		appliedWithTemplate(`{"a":"\u12"}`),
	} {
		f.Add(seed)
	}
	for _, seed := range syntaxSeeds(func(member string) string { return `{"spec":{` + member + `}}` }) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, answered := scanAppliedTemplate(text)
		if !answered {
			return
		}
		want, ok := strictAppliedTemplate(text)
		if !ok {
			t.Fatalf("the scan answered %+v for a text the strict decode refuses: %q", got, text)
		}
		if diff := cmp.Diff(want, got, allowAppliedTemplate); diff != "" {
			t.Fatalf("the scan's answer differs from the strict decode's (-strict +scan):\n%s\ntext: %q", diff, text)
		}
	})
}

// TestTheScanAnswersWhatMetacontrollerWrites checks that the scan is the path the core takes: it
// answers for every last-applied text of the goldens, and for the odd but valid texts a hand edit
// or another writer may leave (escaped values, white space, other fields of any shape).
func TestTheScanAnswersWhatMetacontrollerWrites(t *testing.T) {
	cases := map[string]string{
		"escaped characters in an annotation's value": appliedWithTemplate(`{"a":"\u003chtml\u003e \"quoted\" \\ \/ \ud83d\ude00 \ud800"}`),
		"bytes that are not UTF-8 in a value":         appliedWithTemplate(`{"a":"` + "\xff" + `"}`),
		"no annotation":                               appliedWithTemplate(`{}`),
		"white space everywhere":                      " {\n \"kind\" : \"Deployment\" ,\t\"apiVersion\":\"apps/v1\",\r\n\"spec\" : { \"template\" : { \"metadata\" : { \"annotations\" : { \"a\" : \"b\" } } } } } \n",
		"other fields of every shape":                 `{"kind":"Deployment","x":[1,-0.5e+3,true,false,null,{"y":[{}]}],"spec":{"z":{"a":1,"a":2},"template":{"spec":"s"}}}`,
		"no template":                                 `{"kind":"Service","apiVersion":"v1","spec":{"ports":[{"port":80}]}}`,
	}
	for i, text := range goldenLastApplied(t) {
		cases["golden last-applied text "+strconv.Itoa(i)] = text
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			got, answered := scanAppliedTemplate(text)
			if !answered {
				t.Fatalf("the scan left a text Metacontroller may write to the strict decode: %q", text)
			}
			want, ok := strictAppliedTemplate(text)
			if !ok {
				t.Fatalf("the strict decode refuses the case's text: %q", text)
			}
			if diff := cmp.Diff(want, got, allowAppliedTemplate); diff != "" {
				t.Fatalf("(-strict +scan):\n%s", diff)
			}
		})
	}
}

// TestTheScanLeavesWhatItCannotReadExactly names the texts the scan must not answer: each is one
// where a quick reading would differ from the strict decode's (an escaped field name that is
// "kind", a field given twice, a null that is not an object) or one the strict decode refuses.
// readAppliedTemplate then gives the strict decode's answer.
func TestTheScanLeavesWhatItCannotReadExactly(t *testing.T) {
	for name, text := range map[string]string{
		"a field name escaped":                       `{"ki\u006ed":"StatefulSet","apiVersion":"apps/v1"}`,
		"kind given twice":                           `{"kind":"Deployment","kind":"StatefulSet"}`,
		"spec given twice":                           `{"spec":{"template":{}},"spec":{"template":{}}}`,
		"an annotation given twice":                  appliedWithTemplate(`{"a":"b","a":"c"}`),
		"a null spec":                                `{"kind":"Deployment","spec":null}`,
		"a null kind":                                `{"kind":null}`,
		"a number as an annotation":                  appliedWithTemplate(`{"a":1}`),
		"an annotation's name escaped":               appliedWithTemplate(`{"\u0061":"b"}`),
		"text after the object":                      `{"kind":"Deployment"} {}`,
		"not an object":                              `["kind","Deployment"]`,
		"a number JSON does not allow":               `{"kind":"Deployment","x":01}`,
		"a control character in a string":            "{\"kind\":\"Deploy\x01ment\"}",
		"nesting deeper than the scan goes":          `{"x":` + strings.Repeat("[", maxScanDepth+1) + strings.Repeat("]", maxScanDepth+1) + `}`,
		"a trailing comma":                           `{"kind":"Deployment",}`,
		"an unfinished text":                         `{"kind":"Deployment"`,
		"an escape JSON does not have in a value":    appliedWithTemplate(`{"a":"\x41"}`),
		"a field name with bytes that are not UTF-8": "{\"kind\xff\":\"x\"}",
	} {
		t.Run(name, func(t *testing.T) {
			if got, answered := scanAppliedTemplate(text); answered {
				t.Fatalf("the scan answered %+v", got)
			}
			want, wantOK := strictAppliedTemplate(text)
			got, ok := readAppliedTemplate(text)
			if ok != wantOK || cmp.Diff(want, got, allowAppliedTemplate) != "" {
				t.Fatalf("readAppliedTemplate gave %+v, %v; the strict decode %+v, %v", got, ok, want, wantOK)
			}
		})
	}
}

// TestTheScanAllocatesOnlyTheAnnotations holds the scan's point: for a golden web Deployment's
// text it allocates the annotations' map and nothing per field it passes (the strict decode
// allocates about forty times a text).
func TestTheScanAllocatesOnlyTheAnnotations(t *testing.T) {
	text := largestGoldenText(t, `"kind":"Deployment"`)
	allocs := testing.AllocsPerRun(50, func() {
		if _, answered := scanAppliedTemplate(text); !answered {
			t.Fatal("the scan did not answer")
		}
	})
	strict := testing.AllocsPerRun(50, func() { strictAppliedTemplate(text) })
	// A map of a few annotations is two or three allocations; the room is for Go's own changes.
	if allocs > 6 || allocs > strict/4 {
		t.Fatalf("the scan allocates %v times a text (the strict decode %v); want at most 6", allocs, strict)
	}
}

// FuzzObjectScanIsTheDecoders gives scanObject any text: whenever it answers, metacontroller.Decode
// reads the text too, into the same map, Go types included (int64 and float64 differ). A text
// Decode refuses is never answered by the scan.
func FuzzObjectScanIsTheDecoders(f *testing.F) {
	for _, text := range goldenLastApplied(f) {
		f.Add(text)
	}
	for _, seed := range []string{
		"", "null", "[]", `"x"`, "1", "{}", " {} ", "{}x", "\ufeff{}",
		`{"a":1,"b":-0,"c":1.0,"d":1e3,"e":-1.5E-3,"f":9223372036854775807,"g":9223372036854775808,"h":-9223372036854775809,"i":1e999,"j":1e-999}`,
		`{"a":[],"b":{},"c":[[],{}],"d":[1,"x",true,false,null],"e":null}`,
		`{"a":1,"a":"two"}`,
		`{"a\u0062":"c","ab":"d"}`,
		`{"a":"\u003c\ud800\"\\\/\b\f\n\r\t\ud83d\ude00"}`,
		"{\"a\":\"\xff\xfe\",\"\xff\":1}",
		`{"a":"` + "\x01" + `"}`, `{"a":"\x"}`, `{"a":"\u12"}`,
	} {
		f.Add(seed)
	}
	for _, seed := range syntaxSeeds(func(member string) string { return "{" + member + "}" }) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, answered := scanObject(text)
		if !answered {
			return
		}
		var want metacontroller.Object
		if err := metacontroller.Decode([]byte(text), &want); err != nil {
			t.Fatalf("the scan answered %v for a text Decode refuses (%v): %q", got, err, text)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("the scan's map differs from Decode's (-Decode +scan):\n%s\ntext: %q", diff, text)
		}
	})
}

// TestTheObjectScanReadsEveryGoldenText checks that scanObject is the path lastApplied takes for
// every last-applied text of the goldens, with Decode's map, and that it leaves to Decode the
// texts it can't read exactly.
func TestTheObjectScanReadsEveryGoldenText(t *testing.T) {
	for i, text := range goldenLastApplied(t) {
		got, answered := scanObject(text)
		var want metacontroller.Object
		if err := metacontroller.Decode([]byte(text), &want); err != nil {
			t.Fatalf("golden text %d: Decode: %v", i, err)
		}
		if !answered {
			t.Fatalf("golden text %d: the scan left it to Decode: %q", i, text)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("golden text %d (-Decode +scan):\n%s", i, diff)
		}
	}
	for name, text := range map[string]string{
		"null":                                   "null",
		"an array":                               `[{"kind":"Job"}]`,
		"a number beyond float64":                `{"a":1e999}`,
		"text after the object":                  `{"a":1}{}`,
		"a trailing comma":                       `{"a":1,}`,
		"nesting deeper than the scan goes":      `{"a":` + strings.Repeat("[", maxScanDepth+1) + strings.Repeat("]", maxScanDepth+1) + `}`,
		"a number JSON does not allow":           `{"a":01}`,
		"a control character in a string":        "{\"a\":\"\x01\"}",
		"an escape JSON does not have in a name": `{"\x41":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			if got, answered := scanObject(text); answered {
				t.Fatalf("the scan answered %v", got)
			}
		})
	}
}

// TestTheObjectScanAllocatesLessThanDecode holds the object scan's point on the goldens' largest
// Job text: no allocation for a plain name or string, only the maps, lists and boxes.
func TestTheObjectScanAllocatesLessThanDecode(t *testing.T) {
	text := largestGoldenText(t, `"kind":"Job"`)
	scan := testing.AllocsPerRun(50, func() {
		if _, answered := scanObject(text); !answered {
			t.Fatal("the scan did not answer")
		}
	})
	decode := testing.AllocsPerRun(50, func() {
		var m metacontroller.Object
		if err := metacontroller.Decode([]byte(text), &m); err != nil {
			t.Fatal(err)
		}
	})
	// The ratio measured when this was written is about 0.5; the room is for Go's own changes.
	if scan > 0.7*decode {
		t.Fatalf("the scan allocates %v times a Job text, Decode %v: want at most 0.7 of Decode's", scan, decode)
	}
	t.Logf("allocations per Job text: scan %v, Decode %v", scan, decode)
}
