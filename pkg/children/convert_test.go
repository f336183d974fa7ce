package children

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// sameAsConverter fails t unless ToObject gives what ToObjectByConverter gives for typed: the same
// error or the same map, with the same Go types at every level (int64 stays int64), and so the
// same JSON.
func sameAsConverter(t *testing.T, typed any) {
	t.Helper()
	sameAsConverterWith(t, typed, ToObject)
}

// sameAsConverterWith is sameAsConverter for another way to call ToObject (a Converter's).
func sameAsConverterWith(t *testing.T, typed any, toObject func(any) (metacontroller.Object, error)) {
	t.Helper()
	want, wantErr := ToObjectByConverter(typed)
	got, gotErr := toObject(typed)
	if (wantErr != nil) != (gotErr != nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Fatalf("%T: ToObject's error is %v, the converter's %v", typed, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%T: ToObject differs from the converter (-converter +ToObject):\n%s\ntypes: %s", typed, cmp.Diff(want, got), firstTypeDifference("", want, got))
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if string(wantJSON) != string(gotJSON) {
		t.Fatalf("%T: the same map encodes differently:\n%s\n%s", typed, wantJSON, gotJSON)
	}
}

// firstTypeDifference names where two equal-looking values differ in type (cmp.Diff shows 1 for
// both int64(1) and int32(1)).
func firstTypeDifference(at string, a, b any) string {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return fmt.Sprintf("%s: %T against %T", at, a, b)
	}
	switch x := a.(type) {
	case map[string]any:
		y := b.(map[string]any)
		for k := range x {
			if d := firstTypeDifference(at+"."+k, x[k], y[k]); d != "" {
				return d
			}
		}
	case []any:
		y := b.([]any)
		for i := range min(len(x), len(y)) {
			if d := firstTypeDifference(fmt.Sprintf("%s[%d]", at, i), x[i], y[i]); d != "" {
				return d
			}
		}
	}
	return ""
}

// randomTyped are the types Summon builds children of (and a few more of the same API groups),
// each a fresh pointer for the filler.
var randomTyped = []func() any{
	func() any { return &appsv1.Deployment{} },
	func() any { return &appsv1.StatefulSet{} },
	func() any { return &corev1.Secret{} },
	func() any { return &corev1.Service{} },
	func() any { return &corev1.ConfigMap{} },
	func() any { return &corev1.Pod{} },
	func() any { return &corev1.PersistentVolumeClaim{} },
	func() any { return &batchv1.Job{} },
	func() any { return &networkingv1.Ingress{} },
	func() any { return &networkingv1.NetworkPolicy{} },
	func() any { return &policyv1.PodDisruptionBudget{} },
	func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	func() any { return &oddShapes{} },
}

// filler fills typed objects at random from seed, with values their own JSON accepts: a Quantity
// or an IntOrString made by its constructors (their fields are not free), times to the second.
func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).MaxDepth(12).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewMilliQuantity(int64(c.Uint64()%1_000_000), resource.DecimalSI)
		},
		func(q *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*q = intstr.FromInt32(int32(c.Uint64()))
			} else {
				var s string
				c.Fill(&s)
				*q = intstr.FromString(s)
			}
		},
		func(tm *metav1.Time, c randfill.Continue) {
			if c.Bool() {
				*tm = metav1.Time{}
				return
			}
			*tm = metav1.NewTime(time.Unix(int64(c.Uint64()%4_000_000_000), 0))
		},
		func(tm *metav1.MicroTime, c randfill.Continue) {
			*tm = metav1.NewMicroTime(time.Unix(int64(c.Uint64()%4_000_000_000), 0))
		},
		func(r *runtime.RawExtension, c randfill.Continue) {
			if c.Bool() {
				r.Raw = []byte(`{"a":[1,2.5,"x",null,{}],"b":{}}`)
			}
		},
		func(a *any, c randfill.Continue) {
			var str string
			c.Fill(&str)
			choices := []any{nil, str, int64(c.Uint64() % 1000), uint8(c.Uint64()), float64(c.Uint64()%1000) / 8, c.Bool(),
				map[string]any{str: nil, "e": map[string]any{}, "l": []any{}}, []any{str, nil, map[string]any{}},
				&nested{Status: str}, metav1.Time{}, intstr.FromString(str)}
			*a = choices[c.Uint64()%uint64(len(choices))]
		},
		func(u *uint64, c randfill.Continue) {
			// Every 50th beyond int64, which both refuse.
			*u = c.Uint64()
			if *u%50 != 0 {
				*u %= math.MaxInt64
			}
		},
	)
}

// FuzzToObjectIsTheConverters fills every child type at random from a seed and checks that
// ToObject gives the converter's result. `go test` runs the seeds below;
// `go test -fuzz FuzzToObjectIsTheConverters ./pkg/children` looks for more.
func FuzzToObjectIsTheConverters(f *testing.F) {
	for seed := range int64(40) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		fill := filler(seed)
		// One Converter for every object of the input, as for the children of one answer: the
		// strings it shares among them must change none.
		var shared Converter
		for _, newTyped := range randomTyped {
			typed := newTyped()
			fill.Fill(typed)
			sameAsConverter(t, typed)
			sameAsConverterWith(t, typed, shared.ToObject)
		}
	})
}

// oddShapes holds what no Kubernetes type Summon builds has, but the converter defines: inlined
// structs (by value and by pointer) whose keys clash with the parent's, fields without tags,
// unexported ones, omitzero, interfaces, bytes, floats, unsigned numbers, the emptyDir rule at
// any depth, and a status that only the top level loses.
type oddShapes struct {
	Inlined         `json:",inline"`
	*InlinedPointer `json:",inline"`
	Name            string  `json:"name"`
	Clash           string  `json:"clash,omitempty"`
	Later           *string `json:"clash2"`
	NoTag           int16
	//lint:ignore U1000 the converter reads unexported fields too, by reflection
	unexported string
	Skipped    string            `json:"-"`
	Zero       struct{ A int }   `json:"zero,omitzero"`
	ZeroTime   metav1.Time       `json:"zeroTime,omitzero"`
	Any        any               `json:"any"`
	Anys       []any             `json:"anys"`
	Bytes      []byte            `json:"bytes"`
	EmptyBytes []byte            `json:"emptyBytes"`
	ByteMap    map[string][]byte `json:"byteMap"`
	Float      float32           `json:"float"`
	Unsigned   uint64            `json:"unsigned"`
	EmptyDir   *struct{}         `json:"emptyDir"`
	Nested     map[string]nested `json:"nested"`
	Pointers   []*nested         `json:"pointers"`
	Lists      [][]string        `json:"lists"`
	Status     nested            `json:"status"`
	Port       intstr.IntOrString
	Quantity   *resource.Quantity `json:"quantity,omitempty"`
	Raw        runtime.RawExtension
	Times      []metav1.Time `json:"times"`
}

// Inlined writes its keys into the object that embeds it.
type Inlined struct {
	Clash  string `json:"clash"`
	Clash2 string `json:"clash2"`
	Kind   string `json:"kind"`
}

// InlinedPointer is inlined through a pointer.
type InlinedPointer struct {
	Status string `json:"status"`
}

type nested struct {
	EmptyDir map[string]string `json:"emptyDir"`
	Status   string            `json:"status,omitempty"`
	Inner    *nested           `json:"inner,omitempty"`
	Items    []nested          `json:"items"`
	Count    *int32            `json:"count,omitempty"`
}

func TestToObjectIsTheConvertersForEveryShape(t *testing.T) {
	s := "set"
	n := int32(3)
	tests := map[string]any{
		"a Deployment with a pod template":   &appsv1.Deployment{TypeMeta: typeMeta("apps/v1", "Deployment"), Spec: appsv1.DeploymentSpec{Replicas: &n, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8000}}}}, Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}}}},
		"a Secret's bytes are base64":        &corev1.Secret{Data: map[string][]byte{"a": []byte("\x00\xff secret"), "empty": {}, "nil": nil}, StringData: map[string]string{"b": "c"}},
		"a Service's IntOrString ports":      &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}, {TargetPort: intstr.FromInt32(8000)}, {TargetPort: intstr.FromString("\xff invalid UTF-8")}, {TargetPort: intstr.IntOrString{Type: 7}}}}},
		"everything empty":                   &oddShapes{},
		"inlined keys that clash":            &oddShapes{Inlined: Inlined{Clash: "inlined", Clash2: "inlined", Kind: "Odd"}, Clash: "", Later: &s, InlinedPointer: &InlinedPointer{Status: "gone at the top"}},
		"inlined keys replaced by a nil":     &oddShapes{Inlined: Inlined{Clash2: "inlined"}},
		"emptyDir kept at any depth":         &oddShapes{EmptyDir: &struct{}{}, Nested: map[string]nested{"a": {EmptyDir: map[string]string{}}, "b": {}, "emptyDir": {}}},
		"nested statuses stay":               &oddShapes{Status: nested{Status: "kept? no: the top one goes"}, Nested: map[string]nested{"x": {Status: "stays", Inner: &nested{Status: "stays", Count: &n}}}},
		"lists keep their empty items":       &oddShapes{Pointers: []*nested{nil, {}, {Items: []nested{{}}}}, Lists: [][]string{{}, nil, {"a"}}, Anys: []any{nil, map[string]any{}, []any{}, 1, int8(2), "x"}},
		"interfaces of every kind":           &oddShapes{Any: map[string]any{"a": []any{map[string]any{"b": nil}}, "n": uint8(1), "f": 1.5, "t": metav1.Time{}}},
		"floats, unsigned, bytes":            &oddShapes{unexported: "read too", Float: 0.1, Unsigned: math.MaxInt64, Bytes: []byte{1, 2, 3}, EmptyBytes: []byte{}, ByteMap: map[string][]byte{"k": nil}},
		"an unsigned number beyond int64":    &oddShapes{Unsigned: math.MaxUint64},
		"an unsigned number in an interface": &oddShapes{Any: uint64(math.MaxUint64)},
		"a raw extension":                    &oddShapes{Raw: runtime.RawExtension{Raw: []byte(`{"a":{},"b":[{}],"c":null}`)}},
		"times, zero and set":                &oddShapes{Times: []metav1.Time{{}, metav1.NewTime(time.Unix(1_800_000_000, 0))}, ZeroTime: metav1.Time{}},
		"a quantity":                         &oddShapes{Quantity: resource.NewQuantity(5, resource.BinarySI)},
		"an array, which neither takes":      &struct{ A [2]int }{},
		"a map with int keys":                &struct{ M map[int]string }{M: map[int]string{1: "a"}},
		"a nil map with int keys":            &struct{ M map[int]string }{},
		"a channel":                          &struct{ C chan int }{C: make(chan int)},
		"not a pointer":                      corev1.Secret{},
		"a nil pointer":                      (*corev1.Secret)(nil),
		"a pointer to a map":                 &map[string]any{"a": 1},
	}
	for sentence, typed := range tests {
		t.Run(sentence, func(t *testing.T) { sameAsConverter(t, typed) })
	}
}

// TestToObjectAllocatesFarLessThanTheConverter keeps the point of the fast path: converting a
// Deployment as Summon builds them allocates well under half of what the converter does. The bound
// is a ratio, not a count, so that a new Go or a new k8s.io/api moves both sides.
func TestToObjectAllocatesFarLessThanTheConverter(t *testing.T) {
	p := NewPlatform("car1-qa", "summon-qa", v1beta1.Spec{Image: "registry.example.com/summon-platform"})
	d := WebDeployment(p, Release{Version: "v1", ConfigHash: "abc"}, 3)
	if _, err := ToObject(d); err != nil {
		t.Fatal(err)
	}
	fast := testing.AllocsPerRun(50, func() { _, _ = ToObject(d) })
	slow := testing.AllocsPerRun(50, func() { _, _ = ToObjectByConverter(d) })
	t.Logf("a web Deployment: %.0f allocations, %.0f through the converter", fast, slow)
	if fast > 0.6*slow {
		t.Errorf("ToObject allocates %.0f times for a web Deployment, the converter %.0f: more than 60%%", fast, slow)
	}
}

// TestAConverterBoxesEachStringOnce converts a web Deployment twice with one Converter, as the
// children of one answer repeat each other's strings: the second time allocates fewer times than
// ToObject alone, and editing the first map leaves the second as it was.
func TestAConverterBoxesEachStringOnce(t *testing.T) {
	p := NewPlatform("car1-qa", "summon-qa", v1beta1.Spec{Image: "registry.example.com/summon-platform"})
	d := WebDeployment(p, Release{Version: "v1", ConfigHash: "abc"}, 3)
	alone := testing.AllocsPerRun(50, func() { _, _ = ToObject(d) })
	var c Converter
	first, err := c.ToObject(d)
	if err != nil {
		t.Fatal(err)
	}
	again := testing.AllocsPerRun(50, func() { _, _ = c.ToObject(d) })
	t.Logf("a web Deployment: %.0f allocations alone, %.0f with its strings already boxed", alone, again)
	if again >= alone {
		t.Errorf("with every string already boxed, converting allocates %.0f times; alone %.0f", again, alone)
	}
	later, _ := c.ToObject(d)
	metacontroller.SetAnnotation(first, "edited", "yes")
	first["metadata"].(map[string]any)["name"] = "changed"
	want, _ := ToObjectByConverter(d)
	if !reflect.DeepEqual(later, want) {
		t.Errorf("editing one map changed another that shares its strings (-want +got):\n%s", cmp.Diff(want, later))
	}
}

// TestToObjectIsTheConvertersFromManyGoroutines converts from several goroutines at once, as the
// hook does for concurrent calls: the plans are made once and shared, the converters pooled (run
// with -race).
func TestToObjectIsTheConvertersFromManyGoroutines(t *testing.T) {
	var wg sync.WaitGroup
	failures := make(chan string, 8)
	for g := range int64(8) {
		wg.Go(func() {
			fill := filler(100 + g)
			for i := range 20 {
				typed := randomTyped[(int(g)+i)%len(randomTyped)]()
				fill.Fill(typed)
				want, _ := ToObjectByConverter(typed)
				got, _ := ToObject(typed)
				if !reflect.DeepEqual(got, want) {
					failures <- fmt.Sprintf("%T: (-converter +ToObject):\n%s", typed, cmp.Diff(want, got))
					return
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
}
