package platform

import (
	"fmt"
	"net/url"

	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
)

// The settings of the app config file that carry a generated secret.
const (
	SettingSecretKey   = "SECRET_KEY"
	SettingDatabaseURL = "DATABASE_URL"
	SettingBrokerURL   = "BROKER_URL"
)

// GeneratedCredentials reads the generated secrets back out of an app config file as the hook
// wrote it: SECRET_KEY, and the passwords inside DATABASE_URL, BROKER_URL and the Redis URLs, by
// credential purpose (DATABASE_URL's for both a shared and an in-cluster database: the spec says
// which one Sync asks for). A client of the cluster never holds the hook's master key; with these values (as a
// credentials.Known) Sync writes the very same file, and so the same config hash, as the hook
// did, so that a diff against a converged instance is empty. A setting that is absent, or a URL
// without a password, is left out. Values an input Secret put there are read back too: the hook
// lays inputs over what it generates, so the file comes out the same either way. The error never
// holds a value from the file.
func GeneratedCredentials(configFile []byte) (map[string]string, error) {
	var settings map[string]any
	if err := yaml.Unmarshal(configFile, &settings); err != nil {
		return nil, fmt.Errorf("the app config file is not a YAML mapping")
	}
	out := map[string]string{}
	if v, ok := settings[SettingSecretKey].(string); ok {
		out[credentials.DjangoSecretKey] = v
	}
	for setting, purposes := range map[string][]string{
		SettingDatabaseURL:               {credentials.DatabasePassword, credentials.InClusterDatabasePassword},
		SettingBrokerURL:                 {credentials.RabbitMQPassword},
		children.RedisCacheURLSetting:    {credentials.RedisPassword},
		children.RedisChannelsURLSetting: {credentials.RedisPassword},
	} {
		raw, ok := settings[setting].(string)
		if !ok {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s in the app config file is not a URL", setting)
		}
		if pw, ok := u.User.Password(); ok {
			for _, purpose := range purposes {
				out[purpose] = pw
			}
		}
	}
	return out, nil
}
