package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// MinTokenLength is the shortest bearer token accepted: `openssl rand -base64 48` gives 64
// characters, and anything much shorter can be guessed by a caller with time on its hands.
const MinTokenLength = 32

// bearerScheme is the Authorization scheme Metacontroller's authorization.secretRef sends by
// default.
const bearerScheme = "Bearer"

// tokenFile is the bearer token every hook call must carry, read from a file that is read again
// whenever it changes: a Kubernetes Secret volume swaps its files atomically on update, so the
// hook follows a rotation without a restart (and refuses the old token from then on).
type tokenFile struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
	// seen is the file as last looked at; a change of inode, size or modification time reads it
	// again.
	seen fileStamp
	// The look is kept to once a second, as for the TLS files: a rotation takes effect within a
	// second, and a hook call costs no stat of its own.
	recheck
	// digest is SHA-256 of the token: comparing digests compares equal lengths, so the time a
	// comparison takes says nothing of the token's length.
	digest [sha256.Size]byte
}

// newTokenFile reads the token once; a file that can't be read or holds no usable token stops
// the start, since a hook that refuses every call is no better than one that isn't there.
func newTokenFile(path string, log *slog.Logger) (*tokenFile, error) {
	t := &tokenFile{path: path, log: log, recheck: recheck{checkEvery: time.Second}}
	info, digest, err := readToken(path)
	if err != nil {
		return nil, err
	}
	t.seen, t.digest, t.lastCheck = fileStamp{info: info}, digest, time.Now()
	return t, nil
}

// readToken reads a token file. Neither the token nor any part of it appears in an error.
func readToken(path string) (os.FileInfo, [sha256.Size]byte, error) {
	var none [sha256.Size]byte
	info, err := os.Stat(path)
	if err != nil {
		return nil, none, fmt.Errorf("reading the auth token file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, none, fmt.Errorf("reading the auth token file: %w", err)
	}
	// `kubectl create secret --from-file` and editors keep a trailing newline.
	token := bytes.TrimSpace(b)
	switch {
	case len(token) < MinTokenLength:
		return nil, none, fmt.Errorf("the auth token file %s holds %d characters; a token must have at least %d (openssl rand -base64 48)",
			path, len(token), MinTokenLength)
	case bytes.ContainsAny(token, " \t\r\n"):
		return nil, none, fmt.Errorf("the auth token file %s holds more than one word; it must hold exactly the token Metacontroller sends", path)
	}
	return info, sha256.Sum256(token), nil
}

// current is the digest of the token in force, read again if the file changed. A file that
// becomes unreadable or unusable keeps the last good token in force (a Secret volume between two
// updates must not refuse every call) and says so in the log.
func (t *tokenFile) current() [sha256.Size]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.due(time.Now()) {
		return t.digest
	}
	if !t.seen.changed(t.path) {
		return t.digest
	}
	info, digest, err := readToken(t.path)
	if err != nil {
		t.log.Error("the auth token file changed but can't be used; the previous token stays in force", "error", err.Error())
		// Don't read it again until it changes once more.
		t.seen = stampOf(t.path)
		return t.digest
	}
	if digest != t.digest {
		t.log.Info("the auth token changed; calls with the previous one are refused from now on")
	}
	t.seen, t.digest = fileStamp{info: info}, digest
	return t.digest
}

// errUnauthenticated is why a call was refused, in words that never repeat what the caller sent.
var errUnauthenticated = errors.New("the hook needs the bearer token of its install (Authorization: Bearer <token>); " +
	"check the CompositeController's authorization.secretRef and the summon-hook-token Secret")

// allows says whether a request carries the token. The comparison takes the same time whatever
// was sent.
func (t *tokenFile) allows(r *http.Request) bool {
	want := t.current()
	scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, bearerScheme) {
		given = ""
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(given)))
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return match && len(strings.TrimSpace(given)) >= MinTokenLength
}
