package v1beta1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// ConfigValue is one Django setting: a string, a bool or a number. Lists and maps are refused so
// that the config file stays a flat settings module that a human can read and diff.
type ConfigValue struct {
	raw json.RawMessage
}

// StringValue, BoolValue and NumberValue build config values (tests and examples use them).
func StringValue(s string) ConfigValue {
	b, _ := json.Marshal(s)
	return ConfigValue{raw: b}
}

// BoolValue is a bool setting.
func BoolValue(b bool) ConfigValue { return ConfigValue{raw: []byte(strconv.FormatBool(b))} }

// NumberValue is a numeric setting.
func NumberValue(n float64) ConfigValue {
	return ConfigValue{raw: []byte(strconv.FormatFloat(n, 'g', -1, 64))}
}

// UnmarshalJSON accepts only JSON strings, booleans and numbers.
func (v *ConfigValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return fmt.Errorf("empty config value")
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	case 't', 'f':
		var x bool
		if err := json.Unmarshal(b, &x); err != nil {
			return err
		}
	case '[', '{':
		return fmt.Errorf("config values must be a string, a bool or a number, not a list or a map")
	case 'n':
		return fmt.Errorf("config values must be a string, a bool or a number, not null")
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
	}
	v.raw = append(json.RawMessage(nil), b...)
	return nil
}

// MarshalJSON writes the value as it came.
func (v ConfigValue) MarshalJSON() ([]byte, error) {
	if len(v.raw) == 0 {
		return []byte(`""`), nil
	}
	return v.raw, nil
}

// Value is the Go value: string, bool or json.Number.
func (v ConfigValue) Value() any {
	if len(v.raw) == 0 {
		return ""
	}
	switch v.raw[0] {
	case '"':
		var s string
		_ = json.Unmarshal(v.raw, &s)
		return s
	case 't':
		return true
	case 'f':
		return false
	default:
		return json.Number(v.raw)
	}
}
