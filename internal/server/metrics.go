package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// hookBuckets reach from 50µs to 10s: a steady-state sync answers in well under a millisecond, and
// Metacontroller gives up on a hook after 10s (its default timeout).
var hookBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// metrics are the hook server's Prometheus metrics, in a registry of its own.
type metrics struct {
	registry *prometheus.Registry
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	syncs    *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "summon_hook_duration_seconds",
			Help:    "Time to answer a Metacontroller hook call, by hook.",
			Buckets: hookBuckets,
		}, []string{"hook"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "summon_hook_requests_total",
			Help: "Metacontroller hook calls, by hook and HTTP status code.",
		}, []string{"hook", "code"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "summon_syncs_total",
			Help: "Sync hook answers, by the phase they leave the SummonPlatform in.",
		}, []string{"phase"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "summon_hook_in_flight",
			Help: "Hook calls being served now; at --max-concurrent-hooks one more is answered 429.",
		}),
	}
	m.registry.MustRegister(
		m.duration, m.requests, m.syncs, m.inFlight,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every phase is exported from the start, so that a rate over a phase that has not happened yet
	// is 0 rather than no data.
	for _, p := range []v1beta1.Phase{v1beta1.PhaseInitializing, v1beta1.PhaseMigrating, v1beta1.PhaseDeploying, v1beta1.PhaseReady, v1beta1.PhaseError} {
		m.syncs.WithLabelValues(string(p))
	}
	return m
}

func (m *metrics) observe(hook string, code int, elapsed time.Duration) {
	m.duration.WithLabelValues(hook).Observe(elapsed.Seconds())
	m.requests.WithLabelValues(hook, strconv.Itoa(code)).Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
