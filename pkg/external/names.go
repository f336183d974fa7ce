package external

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Names are the names of one instance's resources outside the cluster. They are derived from the
// parent's namespace and name alone, so that sync and finalize (and every hook replica) agree
// without remembering anything, and a recreated parent finds its retained data again.
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

// NamesFor derives the names. bucketPrefix makes bucket names unique to one organisation: S3
// bucket names are global across every AWS account.
//
// Every name that joins namespace and name with '-' (which both may contain) ends in a hash of
// "namespace/name", so "a-b"/"c" and "a"/"b-c" never share a bucket, a user or a database.
func NamesFor(bucketPrefix, namespace, name string) Names {
	h := hash8(namespace + "/" + name)
	joined := namespace + "-" + name
	pg := strings.ReplaceAll(joined, "-", "_")
	return Names{
		Bucket:  bounded(bucketPrefix+joined, "-"+h, 63),
		IAMUser: bounded("summon-"+joined, "-"+h, 64),
		// Neither a namespace nor a SummonPlatform name may hold a '.', so this join is unique.
		RabbitVhost:  namespace + "." + name,
		RabbitUser:   namespace + "." + name,
		DatabaseRole: bounded(pg, "_"+h, 63),
		Database:     bounded(pg, "_"+h, 63),
	}
}

// bounded cuts s so that s+suffix fits in max bytes, without leaving a separator at the cut.
func bounded(s, suffix string, max int) string {
	if len(s)+len(suffix) > max {
		s = s[:max-len(suffix)]
	}
	s = strings.TrimRight(s, "-_.")
	return s + suffix
}

func hash8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}
