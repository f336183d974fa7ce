package platform

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// InputRefusal says why a Secret may not be read as an input of the SummonPlatform named instance
// (in the Secret's namespace), in words that say what to do; "" when it may. Metacontroller reads
// every Secret for Summon, so Summon must not lend that out: whoever may write a SummonPlatform
// may name any Secret, and gets only those that consent (v1beta1.LabelInput and
// v1beta1.AnnotationInputFor). Summon's own children and service-account tokens never consent:
// a label on them would be someone else's mistake, not a hand-over.
func InputRefusal(s *corev1.Secret, instance string) string {
	if s.Type == corev1.SecretTypeServiceAccountToken {
		return fmt.Sprintf("the Secret %s is a service-account token, which is never an input", s.Name)
	}
	if children.MadeBySummon(s.Labels) || ownedBySummonPlatform(s) {
		return fmt.Sprintf("the Secret %s is one that Summon made for an instance, and Summon's own Secrets are never inputs: "+
			"name a Secret of your own", s.Name)
	}
	if s.Labels[v1beta1.LabelInput] != "true" {
		return fmt.Sprintf("the Secret %s is not marked as an input: label it %s=true and annotate it %s=%s "+
			"(the SummonPlatforms that may read it, comma-separated, or %q for every one in the namespace)",
			s.Name, v1beta1.LabelInput, v1beta1.AnnotationInputFor, instance, v1beta1.InputForAll)
	}
	if !slices.Contains(inputFor(s.Annotations[v1beta1.AnnotationInputFor]), instance) &&
		!slices.Contains(inputFor(s.Annotations[v1beta1.AnnotationInputFor]), v1beta1.InputForAll) {
		return fmt.Sprintf("the Secret %s is an input, but not one for %s: add %s to its annotation %s (comma-separated names)",
			s.Name, instance, instance, v1beta1.AnnotationInputFor)
	}
	return ""
}

// inputFor reads the annotation's list of names.
func inputFor(v string) []string {
	var out []string
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func ownedBySummonPlatform(s *corev1.Secret) bool {
	for _, ref := range s.OwnerReferences {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err == nil && gv.Group == v1beta1.Group && ref.Kind == v1beta1.Kind {
			return true
		}
	}
	return false
}

// inputRefused is the error of an input Secret that exists but does not consent to this instance.
type inputRefused struct{ message string }

func (e inputRefused) Error() string { return e.message }

// inputReason is the status reason of an error from reading the inputs.
func inputReason(err error) string {
	if errors.As(err, new(inputRefused)) {
		return reasonInputNotAllowed
	}
	return reasonInputMissing
}

// errInputAbsent says that an input Secret is not among the related objects.
var errInputAbsent = errors.New("input Secret absent")

// inputSecret finds an input Secret of the instance among the related objects and decodes its
// data, once it has checked that the Secret consents. The customize hook asks Metacontroller for
// the named Secrets only, but the check is here, where the data is read: an older customize
// answer, another Metacontroller or a stand-in may send more.
func inputSecret(related metacontroller.RelativeObjects, p children.Platform, name, field string) (map[string][]byte, error) {
	obj := related[GroupSecret][p.Namespace+"/"+name]
	if obj == nil {
		return nil, errInputAbsent
	}
	var s corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &s); err != nil {
		return nil, errInputAbsent
	}
	if why := InputRefusal(&s, p.Name); why != "" {
		return nil, inputRefused{message: field + ": " + why}
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	return s.Data, nil
}
