package dashboard

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// pageBuckets reach from 100µs to 5s: a page is rendered from memory and should take well under
// a millisecond for a small fleet and a few for a large one.
var pageBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metrics are the dashboard's Prometheus metrics, in a registry of its own.
type metrics struct {
	registry *prometheus.Registry
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	viewers  prometheus.Gauge
}

func newMetrics(v *View) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "summon_dashboard_request_duration_seconds",
			Help:    "Time to answer a dashboard request, by route; the live updates' long-lived connections are not included.",
			Buckets: pageBuckets,
		}, []string{"route"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "summon_dashboard_requests_total",
			Help: "Dashboard requests, by route and HTTP status code.",
		}, []string{"route", "code"}),
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "summon_dashboard_live_viewers",
			Help: "Open pages that receive live updates.",
		}),
	}
	platforms := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "summon_dashboard_platforms",
		Help: "SummonPlatforms in the dashboard's view.",
	}, func() float64 { return float64(v.count()) })
	m.registry.MustRegister(
		m.duration, m.requests, m.viewers, platforms,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) observe(route string, code int, elapsed time.Duration, live bool) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	if !live {
		m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
