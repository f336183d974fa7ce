package dashboard

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/forklift-dev/summon/pkg/platform"
)

// Platform is one SummonPlatform as the view holds it: read once, when the informer sees it.
type Platform struct {
	platform.Parent
	// ReadErr says why the object could not be read as a SummonPlatform at all; Meta still
	// names it.
	ReadErr string
}

// Key is the instance's namespace/name.
func (p Platform) Key() string { return p.Meta.Namespace + "/" + p.Meta.Name }

// platformFrom reads a SummonPlatform from the informer's object with the hook's own reader, so a
// spec the hook can't read is shown with the hook's words and the instance is still listed.
func platformFrom(u *unstructured.Unstructured) Platform {
	raw, err := json.Marshal(u.Object)
	if err != nil {
		return unreadable(u, fmt.Sprintf("can't be encoded: %v", err))
	}
	parent, err := platform.ReadParent(raw)
	if err != nil {
		return unreadable(u, err.Error())
	}
	return Platform{Parent: parent}
}

func unreadable(u *unstructured.Unstructured, why string) Platform {
	var p Platform
	p.Meta.Namespace, p.Meta.Name, p.Meta.UID = u.GetNamespace(), u.GetName(), u.GetUID()
	p.Meta.CreationTimestamp = u.GetCreationTimestamp()
	p.ReadErr = why
	return p
}
