package cli

import (
	"encoding/json"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// deepCopyJSON copies a JSON object (maps, lists and scalars) all the way down.
func deepCopyJSON(m map[string]any) map[string]any {
	return copyJSONValue(m).(map[string]any)
}

func copyJSONValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyJSONValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyJSONValue(e)
		}
		return out
	}
	return v
}

// toJSONMap turns a typed value into a JSON object as the hook's answer holds it.
func toJSONMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, metacontroller.Decode(b, &m)
}

// runtimeFromUnstructured reads an object the API server served into a typed value.
func runtimeFromUnstructured(obj map[string]any, into any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}
