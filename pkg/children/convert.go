package children

import (
	"encoding/base64"
	"errors"
	"math"
	"reflect"
	"sync"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// The conversion of a typed child to its map, without the unstructured converter's cost.
//
// runtime.DefaultUnstructuredConverter walks a typed object with reflect and builds the map
// through reflect.Value at every level (a reflect.New per field, a cache lookup per field and per
// type): it was 64% of the core's allocations. fastObject builds the same map from a plan made
// once per Go type, pruning as it goes (no null, no empty object or list is ever stored), and
// leaves to the converter's own code what a type converts for itself (metav1.Time,
// resource.Quantity, intstr.IntOrString: value.TypeReflectCacheEntry.ToUnstructured). Anything
// it does not take (an error, a shape no Kubernetes type has) goes to the converter itself, so
// the result is the converter's in every case; FuzzToObjectIsTheConverters checks it.

// errConverterOnly says that fastObject leaves this object to the unstructured converter.
var errConverterOnly = errors.New("left to the unstructured converter")

// plan is how to convert one Go type, read once from its reflect.Type.
type plan struct {
	kind reflect.Kind
	// custom is set when the type converts itself (a json.Marshaler or an UnstructuredConverter):
	// the converter then asks it, and so does fastObject.
	custom *value.TypeReflectCacheEntry
	// intOrString: intstr.IntOrString, whose JSON round trip (what the converter makes of a
	// json.Marshaler) is read here without writing the JSON.
	intOrString bool
	// quantity: resource.Quantity, whose ToUnstructured is its String() of a copy, asked here
	// without the converter's boxing of the copy and of its result.
	quantity bool
	// elem is the plan of a pointer's, a slice's or a map's element.
	elem *plan
	// bytes: a slice of bytes, which JSON writes as base64.
	bytes bool
	// stringMap: exactly map[string]string (labels, annotations, selectors).
	stringMap bool
	// fields of a struct, in declaration order; the converter writes them in that order.
	fields []field
	// rewrites: a struct where two fields may write the same key (an inlined struct, equal json
	// names), so the last write must replace the first, as the converter's map assignment does.
	rewrites bool
	// convertible is false for what the converter refuses (or panics on): arrays, channels,
	// functions, complex numbers, maps with keys that are not strings, odd inlined fields.
	convertible bool
}

// field is one struct field as the converter reads its json tag (fieldInfoFromField).
type field struct {
	name      string // "" for an inlined field
	index     int
	omitEmpty bool
	omitZero  func(reflect.Value) bool
	plan      *plan
}

var (
	plans     sync.Map // reflect.Type → *plan
	plansMu   sync.Mutex
	pairPool  = sync.Pool{New: func() any { return &converter{pairs: make([]pair, 0, 64)} }}
	stringMap = reflect.TypeFor[map[string]string]()

	intOrStringType               = reflect.TypeFor[intstr.IntOrString]()
	quantityType                  = reflect.TypeFor[resource.Quantity]()
	intOrStringFields             = fieldIndexes(intOrStringType, "Type", "IntVal", "StrVal")
	iosType, iosIntVal, iosStrVal = intOrStringFields[0], intOrStringFields[1], intOrStringFields[2]
)

func fieldIndexes(t reflect.Type, names ...string) []int {
	out := make([]int, len(names))
	for i, n := range names {
		f, ok := t.FieldByName(n)
		if !ok {
			panic("children: " + t.String() + " has no field " + n)
		}
		out[i] = f.Index[0]
	}
	return out
}

func planOf(t reflect.Type) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	plansMu.Lock()
	defer plansMu.Unlock()
	building := map[reflect.Type]*plan{}
	p := buildPlan(t, building)
	for t, p := range building {
		plans.Store(t, p)
	}
	return p
}

// buildPlan plans t; building holds the plans under construction, for recursive types.
func buildPlan(t reflect.Type, building map[reflect.Type]*plan) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	if p, ok := building[t]; ok {
		return p
	}
	p := &plan{kind: t.Kind(), convertible: true}
	building[t] = p
	if e := value.TypeReflectEntryOf(t); e.CanConvertToUnstructured() {
		p.custom = e
		p.intOrString = t == intOrStringType
		p.quantity = t == quantityType
		return p
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Interface:
	case reflect.Pointer:
		p.elem = buildPlan(t.Elem(), building)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			p.bytes = true
		} else {
			p.elem = buildPlan(t.Elem(), building)
		}
	case reflect.Map:
		p.convertible = t.Key().Kind() == reflect.String
		p.stringMap = t == stringMap
		p.elem = buildPlan(t.Elem(), building)
	case reflect.Struct:
		p.fields, p.rewrites, p.convertible = fieldsOf(t, building)
	default:
		p.convertible = false
	}
	return p
}

// fieldsOf reads a struct's fields as the converter's fieldInfoFromField does (Go before 1.27:
// a field is inlined when it is anonymous and its json name is empty).
func fieldsOf(t reflect.Type, building map[reflect.Type]*plan) (fields []field, rewrites, convertible bool) {
	seen := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		f := field{index: i}
		tag, ok := sf.Tag.Lookup("json")
		if !ok || tag == "" {
			if !sf.Anonymous {
				f.name = sf.Name
			}
		} else {
			name, opts, _ := cutComma(tag)
			f.name = name
			if name == "" && !sf.Anonymous {
				f.name = sf.Name
			}
			for opts != "" {
				var opt string
				opt, opts, _ = cutComma(opts)
				switch opt {
				case "omitempty":
					f.omitEmpty = true
				case "omitzero":
					f.omitZero = value.OmitZeroFunc(sf.Type)
				}
			}
		}
		if f.name == "-" {
			continue
		}
		f.plan = buildPlan(sf.Type, building)
		if f.name == "" {
			// An inlined field writes into its parent's map: only a struct, or a pointer to
			// one, that converts field by field does that in the converter.
			rewrites = true
			inner := sf.Type
			if inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			if inner.Kind() != reflect.Struct || f.plan.custom != nil || (sf.Type.Kind() == reflect.Pointer && f.plan.elem.custom != nil) {
				return nil, false, false
			}
		} else if seen[f.name] {
			rewrites = true
		}
		seen[f.name] = true
		fields = append(fields, f)
	}
	return fields, rewrites, true
}

func cutComma(s string) (before, after string, found bool) {
	for i := range len(s) {
		if s[i] == ',' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// pair is one key of a map under construction.
type pair struct {
	key string
	val any
}

// converter holds the keys of the maps under construction, one stretch per struct being
// converted, so that each map is made once at its final size; and, for one call, the boxed
// strings of the Converter it works for.
type converter struct {
	pairs   []pair
	strings map[string]any
}

// box is s as an interface value: the one the Converter already made for an equal string, if it
// made one. Boxing a string allocates; an interface value can't be changed, so one serves every
// map that holds the same string.
func (c *converter) box(s string) any {
	if c.strings == nil {
		return s
	}
	if b, ok := c.strings[s]; ok {
		return b
	}
	b := any(s)
	c.strings[s] = b
	return b
}

// fastObject converts a pointer to a typed object as ToObjectByConverter does, or says
// errConverterOnly. strings, when not nil, are the boxed strings to share (Converter).
func fastObject(typed any, strings map[string]any) (metacontroller.Object, error) {
	if _, ok := typed.(runtime.Unstructured); ok {
		return nil, errConverterOnly
	}
	v := reflect.ValueOf(typed)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, errConverterOnly
	}
	p := planOf(v.Type().Elem())
	if p.kind != reflect.Struct || p.custom != nil || !p.convertible {
		return nil, errConverterOnly
	}
	c := pairPool.Get().(*converter)
	c.strings = strings
	defer func() {
		c.strings = nil
		pairPool.Put(c)
	}()
	return c.structValue(v.Elem(), p, true)
}

// value converts v as the converter's toUnstructured does into an empty interface, pruned
// inside: nil where it stores nothing.
func (c *converter) value(v reflect.Value, p *plan) (any, error) {
	if p.intOrString {
		// MarshalJSON writes IntVal or StrVal; read back, a number is an int64 and a valid
		// UTF-8 string is itself (JSON replaces invalid bytes, so those take the long way).
		switch intstr.Type(v.Field(iosType).Int()) {
		case intstr.Int:
			return v.Field(iosIntVal).Int(), nil
		case intstr.String:
			if s := v.Field(iosStrVal).String(); utf8.ValidString(s) {
				return c.box(s), nil
			}
		}
	}
	if p.quantity && v.CanAddr() && v.CanInterface() {
		// A copy: String caches its text in the Quantity, and the typed object is the caller's.
		q := *v.Addr().Interface().(*resource.Quantity)
		return c.box(q.String()), nil
	}
	if p.custom != nil {
		out, err := p.custom.ToUnstructured(v)
		if err != nil {
			return nil, err
		}
		pruneValue(out)
		return out, nil
	}
	if !p.convertible {
		return nil, errConverterOnly
	}
	switch p.kind {
	case reflect.String:
		return c.box(v.String()), nil
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := v.Uint()
		if u > math.MaxInt64 {
			return nil, errConverterOnly
		}
		return int64(u), nil
	case reflect.Float32, reflect.Float64:
		return v.Float(), nil
	case reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		return c.value(v.Elem(), p.elem)
	case reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		e := v.Elem()
		return c.value(e, planOf(e.Type()))
	case reflect.Struct:
		return c.structValue(v, p, false)
	case reflect.Map:
		if v.IsNil() {
			return nil, nil
		}
		return c.mapValue(v, p)
	case reflect.Slice:
		if v.IsNil() {
			return nil, nil
		}
		if p.bytes {
			return base64.StdEncoding.EncodeToString(v.Bytes()), nil
		}
		out := make([]any, v.Len())
		for i := range out {
			e, err := c.value(v.Index(i), p.elem)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return nil, errConverterOnly
}

func (c *converter) mapValue(v reflect.Value, p *plan) (map[string]any, error) {
	out := make(map[string]any, v.Len())
	if p.stringMap && v.CanInterface() {
		for k, s := range v.Interface().(map[string]string) {
			out[k] = c.box(s)
		}
		return out, nil
	}
	// One key and one element for the whole map, set in place: it.Key() and it.Value() would
	// allocate a copy of each. (Setting needs a map that is not read through an unexported
	// field; the converter never reads one, and such a map takes the copies.)
	it := v.MapRange()
	key, elem, inPlace := reflect.Value{}, reflect.Value{}, v.CanInterface()
	if inPlace {
		key, elem = reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
	}
	for it.Next() {
		if inPlace {
			key.SetIterKey(it)
			elem.SetIterValue(it)
		} else {
			key, elem = it.Key(), it.Value()
		}
		k := key.String()
		e, err := c.value(elem, p.elem)
		if err != nil {
			return nil, err
		}
		if !pruned(k, e) {
			out[k] = e
		}
	}
	return out, nil
}

// structValue converts a struct to a map; root leaves out the top-level status, as ToObject
// does.
func (c *converter) structValue(v reflect.Value, p *plan, root bool) (map[string]any, error) {
	start := len(c.pairs)
	err := c.fields(v, p, start, root)
	var out map[string]any
	if err == nil {
		out = make(map[string]any, len(c.pairs)-start)
		for _, kv := range c.pairs[start:] {
			out[kv.key] = kv.val
		}
	}
	clear(c.pairs[start:]) // the pool must not keep the objects alive
	c.pairs = c.pairs[:start]
	return out, err
}

// fields writes a struct's fields as the converter's structToUnstructured does.
func (c *converter) fields(v reflect.Value, p *plan, start int, root bool) error {
	for i := range p.fields {
		f := &p.fields[i]
		fv := v.Field(f.index)
		if f.omitEmpty && isEmpty(fv) {
			continue
		}
		if f.omitZero != nil && f.omitZero(fv) {
			continue
		}
		if f.name == "" {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			inner := planOf(fv.Type())
			if !inner.convertible {
				return errConverterOnly
			}
			if err := c.fields(fv, inner, start, root); err != nil {
				return err
			}
			continue
		}
		var e any
		// The converter writes a field of a basic kind as that kind, without asking the type.
		switch fv.Kind() {
		case reflect.String:
			e = c.box(fv.String())
		case reflect.Bool:
			e = fv.Bool()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			e = fv.Int()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			u := fv.Uint()
			if u > math.MaxInt64 {
				return errConverterOnly
			}
			e = int64(u)
		case reflect.Float32, reflect.Float64:
			e = fv.Float()
		default:
			var err error
			if e, err = c.value(fv, f.plan); err != nil {
				return err
			}
		}
		if root && f.name == "status" {
			continue
		}
		if p.rewrites {
			for j := start; j < len(c.pairs); j++ {
				if c.pairs[j].key == f.name {
					c.pairs = append(c.pairs[:j], c.pairs[j+1:]...)
					break
				}
			}
		}
		if !pruned(f.name, e) {
			c.pairs = append(c.pairs, pair{f.name, e})
		}
	}
	return nil
}

// pruned says whether prune would remove the value e, already pruned inside, from under key k.
func pruned(k string, e any) bool {
	switch x := e.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0 && !presenceMatters[k]
	case []any:
		return len(x) == 0
	}
	return false
}

// isEmpty is the converter's test for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Map, reflect.Slice:
		return v.IsNil() || v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}
