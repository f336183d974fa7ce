package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"
	"github.com/sivchari/kumo"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
)

// counter counts the calls that reach the real clients, by service and operation, and keeps the
// policy documents sent.
type counter struct {
	testenv.Calls
	mu        sync.Mutex
	documents []string
}

func (c *counter) count(op string) { c.Add(op) }

func (c *counter) take() map[string]int { return c.Take() }

type countingS3 struct {
	S3API
	*counter
}

func (c countingS3) HeadBucket(ctx context.Context, in *s3.HeadBucketInput, o ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	c.count("S3.HeadBucket")
	return c.S3API.HeadBucket(ctx, in, o...)
}

func (c countingS3) CreateBucket(ctx context.Context, in *s3.CreateBucketInput, o ...func(*s3.Options)) (*s3.CreateBucketOutput, error) {
	c.count("S3.CreateBucket")
	return c.S3API.CreateBucket(ctx, in, o...)
}

func (c countingS3) GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, o ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error) {
	c.count("S3.GetBucketTagging")
	return c.S3API.GetBucketTagging(ctx, in, o...)
}

func (c countingS3) PutBucketTagging(ctx context.Context, in *s3.PutBucketTaggingInput, o ...func(*s3.Options)) (*s3.PutBucketTaggingOutput, error) {
	c.count("S3.PutBucketTagging")
	return c.S3API.PutBucketTagging(ctx, in, o...)
}

func (c countingS3) GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, o ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error) {
	c.count("S3.GetBucketVersioning")
	return c.S3API.GetBucketVersioning(ctx, in, o...)
}

func (c countingS3) PutBucketVersioning(ctx context.Context, in *s3.PutBucketVersioningInput, o ...func(*s3.Options)) (*s3.PutBucketVersioningOutput, error) {
	c.count("S3.PutBucketVersioning")
	return c.S3API.PutBucketVersioning(ctx, in, o...)
}

func (c countingS3) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, o ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	c.count("S3.ListObjectVersions")
	return c.S3API.ListObjectVersions(ctx, in, o...)
}

func (c countingS3) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, o ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	c.count("S3.DeleteObjects")
	return c.S3API.DeleteObjects(ctx, in, o...)
}

func (c countingS3) DeleteBucket(ctx context.Context, in *s3.DeleteBucketInput, o ...func(*s3.Options)) (*s3.DeleteBucketOutput, error) {
	c.count("S3.DeleteBucket")
	return c.S3API.DeleteBucket(ctx, in, o...)
}

type countingIAM struct {
	IAMAPI
	*counter
}

func (c countingIAM) GetUser(ctx context.Context, in *iam.GetUserInput, o ...func(*iam.Options)) (*iam.GetUserOutput, error) {
	c.count("IAM.GetUser")
	return c.IAMAPI.GetUser(ctx, in, o...)
}

func (c countingIAM) CreateUser(ctx context.Context, in *iam.CreateUserInput, o ...func(*iam.Options)) (*iam.CreateUserOutput, error) {
	c.count("IAM.CreateUser")
	return c.IAMAPI.CreateUser(ctx, in, o...)
}

func (c countingIAM) DeleteUser(ctx context.Context, in *iam.DeleteUserInput, o ...func(*iam.Options)) (*iam.DeleteUserOutput, error) {
	c.count("IAM.DeleteUser")
	return c.IAMAPI.DeleteUser(ctx, in, o...)
}

func (c countingIAM) GetPolicy(ctx context.Context, in *iam.GetPolicyInput, o ...func(*iam.Options)) (*iam.GetPolicyOutput, error) {
	c.count("IAM.GetPolicy")
	return c.IAMAPI.GetPolicy(ctx, in, o...)
}

func (c countingIAM) CreatePolicy(ctx context.Context, in *iam.CreatePolicyInput, o ...func(*iam.Options)) (*iam.CreatePolicyOutput, error) {
	c.count("IAM.CreatePolicy")
	c.mu.Lock()
	c.documents = append(c.documents, awssdk.ToString(in.PolicyDocument))
	c.mu.Unlock()
	return c.IAMAPI.CreatePolicy(ctx, in, o...)
}

func (c countingIAM) DeletePolicy(ctx context.Context, in *iam.DeletePolicyInput, o ...func(*iam.Options)) (*iam.DeletePolicyOutput, error) {
	c.count("IAM.DeletePolicy")
	return c.IAMAPI.DeletePolicy(ctx, in, o...)
}

func (c countingIAM) AttachUserPolicy(ctx context.Context, in *iam.AttachUserPolicyInput, o ...func(*iam.Options)) (*iam.AttachUserPolicyOutput, error) {
	c.count("IAM.AttachUserPolicy")
	return c.IAMAPI.AttachUserPolicy(ctx, in, o...)
}

func (c countingIAM) DetachUserPolicy(ctx context.Context, in *iam.DetachUserPolicyInput, o ...func(*iam.Options)) (*iam.DetachUserPolicyOutput, error) {
	c.count("IAM.DetachUserPolicy")
	return c.IAMAPI.DetachUserPolicy(ctx, in, o...)
}

func (c countingIAM) ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, o ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	c.count("IAM.ListAccessKeys")
	return c.IAMAPI.ListAccessKeys(ctx, in, o...)
}

func (c countingIAM) CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, o ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error) {
	c.count("IAM.CreateAccessKey")
	return c.IAMAPI.CreateAccessKey(ctx, in, o...)
}

func (c countingIAM) DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, o ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error) {
	c.count("IAM.DeleteAccessKey")
	return c.IAMAPI.DeleteAccessKey(ctx, in, o...)
}

type countingSTS struct {
	STSAPI
	*counter
}

func (c countingSTS) GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, o ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	c.count("STS.GetCallerIdentity")
	return c.STSAPI.GetCallerIdentity(ctx, in, o...)
}

const adminSecret = "summon-test-admin-secret-key"

// emulator is kumo in process, with the config to reach it and clients that see what the
// provider did.
type emulator struct {
	cfg   Config
	admin Clients
}

func newEmulator(t *testing.T) emulator {
	t.Helper()
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	cfg := Config{Region: "us-east-1", Endpoint: srv.URL, UsePathStyle: true, AccessKeyID: "AKIDSUMMONADMIN", SecretAccessKey: adminSecret}
	admin, err := NewClients(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return emulator{cfg: cfg, admin: admin}
}

// provider wraps the real clients in counters.
func (e emulator) provider(t *testing.T) (*Provider, *counter) {
	t.Helper()
	c := &counter{}
	inner, err := NewClients(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := NewWithClients(Clients{
		S3:  countingS3{inner.S3, c},
		IAM: countingIAM{inner.IAM, c},
		STS: countingSTS{inner.STS, c},
	}, e.cfg)
	return p, c
}

func instance(t *testing.T) external.Instance {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := "awstest-" + hex.EncodeToString(b)
	return external.Instance{Namespace: ns, Name: "car1", UID: "uid-" + ns, Names: external.NamesFor("summon-test-", ns, "car1")}
}

// cloudState is what AWS holds for an instance.
type cloudState struct {
	Bucket     bool
	UIDTag     string
	Versioning string
	// Objects are the keys of every version, "key (marker)" for delete markers; version ids
	// are left out, they differ on every run.
	Objects []string
	User    bool
	Path    string
	Keys    int
	Policy  bool
	Attach  int32
}

func (e emulator) stateOf(t *testing.T, in external.Instance) cloudState {
	t.Helper()
	ctx := context.Background()
	var s cloudState
	bucket := awssdk.String(in.Names.Bucket)
	if _, err := e.admin.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket}); err == nil {
		s.Bucket = true
		if out, err := e.admin.S3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: bucket}); err == nil {
			for _, tag := range out.TagSet {
				if awssdk.ToString(tag.Key) == UIDTag {
					s.UIDTag = awssdk.ToString(tag.Value)
				}
			}
		}
		v, err := e.admin.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		s.Versioning = string(v.Status)
		page, err := e.admin.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			s.Objects = append(s.Objects, awssdk.ToString(v.Key))
		}
		for _, m := range page.DeleteMarkers {
			s.Objects = append(s.Objects, awssdk.ToString(m.Key)+" (marker)")
		}
		sort.Strings(s.Objects)
	} else if !hasCode(err, "NotFound") {
		t.Fatal(err)
	}

	user := awssdk.String(in.Names.IAMUser)
	if out, err := e.admin.IAM.GetUser(ctx, &iam.GetUserInput{UserName: user}); err == nil {
		s.User, s.Path = true, awssdk.ToString(out.User.Path)
		keys, err := e.admin.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: user})
		if err != nil {
			t.Fatal(err)
		}
		s.Keys = len(keys.AccessKeyMetadata)
	} else if !hasCode(err, "NoSuchEntity") {
		t.Fatal(err)
	}
	arn := awssdk.String(userPolicyARN("aws", "123456789012", in.Names.IAMUser))
	if out, err := e.admin.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: arn}); err == nil {
		s.Policy, s.Attach = true, awssdk.ToInt32(out.Policy.AttachmentCount)
	} else if !hasCode(err, "NoSuchEntity") {
		t.Fatal(err)
	}
	return s
}

func (e emulator) keysOf(t *testing.T, in external.Instance) []string {
	t.Helper()
	out, err := e.admin.IAM.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: awssdk.String(in.Names.IAMUser)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range out.AccessKeyMetadata {
		ids = append(ids, awssdk.ToString(k.AccessKeyId))
	}
	sort.Strings(ids)
	return ids
}

func (e emulator) addKey(t *testing.T, in external.Instance) string {
	t.Helper()
	out, err := e.admin.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: awssdk.String(in.Names.IAMUser)})
	if err != nil {
		t.Fatal(err)
	}
	return awssdk.ToString(out.AccessKey.AccessKeyId)
}

// writeHistory puts objects with several versions and delete markers into the bucket.
func (e emulator) writeHistory(t *testing.T, in external.Instance, keys ...string) {
	t.Helper()
	ctx := context.Background()
	bucket := awssdk.String(in.Names.Bucket)
	for _, key := range keys {
		for i := range 2 {
			if _, err := e.admin.S3.(*s3.Client).PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: awssdk.String(key), Body: strings.NewReader(fmt.Sprint("v", i))}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.admin.S3.(*s3.Client).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: awssdk.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEnsureCreatesEverythingAndIsIdempotent(t *testing.T) {
	e := newEmulator(t)
	p, calls := e.provider(t)
	in := instance(t)
	ctx := context.Background()

	first, err := p.Ensure(ctx, in)
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	if diff := cmp.Diff(map[string]int{
		"STS.GetCallerIdentity": 1, // once per provider: the account every S3 call expects
		"S3.HeadBucket":         1, "S3.CreateBucket": 1, "S3.PutBucketTagging": 1, "S3.PutBucketVersioning": 1,
		"IAM.GetUser": 1, "IAM.CreateUser": 1, "IAM.CreatePolicy": 1, "IAM.AttachUserPolicy": 1, "IAM.CreateAccessKey": 1,
	}, calls.take()); diff != "" {
		t.Errorf("first Ensure calls (-want +got):\n%s", diff)
	}
	want := cloudState{Bucket: true, UIDTag: in.UID, Versioning: "Enabled", User: true, Path: external.IAMPath, Keys: 1, Policy: true, Attach: 1}
	if diff := cmp.Diff(want, e.stateOf(t, in)); diff != "" {
		t.Errorf("after first Ensure (-want +got):\n%s", diff)
	}
	if first.AccessKeyID == "" || first.SecretAccessKey == "" {
		t.Fatalf("first Ensure returned no new key")
	}
	if diff := cmp.Diff([]string{first.AccessKeyID}, e.keysOf(t, in)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}

	in.HeldAccessKeyID = first.AccessKeyID
	second, err := p.Ensure(ctx, in)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if diff := cmp.Diff(map[string]int{
		"S3.HeadBucket": 1, "S3.GetBucketTagging": 1, "S3.GetBucketVersioning": 1,
		"IAM.GetUser": 1, "IAM.GetPolicy": 1, "IAM.ListAccessKeys": 1,
	}, calls.take()); diff != "" {
		t.Errorf("second Ensure calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.stateOf(t, in)); diff != "" {
		t.Errorf("after second Ensure (-want +got):\n%s", diff)
	}
	wantAccess := Access{Bucket: in.Names.Bucket, Region: "us-east-1", AccessKeyID: first.AccessKeyID}
	if diff := cmp.Diff(wantAccess, second); diff != "" {
		t.Errorf("second Ensure keeps the held key (-want +got):\n%s", diff)
	}
}

func TestThePolicyAllowsOnlyTheBucket(t *testing.T) {
	e := newEmulator(t)
	p, calls := e.provider(t)
	in := instance(t)
	if _, err := p.Ensure(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(calls.documents) != 1 {
		t.Fatalf("want one policy document sent, got %d", len(calls.documents))
	}
	var got policyDocument
	if err := json.Unmarshal([]byte(calls.documents[0]), &got); err != nil {
		t.Fatal(err)
	}
	bucketARN := "arn:aws:s3:::" + in.Names.Bucket
	want := policyDocument{
		Version: "2012-10-17",
		Statement: []policyStatement{
			{Sid: "ListTheBucket", Effect: "Allow", Action: []string{"s3:ListBucket", "s3:GetBucketLocation"}, Resource: []string{bucketARN}},
			{Sid: "UseTheObjects", Effect: "Allow", Action: []string{
				"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
			}, Resource: []string{bucketARN + "/*"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("policy document (-want +got):\n%s", diff)
	}
	for _, s := range got.Statement {
		for _, a := range s.Action {
			if !strings.HasPrefix(a, "s3:") || strings.Contains(a, "*") {
				t.Errorf("action %q is not one named S3 action", a)
			}
		}
		for _, r := range s.Resource {
			if r != bucketARN && r != bucketARN+"/*" {
				t.Errorf("resource %q is not the bucket", r)
			}
		}
	}
}

func TestAccessKeys(t *testing.T) {
	tests := map[string]struct {
		// setup runs after a first Ensure made key first; it returns the held key id.
		setup   func(t *testing.T, e emulator, in external.Instance, first string) string
		rotates bool
		calls   map[string]int
	}{
		"the held key is kept": {
			setup:   func(_ *testing.T, _ emulator, _ external.Instance, first string) string { return first },
			rotates: false,
			calls:   map[string]int{"IAM.ListAccessKeys": 1},
		},
		"a lost Secret rotates: a new key, the old one deleted": {
			setup:   func(*testing.T, emulator, external.Instance, string) string { return "" },
			rotates: true,
			calls:   map[string]int{"IAM.ListAccessKeys": 1, "IAM.CreateAccessKey": 1, "IAM.DeleteAccessKey": 1},
		},
		"an unknown held key rotates": {
			setup:   func(*testing.T, emulator, external.Instance, string) string { return "AKIAUNKNOWN000000000" },
			rotates: true,
			calls:   map[string]int{"IAM.ListAccessKeys": 1, "IAM.CreateAccessKey": 1, "IAM.DeleteAccessKey": 1},
		},
		"two unheld keys are both deleted to make room": {
			setup: func(t *testing.T, e emulator, in external.Instance, _ string) string {
				e.addKey(t, in)
				return ""
			},
			rotates: true,
			calls:   map[string]int{"IAM.ListAccessKeys": 1, "IAM.DeleteAccessKey": 2, "IAM.CreateAccessKey": 1},
		},
		"the held key is kept and a stray key deleted": {
			setup: func(t *testing.T, e emulator, in external.Instance, first string) string {
				e.addKey(t, in)
				return first
			},
			rotates: false,
			calls:   map[string]int{"IAM.ListAccessKeys": 1, "IAM.DeleteAccessKey": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEmulator(t)
			p, calls := e.provider(t)
			in := instance(t)
			ctx := context.Background()
			first, err := p.Ensure(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			in.HeldAccessKeyID = tc.setup(t, e, in, first.AccessKeyID)
			calls.take()

			got, err := p.Ensure(ctx, in)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			keyCalls := map[string]int{}
			for op, n := range calls.take() {
				if strings.Contains(op, "AccessKey") {
					keyCalls[op] = n
				}
			}
			if diff := cmp.Diff(tc.calls, keyCalls); diff != "" {
				t.Errorf("key calls (-want +got):\n%s", diff)
			}
			if tc.rotates {
				if got.AccessKeyID == first.AccessKeyID || got.SecretAccessKey == "" {
					t.Errorf("want a new key with its secret, got id %q (first %q), secret set: %v", got.AccessKeyID, first.AccessKeyID, got.SecretAccessKey != "")
				}
			} else if got.AccessKeyID != first.AccessKeyID || got.SecretAccessKey != "" {
				t.Errorf("want the held key %q kept without a secret, got %q, secret set: %v", first.AccessKeyID, got.AccessKeyID, got.SecretAccessKey != "")
			}
			if diff := cmp.Diff([]string{got.AccessKeyID}, e.keysOf(t, in)); diff != "" {
				t.Errorf("keys left with the user (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFinalize(t *testing.T) {
	tests := map[string]struct {
		policy v1beta1.DeletionPolicy
		want   func(in external.Instance) cloudState
		// calls on the first Finalize and on every later one
		calls, again map[string]int
	}{
		"retain keeps the bucket and its history and removes the IAM user, keys and policy": {
			policy: v1beta1.DeletionPolicyRetain,
			want: func(in external.Instance) cloudState {
				return cloudState{Bucket: true, UIDTag: "retained:" + in.UID, Versioning: "Enabled", Objects: []string{
					"a.txt", "a.txt", "a.txt (marker)", "b.txt", "b.txt", "b.txt (marker)", "c.txt", "c.txt", "c.txt (marker)",
				}}
			},
			calls: map[string]int{
				"IAM.GetUser": 2, "IAM.ListAccessKeys": 1, "IAM.DeleteAccessKey": 1, "IAM.DetachUserPolicy": 1,
				"IAM.DeletePolicy": 1, "IAM.DeleteUser": 1, "IAM.GetPolicy": 1,
				// the bucket is marked released: a recreated parent adopts it only on purpose
				"S3.HeadBucket": 1, "S3.GetBucketTagging": 1, "S3.PutBucketTagging": 1,
			},
			again: map[string]int{"IAM.GetUser": 1, "STS.GetCallerIdentity": 1, "IAM.GetPolicy": 1, "S3.HeadBucket": 1, "S3.GetBucketTagging": 1},
		},
		"delete removes everything, every version and delete marker too": {
			policy: v1beta1.DeletionPolicyDelete,
			want:   func(external.Instance) cloudState { return cloudState{} },
			// 9 versions and markers, 4 to a page: 3 rounds, then an empty listing.
			calls: map[string]int{
				"IAM.GetUser": 2, "IAM.ListAccessKeys": 1, "IAM.DeleteAccessKey": 1, "IAM.DetachUserPolicy": 1,
				"IAM.DeletePolicy": 1, "IAM.DeleteUser": 1, "IAM.GetPolicy": 1,
				"S3.HeadBucket": 2, "S3.GetBucketTagging": 1, "S3.ListObjectVersions": 4, "S3.DeleteObjects": 3, "S3.DeleteBucket": 1,
			},
			again: map[string]int{"IAM.GetUser": 1, "STS.GetCallerIdentity": 1, "IAM.GetPolicy": 1, "S3.HeadBucket": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEmulator(t)
			p, calls := e.provider(t)
			p.pageSize = 4
			in := instance(t)
			ctx := context.Background()
			if _, err := p.Ensure(ctx, in); err != nil {
				t.Fatal(err)
			}
			e.writeHistory(t, in, "a.txt", "b.txt", "c.txt")
			calls.take()

			for i := range 3 {
				left, err := p.Finalize(ctx, in, tc.policy)
				if err != nil {
					t.Fatalf("Finalize #%d: %v", i+1, err)
				}
				if diff := cmp.Diff([]string(nil), left); diff != "" {
					t.Errorf("Finalize #%d left (-want +got):\n%s", i+1, diff)
				}
				want := tc.again
				if i == 0 {
					want = tc.calls
				}
				if diff := cmp.Diff(want, calls.take()); diff != "" {
					t.Errorf("Finalize #%d calls (-want +got):\n%s", i+1, diff)
				}
			}
			if diff := cmp.Diff(tc.want(in), e.stateOf(t, in)); diff != "" {
				t.Errorf("after Finalize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestABigBucketIsEmptiedOverSeveralFinalizes(t *testing.T) {
	e := newEmulator(t)
	p, _ := e.provider(t)
	p.pageSize, p.emptyRounds = 2, 2
	in := instance(t)
	ctx := context.Background()
	if _, err := p.Ensure(ctx, in); err != nil {
		t.Fatal(err)
	}
	e.writeHistory(t, in, "a", "b", "c") // 9 versions and markers; 4 go per Finalize

	var answers [][]string
	for range 4 {
		left, err := p.Finalize(ctx, in, v1beta1.DeletionPolicyDelete)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, left)
	}
	b := in.Names.Bucket
	want := [][]string{
		{fmt.Sprintf("S3 bucket %q still has 2 object versions", b)},
		{fmt.Sprintf("S3 bucket %q still has 1 object version", b)},
		nil,
		nil,
	}
	if diff := cmp.Diff(want, answers); diff != "" {
		t.Errorf("what Finalize said was left (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(cloudState{}, e.stateOf(t, in)); diff != "" {
		t.Errorf("after Finalize (-want +got):\n%s", diff)
	}
}

// A recreated parent (a new UID) is refused the bucket its predecessor retained, with a status
// naming the annotation to add; with the annotation it adopts the bucket, history and all.
func TestARecreatedParentAdoptsItsRetainedBucketOnlyOnPurpose(t *testing.T) {
	e := newEmulator(t)
	p, calls := e.provider(t)
	in := instance(t)
	ctx := context.Background()
	if _, err := p.Ensure(ctx, in); err != nil {
		t.Fatal(err)
	}
	e.writeHistory(t, in, "kept.txt")
	if _, err := p.Finalize(ctx, in, v1beta1.DeletionPolicyRetain); err != nil {
		t.Fatal(err)
	}
	retained := e.stateOf(t, in)
	calls.take()

	again := in
	again.UID, again.HeldAccessKeyID = in.UID+"-again", ""
	_, err := p.Ensure(ctx, again)
	var e2 *external.Error
	if !errors.As(err, &e2) || e2.NotOurs != external.OwnedByAnotherInstance || e2.Retryable ||
		!strings.Contains(err.Error(), "adopt-from-uid="+in.UID) {
		t.Fatalf("Ensure without the annotation: %v, want a non-retryable OwnedByAnotherInstance naming the annotation", err)
	}
	if diff := cmp.Diff(map[string]int{"S3.HeadBucket": 1, "S3.GetBucketTagging": 1}, calls.take()); diff != "" {
		t.Errorf("refused Ensure calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(retained, e.stateOf(t, in)); diff != "" {
		t.Errorf("a refused Ensure changed the retained bucket (-want +got):\n%s", diff)
	}

	again.AdoptFromUID = in.UID
	access, err := p.Ensure(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{
		"S3.HeadBucket": 1, "S3.GetBucketTagging": 1, "S3.PutBucketTagging": 1, "S3.GetBucketVersioning": 1,
		"IAM.GetUser": 1, "IAM.CreateUser": 1, "IAM.CreatePolicy": 1, "IAM.AttachUserPolicy": 1, "IAM.CreateAccessKey": 1,
	}, calls.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	want := cloudState{
		Bucket: true, UIDTag: again.UID, Versioning: "Enabled", Objects: []string{"kept.txt", "kept.txt", "kept.txt (marker)"},
		User: true, Path: external.IAMPath, Keys: 1, Policy: true, Attach: 1,
	}
	if diff := cmp.Diff(want, e.stateOf(t, again)); diff != "" {
		t.Errorf("after Ensure (-want +got):\n%s", diff)
	}
	if access.SecretAccessKey == "" {
		t.Errorf("the new incarnation got no key")
	}
}

// A bucket, user and policy of another instance under the same names (a collision, or a
// status pointing elsewhere) are never changed: not by Ensure, not by Finalize under either
// policy, and Finalize is not held up by them.
func TestAnotherInstancesResourcesAreLeftAlone(t *testing.T) {
	for _, policy := range []v1beta1.DeletionPolicy{v1beta1.DeletionPolicyRetain, v1beta1.DeletionPolicyDelete} {
		t.Run(string(policy), func(t *testing.T) {
			e := newEmulator(t)
			p, _ := e.provider(t)
			victim := instance(t)
			ctx := context.Background()
			access, err := p.Ensure(ctx, victim)
			if err != nil {
				t.Fatal(err)
			}
			victim.HeldAccessKeyID = access.AccessKeyID
			e.writeHistory(t, victim, "data.txt")
			before := e.stateOf(t, victim)
			keys := e.keysOf(t, victim)

			attacker := victim
			attacker.UID, attacker.HeldAccessKeyID = "uid-attacker", ""
			_, err = p.Ensure(ctx, attacker)
			var e2 *external.Error
			if !errors.As(err, &e2) || e2.NotOurs != external.OwnedByAnotherInstance || strings.Contains(err.Error(), victim.UID) {
				t.Fatalf("attacker's Ensure: %v, want OwnedByAnotherInstance without the victim's UID", err)
			}
			left, err := p.Finalize(ctx, attacker, policy)
			if !external.LeftAlone(err) || len(left) != 0 {
				t.Fatalf("attacker's Finalize: left %v, %v; want nothing left and only resources left alone", left, err)
			}
			if diff := cmp.Diff(before, e.stateOf(t, victim)); diff != "" {
				t.Errorf("the victim's bucket and user changed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(keys, e.keysOf(t, victim)); diff != "" {
				t.Errorf("the victim's access keys changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailingAWSGivesAClassifiedError(t *testing.T) {
	tests := map[string]struct {
		endpoint  func(t *testing.T) string
		deadline  bool
		retryable bool
	}{
		"nothing listens on the port": {
			endpoint:  func(t *testing.T) string { return "http://" + testenv.ClosedAddr(t) },
			retryable: true,
		},
		"AWS answers 500": {
			endpoint: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/xml")
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>boom</Message></Error></ErrorResponse>`)
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			retryable: true,
		},
		"AWS denies the hook": {
			endpoint: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/xml")
					w.WriteHeader(http.StatusForbidden)
					fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>`)
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			retryable: false,
		},
		"AWS hangs": {
			endpoint: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					// The server notices a client that gave up only once the body is read.
					_, _ = io.Copy(io.Discard, r.Body)
					<-r.Context().Done()
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			deadline:  true,
			retryable: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := Config{
				Region: "us-east-1", Endpoint: tc.endpoint(t), UsePathStyle: true,
				AccessKeyID: "AKIDSUMMONADMIN", SecretAccessKey: adminSecret, CallTimeout: 300 * time.Millisecond,
			}
			p, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			in := instance(t)
			in.HeldAccessKeyID = "AKIAHELD000000000000"

			// A hanging system must end in a deadline error (checked below), never in a wait
			// for the hook's whole budget; no wall-clock time is asserted.
			_, ensureErr := p.Ensure(context.Background(), in)
			_, finalizeErr := p.Finalize(context.Background(), in, v1beta1.DeletionPolicyDelete)
			for op, err := range map[string]error{"Ensure": ensureErr, "Finalize": finalizeErr} {
				testenv.ExpectFailure(t, op, err, "AWS", tc.retryable, tc.deadline, adminSecret)
			}
		})
	}
}

// TestATenantsPolicyNamesOnlyItsOwnBucket checks two tenants side by side. The document is read
// as the provider sent it through the real SDK: kumo (v0.33.1) keeps policy documents but serves
// neither GetPolicyVersion nor ListAttachedUserPolicies, so it can't be read back from IAM. What
// IAM does hold is checked: each tenant's policy exists under its own name and is attached.
func TestATenantsPolicyNamesOnlyItsOwnBucket(t *testing.T) {
	e := newEmulator(t)
	p, calls := e.provider(t)
	a, b := instance(t), instance(t)
	for _, in := range []external.Instance{a, b} {
		if _, err := p.Ensure(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if len(calls.documents) != 2 {
		t.Fatalf("want one policy document per tenant, got %d", len(calls.documents))
	}
	for i, in := range []external.Instance{a, b} {
		other := []external.Instance{b, a}[i]
		var doc policyDocument
		if err := json.Unmarshal([]byte(calls.documents[i]), &doc); err != nil {
			t.Fatal(err)
		}
		own := "arn:aws:s3:::" + in.Names.Bucket
		for _, s := range doc.Statement {
			if s.Effect != "Allow" {
				t.Errorf("tenant %s: statement %s has effect %s", in.Namespace, s.Sid, s.Effect)
			}
			for _, r := range s.Resource {
				if r != own && r != own+"/*" {
					t.Errorf("tenant %s's policy names %q, which is not its bucket", in.Namespace, r)
				}
				if strings.Contains(r, other.Names.Bucket) {
					t.Errorf("tenant %s's policy names tenant %s's bucket", in.Namespace, other.Namespace)
				}
			}
		}
		user, err := e.admin.IAM.GetUser(context.Background(), &iam.GetUserInput{UserName: awssdk.String(in.Names.IAMUser)})
		if err != nil {
			t.Fatal(err)
		}
		userARN, _ := arn.Parse(awssdk.ToString(user.User.Arn))
		got, err := e.admin.IAM.GetPolicy(context.Background(), &iam.GetPolicyInput{
			PolicyArn: awssdk.String(userPolicyARN(userARN.Partition, userARN.AccountID, in.Names.IAMUser)),
		})
		if err != nil {
			t.Fatalf("tenant %s's policy is not in IAM: %v", in.Namespace, err)
		}
		if n := awssdk.ToInt32(got.Policy.AttachmentCount); n != 1 {
			t.Errorf("tenant %s's policy is attached %d times, want once (to its user)", in.Namespace, n)
		}
	}
}

// s3OwnerCheck stands in front of kumo for the one thing kumo does not do: AWS answers an S3
// request whose x-amz-expected-bucket-owner is not the bucket's account with 403. IAM and STS
// requests (POSTs to "/") pass untouched. It also counts S3 requests sent without the header.
type s3OwnerCheck struct {
	account string
	mu      sync.Mutex
	missing []string
}

func (c *s3OwnerCheck) wrap(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	// httputil's proxy, on a transport of its own: it drops the hop-by-hop headers that a copy of
	// the emulator's answer would pass on, and no other test's httptest server closing (which
	// closes http.DefaultTransport's idle connections) touches its connections.
	proxy := httputil.NewSingleHostReverseProxy(u)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	proxy.Transport = transport
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// CreateBucket (a PUT of the bucket alone) has no such header: it makes the bucket in the
		// caller's own account, and answers BucketAlreadyExists for another account's.
		createBucket := r.Method == http.MethodPut && r.URL.RawQuery == "" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0
		if r.URL.Path != "/" && !createBucket {
			got := r.Header.Get("X-Amz-Expected-Bucket-Owner")
			if got == "" {
				c.mu.Lock()
				c.missing = append(c.missing, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
				c.mu.Unlock()
			} else if got != c.account {
				w.WriteHeader(http.StatusForbidden)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Every S3 call names the account the bucket must be in, so a bucket of the instance's name in
// another account is never read, tagged, emptied or deleted: it is refused as
// OwnedByAnotherAccount.
func TestS3CallsExpectTheHooksOwnAccount(t *testing.T) {
	e := newEmulator(t)
	ctx := context.Background()
	out, err := e.admin.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	check := &s3OwnerCheck{account: awssdk.ToString(out.Account)}
	endpoint := check.wrap(t, e.cfg.Endpoint)

	// Learned from STS: the whole life of an instance, and every S3 request carries the header.
	cfg := e.cfg
	cfg.Endpoint = endpoint
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := instance(t)
	if _, err := p.Ensure(ctx, in); err != nil {
		t.Fatal(err)
	}
	e.writeHistory(t, in, "x.txt")
	if _, err := p.Ensure(ctx, in); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []v1beta1.DeletionPolicy{v1beta1.DeletionPolicyRetain, v1beta1.DeletionPolicyDelete} {
		if _, err := p.Finalize(ctx, in, policy); err != nil {
			t.Fatal(err)
		}
	}
	if len(check.missing) > 0 {
		t.Errorf("S3 requests sent without ExpectedBucketOwner: %v", check.missing)
	}

	// A bucket of the name that exists, seen by a hook of another account (--aws-account-id).
	victim := instance(t)
	owner, _ := e.provider(t)
	if _, err := owner.Ensure(ctx, victim); err != nil {
		t.Fatal(err)
	}
	e.writeHistory(t, victim, "theirs.txt")
	before := e.stateOf(t, victim)
	cfg.AccountID = "999999999999"
	other, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	intruder := victim
	intruder.UID = "uid-intruder"
	_, err = other.Ensure(ctx, intruder)
	var e2 *external.Error
	if !errors.As(err, &e2) || e2.NotOurs != external.OwnedByAnotherAccount || e2.Retryable {
		t.Fatalf("Ensure in another account: %v, want a non-retryable OwnedByAnotherAccount", err)
	}
	if _, err := other.Finalize(ctx, intruder, v1beta1.DeletionPolicyDelete); !external.LeftAlone(err) {
		t.Fatalf("Finalize in another account: %v, want the bucket left alone", err)
	}
	after := e.stateOf(t, victim)
	// The IAM user is per account in AWS; kumo has one account, so only the bucket is compared.
	before.User, before.Path, before.Keys, before.Policy, before.Attach = false, "", 0, false, 0
	after.User, after.Path, after.Keys, after.Policy, after.Attach = false, "", 0, false, 0
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the other account's bucket changed (-want +got):\n%s", diff)
	}
}
