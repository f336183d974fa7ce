package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// scramIterations is PostgreSQL's default (scram_iterations).
const scramIterations = 4096

// scramVerifier is the SCRAM-SHA-256 verifier PostgreSQL stores for password (RFC 5802/7677, in
// the format of libpq's PQencryptPasswordConn). Sending the verifier instead of the password
// keeps the password out of the server's statement and error logs, as psql's \password does.
//
// The salt comes from the role name, not from randomness, so the same password gives the same
// verifier and a repeated Ensure leaves the stored value as it was. Derived passwords carry 256
// bits, so a salt that is unique per role and not secret costs nothing.
func scramVerifier(role, password string) string {
	saltSum := sha256.Sum256([]byte("summon/postgres-scram-salt/" + role))
	salt := saltSum[:16]
	// pbkdf2.Key fails only for a key length outside its range; 32 is inside.
	salted, _ := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(scramIterations) + ":" + b64(salt) + "$" + b64(storedKey[:]) + ":" + b64(serverKey)
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
