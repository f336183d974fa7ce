package aws

import "encoding/json"

// policyDocument is an IAM policy in the JSON grammar AWS reads.
type policyDocument struct {
	Version   string
	Statement []policyStatement
}

type policyStatement struct {
	Sid      string
	Effect   string
	Action   []string
	Resource []string
}

// bucketPolicy lets its holder list and use the objects of one bucket and nothing else: no other
// bucket, no bucket settings, no IAM. It builds; it calls nothing.
func bucketPolicy(partition, bucket string) string {
	bucketARN := "arn:" + partition + ":s3:::" + bucket
	doc := policyDocument{
		Version: "2012-10-17",
		Statement: []policyStatement{
			{
				Sid:      "ListTheBucket",
				Effect:   "Allow",
				Action:   []string{"s3:ListBucket", "s3:GetBucketLocation"},
				Resource: []string{bucketARN},
			},
			{
				Sid:    "UseTheObjects",
				Effect: "Allow",
				Action: []string{
					"s3:GetObject", "s3:PutObject", "s3:DeleteObject",
					"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
				},
				Resource: []string{bucketARN + "/*"},
			},
		},
	}
	// Marshalling strings and slices of strings cannot fail.
	b, _ := json.Marshal(doc)
	return string(b)
}
