package external

// SetHashCharsForTest makes every name derived from now on end in n hash characters instead of
// 16, until the returned function puts it back. It exists for tests alone: a collision of the
// real 80-bit hash is out of reach, and the tests that prove a collision harmless need one. It
// is not safe to call while names are being derived on other goroutines.
func SetHashCharsForTest(n int) (restore func()) {
	old := hashChars
	hashChars = n
	return func() { hashChars = old }
}
