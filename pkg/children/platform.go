package children

import (
	"strconv"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// Platform is the parent as the builders need it: who it is and its defaulted spec.
type Platform struct {
	Name      string
	Namespace string
	Spec      v1beta1.Spec
	Names     Names
}

// NewPlatform wraps a parent's identity and its already defaulted spec.
func NewPlatform(name, namespace string, spec v1beta1.Spec) Platform {
	return Platform{Name: name, Namespace: namespace, Spec: spec, Names: NamesFor(name)}
}

// Release is what the gate decides for one app workload: the version it runs and the config it
// was rolled with.
type Release struct {
	Version    string
	ConfigHash string
}

// Image is the image of a version.
func (p Platform) Image(version string) string { return p.Spec.Image + ":" + version }

func itoa(n int32) string { return strconv.Itoa(int(n)) }
