package external

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// Names are the names of one instance's resources outside the cluster. They are derived from the
// parent's namespace and name alone, so that sync and finalize (and every hook replica) agree
// without remembering anything. A name says where to look, never whose it is: that is the owner
// mark each resource carries (see Claim).
type Names struct {
	Bucket       string
	IAMUser      string
	RabbitVhost  string
	RabbitUser   string
	DatabaseRole string
	Database     string
}

// IAMPath groups every IAM user Summon creates, so a policy or an audit can find them all.
const IAMPath = "/summon/"

// hashChars is how many base32 characters of SHA-256("namespace/name") end every name that is
// cut to fit: 16 characters, 80 bits. Two of a million instances then share a name with a
// probability near 4e-13, and making one instance's name equal to a given other's takes 2^80
// tries. Only tests shorten it (SetHashCharsForTest), to bring a collision within reach.
var hashChars = 16

// hashEncoding is lowercase base32 without padding: letters and digits only, which every one of
// the systems accepts in a name and S3 and PostgreSQL need in lowercase.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NamesFor derives the names. bucketPrefix makes bucket names unique to one organisation: S3
// bucket names are global across every AWS account.
//
// Every name that joins namespace and name with '-' (which both may contain) ends in a hash of
// the whole "namespace/name", so two different parents share a name only if their hashes are
// equal, however the readable part before it was cut: "a-b"/"c" and "a"/"b-c" never share a
// bucket, a user or a database.
func NamesFor(bucketPrefix, namespace, name string) Names {
	h := hashOf(namespace + "/" + name)
	joined := namespace + "-" + name
	pg := strings.ReplaceAll(joined, "-", "_")
	return Names{
		Bucket:  cut(bucketPrefix+joined, 63-1-len(h)) + "-" + h,
		IAMUser: cut("summon-"+joined, 64-1-len(h)) + "-" + h,
		// Neither a namespace nor a SummonPlatform name may hold a '.', so this join is unique
		// without a hash, and fits: 63 + 1 + 63 bytes is under RabbitMQ's 255.
		RabbitVhost:  namespace + "." + name,
		RabbitUser:   namespace + "." + name,
		DatabaseRole: cut(pg, 63-1-len(h)) + "_" + h,
		Database:     cut(pg, 63-1-len(h)) + "_" + h,
	}
}

// cut keeps at most max bytes of s. Nothing is trimmed after the cut: the hash that follows is
// what keeps names apart, and it is of the whole input, not of what is left.
func cut(s string, max int) string {
	if len(s) > max {
		return s[:max]
	}
	return s
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hashEncoding.EncodeToString(sum[:])[:hashChars]
}

// LegacyNamesFor derives the names Summon gave before owner marks (32 bits of hex, a cut trimmed
// of its trailing separators). Instances created then keep them: the names they recorded in
// status.external are read back (see RecordedNames) and checked against this derivation.
func LegacyNamesFor(bucketPrefix, namespace, name string) Names {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	h := hex.EncodeToString(sum[:4])
	joined := namespace + "-" + name
	pg := strings.ReplaceAll(joined, "-", "_")
	return Names{
		Bucket:       legacyBounded(bucketPrefix+joined, "-"+h, 63),
		IAMUser:      legacyBounded("summon-"+joined, "-"+h, 64),
		RabbitVhost:  namespace + "." + name,
		RabbitUser:   namespace + "." + name,
		DatabaseRole: legacyBounded(pg, "_"+h, 63),
		Database:     legacyBounded(pg, "_"+h, 63),
	}
}

func legacyBounded(s, suffix string, max int) string {
	if len(s)+len(suffix) > max {
		s = s[:max-len(suffix)]
	}
	return strings.TrimRight(s, "-_.") + suffix
}

// Recorded are the names an instance's status.external holds, as the hook wrote them; empty
// fields were not recorded.
type Recorded struct {
	Bucket      string
	IAMUser     string
	RabbitVhost string
	Database    string
}

// ResolveNames gives the names an instance uses, and those of them it may claim when it finds
// them without an owner mark (see Instance.Inherited).
//
// A name the status records is kept if it is what this scheme or the one before it derives for
// this very namespace and name: an instance created before the 80-bit scheme keeps its bucket,
// user and database, and a status written by anyone else can't point an instance at a name that
// isn't its own. A recorded name that is the legacy one is also inherited: that instance's
// resources were made before owner marks, so they carry none, and are marked on first sight.
// Every other name comes from NamesFor.
func ResolveNames(bucketPrefix, namespace, name string, rec Recorded) (Names, []string) {
	fresh := NamesFor(bucketPrefix, namespace, name)
	legacy := LegacyNamesFor(bucketPrefix, namespace, name)
	out := fresh
	var inherited []string
	pick := func(recorded, legacyName string, into ...*string) {
		if recorded == "" || recorded != legacyName {
			return
		}
		for _, p := range into {
			*p = recorded
		}
		inherited = append(inherited, recorded)
	}
	pick(rec.Bucket, legacy.Bucket, &out.Bucket)
	pick(rec.IAMUser, legacy.IAMUser, &out.IAMUser)
	pick(rec.RabbitVhost, legacy.RabbitVhost, &out.RabbitVhost, &out.RabbitUser)
	pick(rec.Database, legacy.Database, &out.Database, &out.DatabaseRole)
	return out, inherited
}
