package dashboard

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// age is how long ago t was, in kubectl's words ("5m", "3h12m", "4d"). A time slightly ahead of
// the dashboard's clock (another machine's clock) reads as "0s"; no time reads as "".
func age(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

// stamp is a time as the pages show it in full (in a title, beside the age).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// naturalCompare orders strings with their runs of digits compared as numbers, so that version
// "108912-…-2019-10" follows "108912-…-2019-9".
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ra, restA := leadingRun(a)
		rb, restB := leadingRun(b)
		if c := compareRun(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// leadingRun splits s after its first run of digits, or of anything else.
func leadingRun(s string) (run, rest string) {
	digits := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return s[:i], s[i:]
}

func compareRun(a, b string) int {
	if isDigit(a[0]) && isDigit(b[0]) {
		ta, tb := strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(ta) != len(tb) {
			if len(ta) < len(tb) {
				return -1
			}
			return 1
		}
		if c := strings.Compare(ta, tb); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	}
	return strings.Compare(a, b)
}
