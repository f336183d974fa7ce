package platform

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

func TestInputRefusal(t *testing.T) {
	input := map[string]string{v1beta1.LabelInput: "true"}
	forCar1 := map[string]string{v1beta1.AnnotationInputFor: "car1-qa"}
	secret := func(labels, annotations map[string]string, edit ...func(*corev1.Secret)) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "summon-qa", Labels: labels, Annotations: annotations},
			Type: corev1.SecretTypeOpaque}
		for _, e := range edit {
			e(s)
		}
		return s
	}
	tests := map[string]struct {
		secret *corev1.Secret
		// refusedFor is a word the refusal must hold; "" when the Secret is an input of car1-qa.
		refusedFor string
	}{
		"a Secret marked as an input for the instance is read": {
			secret: secret(input, forCar1),
		},
		"a Secret marked as an input for every instance of the namespace is read": {
			secret: secret(input, map[string]string{v1beta1.AnnotationInputFor: "*"}),
		},
		"the instance may be one of a list, with spaces": {
			secret: secret(input, map[string]string{v1beta1.AnnotationInputFor: "car2-qa, car1-qa ,car3-qa"}),
		},
		"a Secret without the label is not an input": {
			secret:     secret(nil, forCar1),
			refusedFor: "label it summon.forklift.dev/input=true",
		},
		"a label other than true is not consent": {
			secret:     secret(map[string]string{v1beta1.LabelInput: "false"}, forCar1),
			refusedFor: "not marked as an input",
		},
		"an input without the annotation is no instance's": {
			secret:     secret(input, nil),
			refusedFor: "add car1-qa to its annotation summon.forklift.dev/input-for",
		},
		"an input for another instance is not this one's": {
			secret:     secret(input, map[string]string{v1beta1.AnnotationInputFor: "car2-qa"}),
			refusedFor: "not one for car1-qa",
		},
		"a name that only starts like the instance's is another instance": {
			secret:     secret(input, map[string]string{v1beta1.AnnotationInputFor: "car1-qa-2,car1"}),
			refusedFor: "not one for car1-qa",
		},
		"a Secret Summon made is never an input, even labelled": {
			secret: secret(map[string]string{v1beta1.LabelInput: "true", "app.kubernetes.io/managed-by": "summon"},
				map[string]string{v1beta1.AnnotationInputFor: "*"}),
			refusedFor: "Summon's own Secrets are never inputs",
		},
		"a Secret with Summon's name label is never an input": {
			secret:     secret(map[string]string{v1beta1.LabelInput: "true", "app.kubernetes.io/name": "summon-platform"}, forCar1),
			refusedFor: "Summon's own Secrets are never inputs",
		},
		"a Secret owned by a SummonPlatform is never an input, even labelled": {
			secret: secret(input, forCar1, func(s *corev1.Secret) {
				s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "summon.forklift.dev/v1beta1", Kind: "SummonPlatform", Name: "car2-qa", UID: "u"}}
			}),
			refusedFor: "Summon's own Secrets are never inputs",
		},
		"a Secret owned by something else may be an input": {
			secret: secret(input, forCar1, func(s *corev1.Secret) {
				s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "bitnami.com/v1alpha1", Kind: "SealedSecret", Name: "s", UID: "u"}}
			}),
		},
		"Argo CD's instance label alone does not make a Secret Summon's": {
			secret: secret(map[string]string{v1beta1.LabelInput: "true", "app.kubernetes.io/instance": "car1-qa"}, forCar1),
		},
		"a service-account token is never an input, even labelled": {
			secret:     secret(input, forCar1, func(s *corev1.Secret) { s.Type = corev1.SecretTypeServiceAccountToken }),
			refusedFor: "service-account token",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := InputRefusal(tc.secret, "car1-qa")
			switch {
			case tc.refusedFor == "" && got != "":
				t.Errorf("refused: %s", got)
			case tc.refusedFor != "" && !strings.Contains(got, tc.refusedFor):
				t.Errorf("refusal = %q, want one with %q", got, tc.refusedFor)
			}
		})
	}
}
