package children

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"unicode/utf8"

	yamlv2 "go.yaml.in/yaml/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Settings are the Django settings written into the app config file.
type Settings map[string]any

// MergeSettings layers the config file's sources, each over the one before: spec.config, the
// settings Summon generates (connection URLs, SECRET_KEY), then the input Secrets in the order
// listed. Input Secrets win so that an instance moved onto Summon can keep its own SECRET_KEY or
// point at a database Summon doesn't manage.
func MergeSettings(config Settings, generated map[string]string, inputs []map[string][]byte) Settings {
	out := maps.Clone(config)
	if out == nil {
		out = Settings{}
	}
	for k, v := range generated {
		out[k] = v
	}
	for _, in := range inputs {
		for k, v := range in {
			out[k] = string(v)
		}
	}
	return out
}

// ConfigFile renders the settings as the YAML file the app reads, keys sorted so that the same
// settings always give the same bytes (and the same hash).
func ConfigFile(s Settings) ([]byte, error) {
	if plainSettings(s) {
		// sigs.k8s.io/yaml writes the settings as JSON, parses that with yaml.v2 and writes the
		// result: a tenth of the core's CPU. Plain settings (the generated ones and the input
		// Secrets' are strings, spec.config's are mostly strings, booleans and numbers) parse
		// back as themselves, so yaml.v2 writes them directly to the same bytes
		// (TestConfigFileIsSigsYAMLs).
		b, err := yamlv2.Marshal(map[string]any(s))
		if err != nil {
			return nil, fmt.Errorf("rendering the app config file: %w", err)
		}
		return b, nil
	}
	b, err := yaml.Marshal(map[string]any(s))
	if err != nil {
		return nil, fmt.Errorf("rendering the app config file: %w", err)
	}
	return b, nil
}

// plainSettings says whether every setting is a string, a boolean, a whole number or null, with
// every key and string valid UTF-8 (JSON would replace invalid bytes): values that come back from
// their JSON as themselves.
func plainSettings(s Settings) bool {
	for k, v := range s {
		if !utf8.ValidString(k) {
			return false
		}
		switch x := v.(type) {
		case string:
			if !utf8.ValidString(x) {
				return false
			}
		case bool, int64, nil:
		default:
			return false
		}
	}
	return true
}

// ConfigHash names the content of the config file. It goes into every app pod template, so a
// change of any setting rolls the pods: Django reads its settings once, at start.
func ConfigHash(file []byte) string {
	sum := sha256.Sum256(file)
	return hex.EncodeToString(sum[:8])
}

// AppConfigSecret holds the app config file. It is a Secret, not a ConfigMap: it carries the
// database password and SECRET_KEY. It uses data, not stringData: the API server folds stringData
// into data, so Metacontroller would see a difference on every sync.
func AppConfigSecret(p Platform, file []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, p.Names.Config(), Labels(p.Name, AppConfig)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ConfigFileName: file},
	}
}
