// Package aws owns an instance's S3 bucket and the IAM user that may use it: Ensure creates or
// repairs them and keeps one access key, Finalize always removes the user (keys, policy, user)
// and, under the Delete policy, empties and deletes the bucket. It talks to AWS only through
// S3API, IAMAPI and STSAPI, with a deadline on every call.
package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
)

// Systems, as they appear in an *external.Error.
const (
	systemS3  = "AWS S3"
	systemIAM = "AWS IAM"
	systemSTS = "AWS STS"
)

// UIDTag tags a bucket, an IAM user and its policy with the owner mark: the UID of the
// SummonPlatform that made it (external.Mark.Value).
const UIDTag = external.OwnerKey

// S3API is the part of the S3 client the provider uses; *s3.Client satisfies it.
type S3API interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, opts ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, opts ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error)
	PutBucketTagging(ctx context.Context, in *s3.PutBucketTaggingInput, opts ...func(*s3.Options)) (*s3.PutBucketTaggingOutput, error)
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, opts ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	PutBucketVersioning(ctx context.Context, in *s3.PutBucketVersioningInput, opts ...func(*s3.Options)) (*s3.PutBucketVersioningOutput, error)
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	DeleteBucket(ctx context.Context, in *s3.DeleteBucketInput, opts ...func(*s3.Options)) (*s3.DeleteBucketOutput, error)
}

// IAMAPI is the part of the IAM client the provider uses; *iam.Client satisfies it.
type IAMAPI interface {
	GetUser(ctx context.Context, in *iam.GetUserInput, opts ...func(*iam.Options)) (*iam.GetUserOutput, error)
	CreateUser(ctx context.Context, in *iam.CreateUserInput, opts ...func(*iam.Options)) (*iam.CreateUserOutput, error)
	DeleteUser(ctx context.Context, in *iam.DeleteUserInput, opts ...func(*iam.Options)) (*iam.DeleteUserOutput, error)
	TagUser(ctx context.Context, in *iam.TagUserInput, opts ...func(*iam.Options)) (*iam.TagUserOutput, error)
	GetPolicy(ctx context.Context, in *iam.GetPolicyInput, opts ...func(*iam.Options)) (*iam.GetPolicyOutput, error)
	CreatePolicy(ctx context.Context, in *iam.CreatePolicyInput, opts ...func(*iam.Options)) (*iam.CreatePolicyOutput, error)
	DeletePolicy(ctx context.Context, in *iam.DeletePolicyInput, opts ...func(*iam.Options)) (*iam.DeletePolicyOutput, error)
	AttachUserPolicy(ctx context.Context, in *iam.AttachUserPolicyInput, opts ...func(*iam.Options)) (*iam.AttachUserPolicyOutput, error)
	DetachUserPolicy(ctx context.Context, in *iam.DetachUserPolicyInput, opts ...func(*iam.Options)) (*iam.DetachUserPolicyOutput, error)
	ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, opts ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
	CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, opts ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, opts ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
}

// STSAPI tells the hook's own account, where the IAM policy of a user that is already gone
// lives; *sts.Client satisfies it.
type STSAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, opts ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// Clients are the AWS clients the provider calls.
type Clients struct {
	S3  S3API
	IAM IAMAPI
	STS STSAPI
}

// Config says which AWS account and region to use.
type Config struct {
	// Region holds the buckets. Empty turns the provider off.
	Region string
	// Endpoint replaces AWS's endpoints (an S3- and IAM-compatible service); empty uses AWS.
	Endpoint string
	// UsePathStyle addresses buckets as endpoint/bucket, as most compatible services need.
	UsePathStyle bool
	// AccessKeyID and SecretAccessKey are the hook's own static credentials; empty uses the
	// SDK's default chain (environment, web identity such as IRSA, instance role).
	AccessKeyID     string
	SecretAccessKey string
	// AccountID is the account the hook runs as and every bucket must be in: each S3 call
	// carries it as ExpectedBucketOwner, so a bucket of the same name in another account is
	// never read, written or deleted. Empty asks STS once (GetCallerIdentity).
	AccountID string
	// CallTimeout bounds each call; zero means external.DefaultCallTimeout.
	CallTimeout time.Duration
}

// Enabled says whether AWS is configured; when it is not, nothing here is called.
func (c Config) Enabled() bool { return c.Region != "" }

// NewClients makes the real clients. The SDK's own retries are off: every call has a short
// deadline and the hook's resync is the retry, while retries hidden inside one call would spend
// the hook's 10 s on one system.
func NewClients(ctx context.Context, cfg Config) (Clients, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithRetryer(func() awssdk.Retryer { return awssdk.NopRetryer{} }),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return Clients{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	var endpoint *string
	if cfg.Endpoint != "" {
		endpoint = awssdk.String(cfg.Endpoint)
	}
	return Clients{
		S3: s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			o.BaseEndpoint = endpoint
			o.UsePathStyle = cfg.UsePathStyle
		}),
		IAM: iam.NewFromConfig(awsCfg, func(o *iam.Options) { o.BaseEndpoint = endpoint }),
		STS: sts.NewFromConfig(awsCfg, func(o *sts.Options) { o.BaseEndpoint = endpoint }),
	}, nil
}

// Provider ensures and finalizes buckets and IAM users in one account.
type Provider struct {
	c           Clients
	region      string
	callTimeout time.Duration
	secrets     []string

	// Emptying a bucket is bounded per Finalize (a hook call has 10 s): rounds of one listing
	// and one batch delete of up to pageSize versions. Finalize is called again until done.
	pageSize    int32
	emptyRounds int

	// account is the ExpectedBucketOwner of every S3 call, from Config.AccountID or learned
	// from STS on first need.
	mu      sync.Mutex
	account string
}

// New makes a provider with the real clients.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	c, err := NewClients(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewWithClients(c, cfg), nil
}

// NewWithClients makes a provider that calls c; cfg gives the region and the deadlines.
func NewWithClients(c Clients, cfg Config) *Provider {
	return &Provider{
		c:           c,
		region:      cfg.Region,
		callTimeout: cfg.CallTimeout,
		secrets:     []string{cfg.SecretAccessKey},
		account:     cfg.AccountID,
		pageSize:    1000,
		emptyRounds: 5,
	}
}

// Access is what the instance's credentials Secret must hold.
type Access struct {
	Bucket      string
	Region      string
	AccessKeyID string
	// SecretAccessKey is set only when Ensure made a new key: the caller must write the id and
	// the secret into the Secret, since AWS never shows the secret again. Empty means the key
	// held in the Secret is still good.
	SecretAccessKey string
}

// Ensure makes the bucket exist, tagged with the parent's UID and versioned (so a Retain keeps
// the history of every object), and an IAM user under external.IAMPath whose only permission is
// that bucket, with exactly one access key: the one held in the Secret if AWS still lists it,
// or else a new one, every other key deleted.
func (p *Provider) Ensure(ctx context.Context, in external.Instance) (Access, error) {
	if err := p.ensureBucket(ctx, in); err != nil {
		return Access{}, err
	}
	userARN, created, err := p.ensureUser(ctx, in)
	if err != nil {
		return Access{}, err
	}
	if err := p.ensurePolicy(ctx, in, userARN, created); err != nil {
		return Access{}, err
	}
	id, secret, err := p.ensureKey(ctx, in, created)
	if err != nil {
		return Access{}, err
	}
	return Access{Bucket: in.Names.Bucket, Region: p.region, AccessKeyID: id, SecretAccessKey: secret}, nil
}

func (p *Provider) ensureBucket(ctx context.Context, in external.Instance) error {
	owner, err := p.bucketOwner(ctx, in)
	if err != nil {
		return err
	}
	bucket := awssdk.String(in.Names.Bucket)
	name := in.Names.Bucket
	mine := external.Mark{UID: in.UID}

	exists, err := p.headBucket(ctx, in, owner)
	if err != nil {
		return err
	}
	created := !exists
	if created {
		// The mark goes with the create where the service takes it (AWS does), and is put again
		// below for those that don't.
		create := &s3.CreateBucketInput{Bucket: bucket, CreateBucketConfiguration: &s3types.CreateBucketConfiguration{
			Tags: []s3types.Tag{{Key: awssdk.String(UIDTag), Value: awssdk.String(mine.Value())}},
		}}
		if p.region != "us-east-1" { // us-east-1 takes no location constraint
			create.CreateBucketConfiguration.LocationConstraint = s3types.BucketLocationConstraint(p.region)
		}
		_, err := call(ctx, p, in, systemS3, fmt.Sprintf("creating bucket %q", name), func(ctx context.Context) (*s3.CreateBucketOutput, error) {
			return p.c.S3.CreateBucket(ctx, create)
		})
		switch {
		case hasCode(err, "BucketAlreadyExists"):
			return otherAccount(name, "creating")
		case err != nil && !hasCode(err, "BucketAlreadyOwnedByYou"):
			return err
		}
	}

	var tags []s3types.Tag
	remark := created
	if !created {
		mark, found, got, err := p.bucketMark(ctx, in, owner)
		if err != nil {
			return err
		}
		tags = got
		empty := false
		if !found {
			// Only an untagged bucket costs this call: one whose create was cut short before
			// its tag, or one a person made. An empty one holds nothing to take.
			if empty, err = p.bucketEmpty(ctx, in, owner); err != nil {
				return err
			}
		}
		claim, err := in.Claim(systemS3, "bucket", name, mark, found, empty)
		if err != nil {
			return err
		}
		remark = claim == external.Remark
	}
	if remark {
		if err := p.putMark(ctx, in, owner, tags, mine); err != nil {
			return err
		}
	}

	versioned := false
	if !created {
		out, err := call(ctx, p, in, systemS3, fmt.Sprintf("reading the versioning of bucket %q", name), func(ctx context.Context) (*s3.GetBucketVersioningOutput, error) {
			return p.c.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket, ExpectedBucketOwner: owner})
		})
		if err != nil {
			return err
		}
		versioned = out.Status == s3types.BucketVersioningStatusEnabled
	}
	if !versioned {
		_, err := call(ctx, p, in, systemS3, fmt.Sprintf("enabling versioning on bucket %q", name), func(ctx context.Context) (*s3.PutBucketVersioningOutput, error) {
			return p.c.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
				Bucket:                  bucket,
				ExpectedBucketOwner:     owner,
				VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// bucketOwner is the account every bucket must be in: the configured one, or the hook's own as
// STS tells it, asked once.
func (p *Provider) bucketOwner(ctx context.Context, in external.Instance) (*string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.account == "" {
		out, err := call(ctx, p, in, systemSTS, "finding the AWS account", func(ctx context.Context) (*sts.GetCallerIdentityOutput, error) {
			return p.c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		})
		if err != nil {
			return nil, err
		}
		p.account = awssdk.ToString(out.Account)
	}
	return awssdk.String(p.account), nil
}

// headBucket says whether the bucket exists in the account. A bucket of that name in another
// account answers 403 (ExpectedBucketOwner), and is never the instance's.
func (p *Provider) headBucket(ctx context.Context, in external.Instance, owner *string) (bool, error) {
	name := in.Names.Bucket
	_, err := call(ctx, p, in, systemS3, fmt.Sprintf("looking up bucket %q", name), func(ctx context.Context) (*s3.HeadBucketOutput, error) {
		return p.c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: awssdk.String(name), ExpectedBucketOwner: owner})
	})
	var status interface{ HTTPStatusCode() int }
	switch {
	case hasCode(err, "NotFound"):
		return false, nil
	case errors.As(err, &status) && status.HTTPStatusCode() == http.StatusForbidden:
		return false, otherAccount(name, "looking up")
	case err != nil:
		return false, err
	}
	return true, nil
}

func otherAccount(bucket, doing string) error {
	return &external.Error{System: systemS3, Op: fmt.Sprintf("%s bucket %q", doing, bucket), NotOurs: external.OwnedByAnotherAccount,
		Err: errors.New("a bucket of that name exists in another AWS account (or this account may not read it): Summon never uses it; " +
			"choose another bucket prefix (--aws-bucket-prefix) or give this SummonPlatform another name")}
}

// bucketMark reads the bucket's owner mark, and all its tags.
func (p *Provider) bucketMark(ctx context.Context, in external.Instance, owner *string) (external.Mark, bool, []s3types.Tag, error) {
	out, err := call(ctx, p, in, systemS3, fmt.Sprintf("reading the tags of bucket %q", in.Names.Bucket), func(ctx context.Context) (*s3.GetBucketTaggingOutput, error) {
		return p.c.S3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: awssdk.String(in.Names.Bucket), ExpectedBucketOwner: owner})
	})
	switch {
	case hasCode(err, "NoSuchTagSet"):
		return external.Mark{}, false, nil, nil
	case err != nil:
		return external.Mark{}, false, nil, err
	}
	mark, found := tagMark(out.TagSet)
	return mark, found, out.TagSet, nil
}

func tagMark(tags any) (external.Mark, bool) {
	switch ts := tags.(type) {
	case []s3types.Tag:
		for _, t := range ts {
			if awssdk.ToString(t.Key) == UIDTag {
				return external.ParseMarkValue(awssdk.ToString(t.Value))
			}
		}
	case []iamtypes.Tag:
		for _, t := range ts {
			if awssdk.ToString(t.Key) == UIDTag {
				return external.ParseMarkValue(awssdk.ToString(t.Value))
			}
		}
	}
	return external.Mark{}, false
}

// bucketEmpty says the bucket holds no object version and no delete marker.
func (p *Provider) bucketEmpty(ctx context.Context, in external.Instance, owner *string) (bool, error) {
	page, err := call(ctx, p, in, systemS3, fmt.Sprintf("listing the object versions of bucket %q", in.Names.Bucket), func(ctx context.Context) (*s3.ListObjectVersionsOutput, error) {
		return p.c.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: awssdk.String(in.Names.Bucket), ExpectedBucketOwner: owner, MaxKeys: awssdk.Int32(1)})
	})
	if err != nil {
		return false, err
	}
	return len(versionsOf(page)) == 0, nil
}

// putMark sets the owner mark among the bucket's other tags.
func (p *Provider) putMark(ctx context.Context, in external.Instance, owner *string, tags []s3types.Tag, m external.Mark) error {
	_, err := call(ctx, p, in, systemS3, fmt.Sprintf("tagging bucket %q", in.Names.Bucket), func(ctx context.Context) (*s3.PutBucketTaggingOutput, error) {
		return p.c.S3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: awssdk.String(in.Names.Bucket), ExpectedBucketOwner: owner,
			Tagging: &s3types.Tagging{TagSet: withMark(tags, m)}})
	})
	return err
}

// withMark gives tags with the owner mark set to m and every other tag kept.
func withMark(tags []s3types.Tag, m external.Mark) []s3types.Tag {
	all := []s3types.Tag{{Key: awssdk.String(UIDTag), Value: awssdk.String(m.Value())}}
	for _, t := range tags {
		if awssdk.ToString(t.Key) != UIDTag {
			all = append(all, t)
		}
	}
	return all
}

// ensureUser returns the user's ARN and whether it created the user: a new user has no keys and
// no policy yet.
func (p *Provider) ensureUser(ctx context.Context, in external.Instance) (string, bool, error) {
	for {
		found, err := p.getUser(ctx, in)
		if err == nil {
			return found.arn, false, p.claimUser(ctx, in, found)
		}
		if !hasCode(err, "NoSuchEntity") {
			return "", false, err
		}
		out, err := call(ctx, p, in, systemIAM, fmt.Sprintf("creating IAM user %q", in.Names.IAMUser), func(ctx context.Context) (*iam.CreateUserOutput, error) {
			return p.c.IAM.CreateUser(ctx, &iam.CreateUserInput{
				UserName: awssdk.String(in.Names.IAMUser),
				Path:     awssdk.String(external.IAMPath),
				Tags:     []iamtypes.Tag{{Key: awssdk.String(UIDTag), Value: awssdk.String(in.UID)}},
			})
		})
		// EntityAlreadyExists: another Ensure created it a moment ago; look it up again.
		if !hasCode(err, "EntityAlreadyExists") {
			if err != nil {
				return "", false, err
			}
			return awssdk.ToString(out.User.Arn), true, nil
		}
	}
}

// iamUser is a user as found: its ARN and its owner mark.
type iamUser struct {
	arn    string
	mark   external.Mark
	marked bool
}

// getUser returns the user, or an error that is NoSuchEntity when there is no user.
func (p *Provider) getUser(ctx context.Context, in external.Instance) (iamUser, error) {
	out, err := call(ctx, p, in, systemIAM, fmt.Sprintf("looking up IAM user %q", in.Names.IAMUser), func(ctx context.Context) (*iam.GetUserOutput, error) {
		return p.c.IAM.GetUser(ctx, &iam.GetUserInput{UserName: awssdk.String(in.Names.IAMUser)})
	})
	if err != nil {
		return iamUser{}, err
	}
	mark, marked := tagMark(out.User.Tags)
	return iamUser{arn: awssdk.ToString(out.User.Arn), mark: mark, marked: marked}, nil
}

// claimUser refuses a user that is not the instance's, before any of its keys or policies is
// touched, and marks one that becomes the instance's.
func (p *Provider) claimUser(ctx context.Context, in external.Instance, u iamUser) error {
	claim, err := in.Claim(systemIAM, "IAM user", in.Names.IAMUser, u.mark, u.marked, false)
	if err != nil || claim != external.Remark {
		return err
	}
	_, err = call(ctx, p, in, systemIAM, fmt.Sprintf("marking IAM user %q as %s's", in.Names.IAMUser, in), func(ctx context.Context) (*iam.TagUserOutput, error) {
		return p.c.IAM.TagUser(ctx, &iam.TagUserInput{UserName: awssdk.String(in.Names.IAMUser),
			Tags: []iamtypes.Tag{{Key: awssdk.String(UIDTag), Value: awssdk.String(external.Mark{UID: in.UID}.Value())}}})
	})
	return err
}

// ensurePolicy makes the user's policy exist and be attached. The policy is customer-managed,
// named after the user and under the same path in the user's account, so its ARN follows from
// the user's: nothing has to be listed. It is not compared with the document: AWS keeps that in
// policy versions, which this provider does not manage.
func (p *Provider) ensurePolicy(ctx context.Context, in external.Instance, userARN string, newUser bool) error {
	user, err := arn.Parse(userARN)
	if err != nil {
		return external.Failed(systemIAM, fmt.Sprintf("reading the ARN of IAM user %q", in.Names.IAMUser), false, err)
	}
	partition := user.Partition
	policyARN := awssdk.String(userPolicyARN(partition, user.AccountID, in.Names.IAMUser))
	attached := false
	found := false
	if !newUser {
		out, err := call(ctx, p, in, systemIAM, fmt.Sprintf("looking up IAM policy %q", in.Names.IAMUser), func(ctx context.Context) (*iam.GetPolicyOutput, error) {
			return p.c.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: policyARN})
		})
		switch {
		case err == nil:
			found = true
			// The policy is this user's alone, so any attachment is to this user.
			attached = awssdk.ToInt32(out.Policy.AttachmentCount) > 0
		case !hasCode(err, "NoSuchEntity"):
			return err
		}
	}
	if !found {
		_, err := call(ctx, p, in, systemIAM, fmt.Sprintf("creating IAM policy %q", in.Names.IAMUser), func(ctx context.Context) (*iam.CreatePolicyOutput, error) {
			return p.c.IAM.CreatePolicy(ctx, &iam.CreatePolicyInput{
				PolicyName:     awssdk.String(in.Names.IAMUser),
				Path:           awssdk.String(external.IAMPath),
				PolicyDocument: awssdk.String(bucketPolicy(partition, in.Names.Bucket)),
				Description:    awssdk.String("Summon: the S3 bucket " + in.Names.Bucket + " only"),
				Tags:           []iamtypes.Tag{{Key: awssdk.String(UIDTag), Value: awssdk.String(external.Mark{UID: in.UID}.Value())}},
			})
		})
		if err != nil && !hasCode(err, "EntityAlreadyExists") {
			return err
		}
	}
	if attached {
		return nil
	}
	_, err = call(ctx, p, in, systemIAM, fmt.Sprintf("attaching IAM policy %q", in.Names.IAMUser), func(ctx context.Context) (*iam.AttachUserPolicyOutput, error) {
		return p.c.IAM.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: awssdk.String(in.Names.IAMUser), PolicyArn: policyARN})
	})
	return err
}

// ensureKey keeps the held key if AWS still lists it, or makes a new one; either way every
// other key of the user goes, so no key leaks from a lost Secret or an interrupted Ensure.
func (p *Provider) ensureKey(ctx context.Context, in external.Instance, newUser bool) (id, secret string, err error) {
	user := awssdk.String(in.Names.IAMUser)
	var others []string
	if !newUser {
		out, err := call(ctx, p, in, systemIAM, fmt.Sprintf("listing the access keys of IAM user %q", in.Names.IAMUser), func(ctx context.Context) (*iam.ListAccessKeysOutput, error) {
			return p.c.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: user})
		})
		if err != nil {
			return "", "", err
		}
		for _, key := range out.AccessKeyMetadata {
			if keyID := awssdk.ToString(key.AccessKeyId); keyID == in.HeldAccessKeyID && keyID != "" {
				id = keyID
			} else {
				others = append(others, keyID)
			}
		}
	}
	// AWS allows two keys per user: with two unheld keys there is no room for a new one.
	if id == "" && len(others) >= 2 {
		if err := p.deleteKeys(ctx, in, others); err != nil {
			return "", "", err
		}
		others = nil
	}
	if id == "" {
		out, err := call(ctx, p, in, systemIAM, fmt.Sprintf("creating an access key for IAM user %q", in.Names.IAMUser), func(ctx context.Context) (*iam.CreateAccessKeyOutput, error) {
			return p.c.IAM.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: user})
		})
		if err != nil {
			return "", "", err
		}
		id, secret = awssdk.ToString(out.AccessKey.AccessKeyId), awssdk.ToString(out.AccessKey.SecretAccessKey)
	}
	// If this fails after a new key was made, the new secret is lost with the error; the next
	// Ensure holds no listed key, so it deletes both and makes another.
	if err := p.deleteKeys(ctx, in, others); err != nil {
		return "", "", err
	}
	return id, secret, nil
}

func (p *Provider) deleteKeys(ctx context.Context, in external.Instance, ids []string) error {
	for _, id := range ids {
		_, err := call(ctx, p, in, systemIAM, fmt.Sprintf("deleting access key %s of IAM user %q", id, in.Names.IAMUser), func(ctx context.Context) (*iam.DeleteAccessKeyOutput, error) {
			return p.c.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: awssdk.String(in.Names.IAMUser), AccessKeyId: awssdk.String(id)})
		})
		if err != nil && !hasCode(err, "NoSuchEntity") {
			return err
		}
	}
	return nil
}

// Finalize always revokes access: it deletes the user's keys, detaches and deletes its policy
// and deletes the user. Under Delete it also empties the bucket (every object version and
// delete marker) and deletes it; under Retain the bucket and its history stay. It returns, in
// words for the status, what it has not yet seen gone; nothing left means done.
//
// A user, policy or bucket that is not the instance's is left alone: not changed, not waited
// for, and reported through a *external.Error with NotOurs set, next to what is left. Under
// Retain the bucket's mark becomes released (retained), so that a recreated parent may adopt it
// on purpose.
func (p *Provider) Finalize(ctx context.Context, in external.Instance, policy v1beta1.DeletionPolicy) ([]string, error) {
	var alone []error
	left, err := p.removeUser(ctx, in)
	if external.LeftAlone(err) {
		alone, err = append(alone, err), nil
	}
	if err != nil {
		return nil, err
	}
	more, err := p.settleBucket(ctx, in, policy)
	if external.LeftAlone(err) {
		alone, err = append(alone, err), nil
	}
	if err != nil {
		return nil, err
	}
	return append(left, more...), errors.Join(alone...)
}

// settleBucket deletes the bucket under Delete, or marks it released under Retain, if it is the
// instance's.
func (p *Provider) settleBucket(ctx context.Context, in external.Instance, policy v1beta1.DeletionPolicy) ([]string, error) {
	owner, err := p.bucketOwner(ctx, in)
	if err != nil {
		return nil, err
	}
	exists, err := p.headBucket(ctx, in, owner)
	if err != nil || !exists {
		return nil, err
	}
	mark, found, tags, err := p.bucketMark(ctx, in, owner)
	if err != nil {
		return nil, err
	}
	empty := false
	if !found {
		if empty, err = p.bucketEmpty(ctx, in, owner); err != nil {
			return nil, err
		}
	}
	if _, err := in.Claim(systemS3, "bucket", in.Names.Bucket, mark, found, empty); err != nil {
		return nil, err
	}
	if policy == v1beta1.DeletionPolicyDelete {
		return p.removeBucket(ctx, in, owner)
	}
	released := external.Mark{UID: in.UID, Retained: true}
	if found && mark == released {
		return nil, nil
	}
	return nil, p.putMark(ctx, in, owner, tags, released)
}

func (p *Provider) removeUser(ctx context.Context, in external.Instance) ([]string, error) {
	name := in.Names.IAMUser
	user := awssdk.String(name)
	found, err := p.getUser(ctx, in)
	userGone := hasCode(err, "NoSuchEntity")
	if err != nil && !userGone {
		return nil, err
	}
	userARN := found.arn
	if !userGone {
		if _, err := in.Claim(systemIAM, "IAM user", name, found.mark, found.marked, false); err != nil {
			return nil, err // its keys and its policy are left alone with it
		}
	}
	if userGone {
		// The policy may outlive its user (a user deleted by hand): it lives in the hook's account.
		if userARN, err = p.callerARN(ctx, in); err != nil {
			return nil, err
		}
	}
	owner, err := arn.Parse(userARN)
	if err != nil {
		return nil, external.Failed(systemIAM, fmt.Sprintf("reading the ARN of IAM user %q", name), false, err)
	}
	policyARN := awssdk.String(userPolicyARN(owner.Partition, owner.AccountID, name))
	if userGone {
		// Without its user, the policy answers for itself: its own mark, or (made before marks) an
		// inherited name.
		out, err := call(ctx, p, in, systemIAM, fmt.Sprintf("looking up IAM policy %q", name), func(ctx context.Context) (*iam.GetPolicyOutput, error) {
			return p.c.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: policyARN})
		})
		switch {
		case hasCode(err, "NoSuchEntity"):
			return nil, nil
		case err != nil:
			return nil, err
		}
		mark, marked := tagMark(out.Policy.Tags)
		if _, err := in.Claim(systemIAM, "IAM policy", name, mark, marked, false); err != nil {
			return nil, err
		}
	}

	if !userGone {
		keys, err := call(ctx, p, in, systemIAM, fmt.Sprintf("listing the access keys of IAM user %q", name), func(ctx context.Context) (*iam.ListAccessKeysOutput, error) {
			return p.c.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: user})
		})
		if err != nil && !hasCode(err, "NoSuchEntity") {
			return nil, err
		}
		var ids []string
		if keys != nil {
			for _, k := range keys.AccessKeyMetadata {
				ids = append(ids, awssdk.ToString(k.AccessKeyId))
			}
		}
		if err := p.deleteKeys(ctx, in, ids); err != nil {
			return nil, err
		}
		_, err = call(ctx, p, in, systemIAM, fmt.Sprintf("detaching IAM policy %q", name), func(ctx context.Context) (*iam.DetachUserPolicyOutput, error) {
			return p.c.IAM.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: user, PolicyArn: policyARN})
		})
		if err != nil && !hasCode(err, "NoSuchEntity") {
			return nil, err
		}
	}
	_, err = call(ctx, p, in, systemIAM, fmt.Sprintf("deleting IAM policy %q", name), func(ctx context.Context) (*iam.DeletePolicyOutput, error) {
		return p.c.IAM.DeletePolicy(ctx, &iam.DeletePolicyInput{PolicyArn: policyARN})
	})
	if err != nil && !hasCode(err, "NoSuchEntity") {
		return nil, err
	}
	if !userGone {
		_, err := call(ctx, p, in, systemIAM, fmt.Sprintf("deleting IAM user %q", name), func(ctx context.Context) (*iam.DeleteUserOutput, error) {
			return p.c.IAM.DeleteUser(ctx, &iam.DeleteUserInput{UserName: user})
		})
		if err != nil && !hasCode(err, "NoSuchEntity") {
			return nil, err
		}
	}

	var left []string
	if !userGone {
		_, err := p.getUser(ctx, in)
		switch {
		case err == nil:
			left = append(left, fmt.Sprintf("IAM user %q still exists", name))
		case !hasCode(err, "NoSuchEntity"):
			return nil, err
		}
	}
	_, err = call(ctx, p, in, systemIAM, fmt.Sprintf("checking IAM policy %q", name), func(ctx context.Context) (*iam.GetPolicyOutput, error) {
		return p.c.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: policyARN})
	})
	switch {
	case err == nil:
		left = append(left, fmt.Sprintf("IAM policy %q still exists", name))
	case !hasCode(err, "NoSuchEntity"):
		return nil, err
	}
	return left, nil
}

// removeBucket empties the bucket, a bounded number of rounds per call, and deletes it. Each
// round lists from the start: what the previous round listed is gone, so the listing moves on
// without markers.
func (p *Provider) removeBucket(ctx context.Context, in external.Instance, owner *string) ([]string, error) {
	name := in.Names.Bucket
	bucket := awssdk.String(name)

	var err error
	for round := 0; ; round++ {
		page, err := call(ctx, p, in, systemS3, fmt.Sprintf("listing the object versions of bucket %q", name), func(ctx context.Context) (*s3.ListObjectVersionsOutput, error) {
			return p.c.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket, ExpectedBucketOwner: owner, MaxKeys: awssdk.Int32(p.pageSize)})
		})
		if err != nil {
			return nil, err
		}
		ids := versionsOf(page)
		if len(ids) == 0 {
			break
		}
		if round == p.emptyRounds {
			return []string{stillHas(name, len(ids), awssdk.ToBool(page.IsTruncated))}, nil
		}
		out, err := call(ctx, p, in, systemS3, fmt.Sprintf("deleting %d object versions from bucket %q", len(ids), name), func(ctx context.Context) (*s3.DeleteObjectsOutput, error) {
			return p.c.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, ExpectedBucketOwner: owner, Delete: &s3types.Delete{Objects: ids, Quiet: awssdk.Bool(true)}})
		})
		if err != nil {
			return nil, err
		}
		if len(out.Errors) > 0 {
			first := out.Errors[0]
			return nil, external.Failed(systemS3, fmt.Sprintf("emptying bucket %q", name), retryableCode(awssdk.ToString(first.Code)),
				fmt.Errorf("%d object versions were not deleted, the first (%q) with %s: %s",
					len(out.Errors), awssdk.ToString(first.Key), awssdk.ToString(first.Code), awssdk.ToString(first.Message)))
		}
	}

	_, err = call(ctx, p, in, systemS3, fmt.Sprintf("deleting bucket %q", name), func(ctx context.Context) (*s3.DeleteBucketOutput, error) {
		return p.c.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket, ExpectedBucketOwner: owner})
	})
	switch {
	case hasCode(err, "BucketNotEmpty"):
		// Something wrote to it since the listing: the next Finalize empties it again.
		return []string{fmt.Sprintf("S3 bucket %q is not empty yet", name)}, nil
	case err != nil && !hasCode(err, "NoSuchBucket"):
		return nil, err
	}
	_, err = call(ctx, p, in, systemS3, fmt.Sprintf("checking bucket %q", name), func(ctx context.Context) (*s3.HeadBucketOutput, error) {
		return p.c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket, ExpectedBucketOwner: owner})
	})
	switch {
	case err == nil:
		return []string{fmt.Sprintf("S3 bucket %q still exists", name)}, nil
	case !hasCode(err, "NotFound"):
		return nil, err
	}
	return nil, nil
}

// versionsOf names every version and every delete marker on a listing page.
func versionsOf(page *s3.ListObjectVersionsOutput) []s3types.ObjectIdentifier {
	var ids []s3types.ObjectIdentifier
	for _, v := range page.Versions {
		ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
	}
	for _, m := range page.DeleteMarkers {
		ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
	}
	return ids
}

func stillHas(bucket string, n int, more bool) string {
	versions := "object versions"
	if n == 1 {
		versions = "object version"
	}
	if more {
		return fmt.Sprintf("S3 bucket %q still has more than %d %s", bucket, n, versions)
	}
	return fmt.Sprintf("S3 bucket %q still has %d %s", bucket, n, versions)
}

// callerARN is the ARN of the hook's own identity, in the account where it made the users.
func (p *Provider) callerARN(ctx context.Context, in external.Instance) (string, error) {
	out, err := call(ctx, p, in, systemSTS, "finding the AWS account", func(ctx context.Context) (*sts.GetCallerIdentityOutput, error) {
		return p.c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	})
	if err != nil {
		return "", err
	}
	return awssdk.ToString(out.Arn), nil
}

func userPolicyARN(partition, account, user string) string {
	return "arn:" + partition + ":iam::" + account + ":policy" + external.IAMPath + user
}

// call runs one AWS call with its own deadline and classifies its failure.
func call[T any](ctx context.Context, p *Provider, in external.Instance, system, op string, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := external.WithCallTimeout(ctx, p.callTimeout)
	defer cancel()
	v, err := f(ctx)
	if err != nil {
		return v, external.Failed(system, op, retryable(err), err, p.secrets...)
	}
	return v, nil
}

func hasCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// retryable: a deadline, a connection that failed, a 5xx or 429, or an answer AWS documents as
// passing (throttling, a concurrent change, a conflict while IAM catches up). Anything else
// (denied, invalid, a bucket name taken by another account) needs a person.
func retryable(err error) bool {
	if external.Transient(err) {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && (status.HTTPStatusCode() >= 500 || status.HTTPStatusCode() == 429) {
		return true
	}
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && retryableCode(apiErr.ErrorCode())
}

func retryableCode(code string) bool {
	switch code {
	case "Throttling", "ThrottlingException", "SlowDown", "RequestLimitExceeded", "TooManyRequestsException",
		"InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted",
		"ConcurrentModification", "DeleteConflict":
		return true
	}
	return false
}
