package children

import (
	corev1 "k8s.io/api/core/v1"
)

// Keys of the AWS credentials Secret, named as the AWS SDKs read them from the environment.
const (
	AWSAccessKeyIDKey     = "AWS_ACCESS_KEY_ID"
	AWSSecretAccessKeyKey = "AWS_SECRET_ACCESS_KEY"
)

// AWSCredentialsSecret keeps the IAM access key that AWS gave out for the instance's user. It
// is the one credential Summon can't derive, so this Secret is where it lives; if it is lost, the
// next sync makes a new key and deletes the old one.
func AWSCredentialsSecret(p Platform, keyID, secret string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, p.Names.AWSCredentials(), Labels(p.Name, AppConfig)),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			AWSAccessKeyIDKey:     []byte(keyID),
			AWSSecretAccessKeyKey: []byte(secret),
		},
	}
}
