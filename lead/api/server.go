// Package api is the lead's HTTP/JSON API under /v1 (see internal/apiv1 for
// the endpoints and wire types).
//
// Who may do what is decided by the identity in the client certificate
// (internal/pki), never by what a request says: an agent acts only for its
// own cluster, users and leads manage applications and read the fleet.
// Every body is size-limited and decoded strictly; a spec is validated
// before anything is stored. Reads are answered from this lead's KB (with
// ?consistent=true it first catches up with the leader); writes run on the
// leader, so a follower forwards them there.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/lead/forward"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
	"qonnect.io/qonnect/lead/loop"
	"qonnect.io/qonnect/lead/raftstore"
)

// Store is what the API needs of the Raft store (*raftstore.Store).
type Store interface {
	KB() *kb.KB
	ID() string
	IsLeader() bool
	LeaderAPI() string
	Apply(ctx context.Context, typ kb.Type, payload any) (*kb.Result, error)
	Status() apiv1.RaftStatus
	ReadIndex(ctx context.Context) (uint64, error)
	WaitApplied(ctx context.Context, index uint64) error
	AddMember(ctx context.Context, p raftstore.Peer, voter bool) error
	RemoveMember(ctx context.Context, id string) error
}

// Config configures the API server.
type Config struct {
	Store     Store
	Forwarder forward.Forwarder
	// Liveness is the leader's in-memory heartbeat record, fed by agents'
	// reports that reach this lead while it leads.
	Liveness *liveness.Tracker
	// Schedule and Scheduler run dry-run applies.
	Schedule  loop.ScheduleFunc
	Scheduler scheduler.Config
	// ClusterTimeout is how long a cluster may be silent; agents are asked
	// to report at a quarter of it.
	ClusterTimeout time.Duration
	// APIAddr is this lead's advertised API address, the lead list of last
	// resort.
	APIAddr string
	// Insecure trusts every caller (no client certificates): only for the
	// --insecure-dev-plaintext mode.
	Insecure bool
	Validate spec.ValidateOptions
	Logger   *slog.Logger
	// Registerer receives the API's metrics; nil for none.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Server serves the API.
type Server struct {
	cfg     Config
	store   Store
	kb      *kb.KB
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
}

// New builds the server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ClusterTimeout == 0 {
		cfg.ClusterTimeout = loop.DefaultClusterTimeout
	}
	if cfg.Liveness == nil {
		cfg.Liveness = liveness.New(cfg.Now())
	}
	if cfg.Schedule == nil {
		cfg.Schedule = scheduler.Schedule
	}
	s := &Server{cfg: cfg, store: cfg.Store, kb: cfg.Store.KB(), log: cfg.Logger, mux: http.NewServeMux()}
	s.metrics = newMetrics(cfg.Registerer, cfg.Store)
	s.routes()
	return s
}

// Handler is the API's root handler.
func (s *Server) Handler() http.Handler { return s }

// methods dispatches on the HTTP method, answering others with a JSON 405.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	allow := ""
	for k := range m {
		if allow != "" {
			allow += ", "
		}
		allow += k
	}
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, apiv1.Error{Code: apiv1.CodeBadRequest, Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
}

func (s *Server) routes() {
	s.mux.Handle("/v1/clusters", methods{"GET": s.listClusters, "POST": s.registerCluster})
	s.mux.Handle("/v1/clusters/{name}/nodes", methods{"PUT": s.reportNodes})
	s.mux.Handle("/v1/clusters/{name}/status", methods{"PUT": s.reportStatus})
	s.mux.Handle("/v1/clusters/{name}/assignments", methods{"GET": s.assignments})
	s.mux.Handle("/v1/apps", methods{"GET": s.listApps, "POST": s.applyApp})
	s.mux.Handle("/v1/apps/{name}", methods{"GET": s.getApp, "DELETE": s.deleteApp})
	s.mux.Handle("/v1/nodes", methods{"GET": s.listNodes})
	s.mux.Handle("/v1/raft", methods{"GET": s.raftStatus})
	s.mux.Handle("/v1/raft/members", methods{"POST": s.addMember})
	s.mux.Handle("/v1/raft/members/{id}", methods{"DELETE": s.removeMember})
	s.mux.Handle("/v1/watch", methods{"GET": s.watch})
	s.mux.Handle("/healthz", methods{"GET": s.healthz})
	s.mux.Handle("/readyz", methods{"GET": s.readyz})
	s.mux.Handle("/metrics", methods{"GET": s.metrics.handler().ServeHTTP})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiv1.Error{Code: apiv1.CodeNotFound, Message: "no such endpoint: " + r.URL.Path})
	})
}

// ServeHTTP adds the common headers, metrics and a last-resort recover.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.Error("handler panicked", "path", r.URL.Path, "panic", rec, "stack", string(debug.Stack()))
			if !sw.wrote {
				writeJSON(sw, http.StatusInternalServerError, apiv1.Error{Code: apiv1.CodeInternal, Message: "internal error"})
			}
		}
		_, pattern := s.mux.Handler(r)
		if pattern == "/" {
			pattern = "other"
		}
		s.metrics.observe(pattern, r.Method, sw.status, time.Since(start))
	}()
	sw.Header().Set(apiv1.HeaderIndex, strconv.FormatUint(s.kb.Index(), 10))
	if l := s.store.LeaderAPI(); l != "" {
		sw.Header().Set(apiv1.HeaderLeader, l)
	}
	s.mux.ServeHTTP(sw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// httpError is an API error with its status.
type httpError struct {
	status int
	body   apiv1.Error
}

func (e *httpError) Error() string { return e.body.Error() }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, body: apiv1.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func badRequest(field, format string, args ...any) *httpError {
	e := errorf(http.StatusBadRequest, apiv1.CodeBadRequest, format, args...)
	e.body.Field = field
	return e
}

// fail answers with the error's status and a JSON body; store and raft
// errors map onto 404, 409, 503.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
	case errors.Is(err, kb.ErrNotFound):
		he = errorf(http.StatusNotFound, apiv1.CodeNotFound, "%v", err)
	case errors.Is(err, kb.ErrConflict):
		he = errorf(http.StatusConflict, apiv1.CodeConflict, "%v", err)
	case errors.Is(err, kb.ErrInvalid):
		he = errorf(http.StatusBadRequest, apiv1.CodeBadRequest, "%v", err)
	case errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, forward.ErrNotLeader):
		he = errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "%v", err)
	case errors.Is(err, raftstore.ErrTimeout), errors.Is(err, raftstore.ErrShutdown),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		he = errorf(http.StatusServiceUnavailable, apiv1.CodeUnavailable, "%v", err)
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		he = errorf(http.StatusInternalServerError, apiv1.CodeInternal, "%v", err)
	}
	if he.status >= 500 {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, he.status, he.body)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: ready once a leader is known, so traffic is not sent to a lead
// that can neither write nor forward.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.store.LeaderAPI() == "" && !s.store.IsLeader() {
		s.fail(w, r, errorf(http.StatusServiceUnavailable, apiv1.CodeUnavailable, "no raft leader known"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
