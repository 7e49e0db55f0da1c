package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"qonnect.io/qonnect/lead/kb"
)

type metrics struct {
	gatherer  prometheus.Gatherer
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	forwarded prometheus.Counter
	forbidden prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, store Store) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qonnect_api_requests_total", Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qonnect_api_request_seconds", Help: "API request duration by route (blocking queries included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, []string{"route"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "qonnect_api_forwarded_total", Help: "Writes forwarded to the leader."}),
		forbidden: prometheus.NewCounter(prometheus.CounterOpts{Name: "qonnect_api_forbidden_total", Help: "Requests refused for the caller's identity."}),
	}
	if reg == nil {
		return m
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	count := func(f func(st *kb.State) int) func() float64 {
		return func() float64 {
			var n int
			store.KB().Read(func(st *kb.State, _ uint64) { n = f(st) })
			return float64(n)
		}
	}
	collectors := []prometheus.Collector{
		m.requests, m.duration, m.forwarded, m.forbidden,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qonnect_raft_leader", Help: "1 if this lead is the Raft leader."}, func() float64 {
			if store.IsLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qonnect_kb_index", Help: "Log index of the last command applied to the knowledge base."},
			func() float64 { return float64(store.KB().Index()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qonnect_kb_clusters", Help: "Registered clusters."}, count(func(st *kb.State) int { return len(st.Clusters) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qonnect_kb_apps", Help: "Applications."}, count(func(st *kb.State) int { return len(st.Apps) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qonnect_kb_nodes", Help: "Nodes of every cluster."}, count(func(st *kb.State) int {
			n := 0
			for _, nodes := range st.Nodes {
				n += len(nodes)
			}
			return n
		})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qonnect_kb_clusters_down", Help: "Clusters the leader declared down."}, count(func(st *kb.State) int { return len(st.Down) })),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err) // a metric defined twice is a bug
			}
		}
	}
	return m
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	if m.gatherer == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}
