package dashboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkFleetPage renders the fleet page of 1,000 instances, as each viewer's first load and
// each live update of an open fleet page does.
func BenchmarkFleetPage(b *testing.B) {
	var ps []Platform
	for i := range 1000 {
		var opts []platformOption
		switch i % 10 {
		case 0:
			opts = failedMigration("v2", "v1", time.Duration(i)*time.Minute)
		case 1:
			opts = migrating("v2", "v1", time.Duration(i)*time.Minute)
		default:
			opts = ready(fmt.Sprintf("108912-release-2019-%d", i%7), time.Duration(i)*time.Minute)
		}
		ps = append(ps, testPlatform(fmt.Sprintf("customer-%d", i%40), fmt.Sprintf("car%d", i), opts...))
	}
	s, _ := testServer(b, ps...)
	h := s.handler()
	req := httptest.NewRequest(http.MethodGet, "/?sort=wanted", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET / = %d", rec.Code)
		}
	}
}
