// Package node wires one lead process together: TLS material, the Raft
// store and its transport, the API server, the forwarder, and the
// scheduling loop that runs while this lead is leader.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/lead/api"
	"qonnect.io/qonnect/lead/forward"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
	"qonnect.io/qonnect/lead/loop"
	"qonnect.io/qonnect/lead/raftstore"
)

// Options are a lead's settings (the qonnect-lead flags).
type Options struct {
	ID            string
	DataDir       string
	RaftAddr      string // bind
	RaftAdvertise string
	APIAddr       string // bind
	APIAdvertise  string
	// Peers is "id=raftAddr=apiAddr,...": the group to bootstrap on first
	// start (ignored once state exists).
	Peers       string
	NoBootstrap bool
	TLS         pki.Files
	// InsecureDevPlaintext serves and dials without TLS and trusts every
	// caller. Development only.
	InsecureDevPlaintext bool
	// ProbeAddr, if set, serves /healthz, /readyz and /metrics in plain
	// HTTP (for kubelet probes and scrapers that hold no client
	// certificate); it serves no data.
	ProbeAddr string
	// Pprof adds /debug/pprof/ to the probe endpoint.
	Pprof          bool
	ClusterTimeout time.Duration
	Tuning         raftstore.Tuning
	// Schedule and Prepare override the scheduler (tests).
	Schedule loop.ScheduleFunc
	Prepare  loop.PrepareFunc
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch {
	case o.ID == "":
		return errors.New("--id is required")
	case o.DataDir == "":
		return errors.New("--data-dir is required")
	case o.RaftAddr == "":
		return errors.New("--raft-addr is required")
	case o.APIAddr == "":
		return errors.New("--api-addr is required")
	}
	if !o.InsecureDevPlaintext && (o.TLS.CA == "" || o.TLS.Cert == "" || o.TLS.Key == "") {
		return errors.New("--tls-ca, --tls-cert and --tls-key are required (or --insecure-dev-plaintext for development)")
	}
	if o.ClusterTimeout < 0 {
		return errors.New("--cluster-timeout may not be negative")
	}
	return nil
}

// Run runs the lead until ctx is done, then shuts down in order: stop
// taking requests, stop the loop, shut raft down.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.RaftAdvertise == "" {
		o.RaftAdvertise = o.RaftAddr
	}
	if o.APIAdvertise == "" {
		o.APIAdvertise = o.APIAddr
	}
	if o.ClusterTimeout == 0 {
		o.ClusterTimeout = loop.DefaultClusterTimeout
	}
	if o.Schedule == nil {
		o.Schedule, o.Prepare = scheduler.Schedule, scheduler.Prepare
	}
	peers, err := raftstore.ParsePeers(o.Peers)
	if err != nil {
		return fmt.Errorf("--peers: %w", err)
	}
	log = log.With("lead", o.ID)

	var serverTLS, clientTLS *tls.Config
	if o.InsecureDevPlaintext {
		log.Warn("INSECURE DEV MODE: API and Raft in plain text, every caller trusted; never use this outside a laptop")
	} else {
		if err := checkOwnCert(o.TLS.Cert, o.ID); err != nil {
			return err
		}
		if serverTLS, err = pki.ServerConfig(o.TLS); err != nil {
			return fmt.Errorf("server TLS: %w", err)
		}
		if clientTLS, err = pki.ClientConfig(o.TLS); err != nil {
			return fmt.Errorf("client TLS: %w", err)
		}
	}

	trans, err := raftstore.NewTransport(raftstore.TransportConfig{
		Bind: o.RaftAddr, Advertise: o.RaftAdvertise, ServerTLS: serverTLS, ClientTLS: clientTLS, Logger: log,
	})
	if err != nil {
		return err
	}
	store, err := raftstore.Open(raftstore.Config{
		ID: o.ID, Dir: filepath.Join(o.DataDir, "raft"), Transport: trans, APIAddr: o.APIAdvertise,
		Peers: peers, Bootstrap: !o.NoBootstrap, KB: kb.New(log.With("component", "kb")),
		Logger: log, Tuning: o.Tuning,
	})
	if err != nil {
		trans.Close()
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Warn("close raft store", "err", err)
		}
		log.Info("raft store closed")
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	live := liveness.New(time.Now())
	var apiHost string
	if h, _, err := net.SplitHostPort(o.APIAdvertise); err == nil {
		apiHost = h
	}
	fwd := forward.NewHTTP(clientTLS, raftstore.LocalTCPAddr(apiHost))
	srv := api.New(api.Config{
		Store: store, Forwarder: fwd, Liveness: live, Schedule: o.Schedule,
		ClusterTimeout: o.ClusterTimeout, APIAddr: o.APIAdvertise, Insecure: o.InsecureDevPlaintext,
		Logger: log.With("component", "api"), Registerer: reg,
	})
	lp := loop.New(loop.Config{
		Store: store, Liveness: live, Schedule: o.Schedule, Prepare: o.Prepare, ClusterTimeout: o.ClusterTimeout,
		Logger: log.With("component", "loop"), Registerer: reg,
	})

	ln, err := net.Listen("tcp", o.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on --api-addr %s: %w", o.APIAddr, err)
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         serverTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for the longest blocking query.
		WriteTimeout: apiv1.MaxWait + 30*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelDebug),
	}
	servers := []*http.Server{httpSrv}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		log.Info("API listening", "addr", ln.Addr().String(), "advertise", o.APIAdvertise, "tls", serverTLS != nil)
		var err error
		if serverTLS != nil {
			err = httpSrv.ServeTLS(ln, "", "")
		} else {
			err = httpSrv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("API server: %w", err)
	})
	if o.ProbeAddr != "" {
		probe := &http.Server{Addr: o.ProbeAddr, Handler: probeHandler(srv.Handler(), o.Pprof), ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, probe)
		g.Go(func() error {
			log.Info("probe endpoint listening (health and metrics only)", "addr", o.ProbeAddr)
			if err := probe.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("probe server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		loop.Supervise(gctx, store.LeaderCh(), store.IsLeader(), lp)
		return nil
	})
	g.Go(func() error {
		announce(gctx, store, fwd, peers, o, log)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
		return nil
	})
	log.Info("lead started", "raft", o.RaftAdvertise, "api", o.APIAdvertise, "peers", len(peers), "dataDir", o.DataDir)
	return g.Wait()
}

// announce makes sure the group knows this lead's addresses: a lead
// started with --no-bootstrap asks the group (the leader, or any lead of
// --peers) to add it; a lead whose recorded addresses differ from its flags
// has them updated. It runs once, at startup, until it succeeds: a lead
// removed from the group later is not added back behind the operator's back.
func announce(ctx context.Context, store *raftstore.Store, fwd forward.Forwarder, peers []raftstore.Peer, o Options, log *slog.Logger) {
	self := apiv1.MemberRequest{ID: o.ID, RaftAddr: o.RaftAdvertise, APIAddr: o.APIAdvertise}
	body, err := json.Marshal(self)
	if err != nil {
		return
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
		var rec *kb.Member
		store.KB().Read(func(st *kb.State, _ uint64) { rec = st.Members[o.ID] })
		joined := store.Status().Leader != ""
		if rec != nil && rec.RaftAddr == self.RaftAddr && rec.APIAddr == self.APIAddr {
			return // recorded as we are
		}
		if !o.NoBootstrap && (rec == nil || !joined) {
			// A bootstrapped lead is recorded by the leader from the
			// bootstrap list; wait for that unless the record is wrong.
			if attempt > 30 {
				return
			}
			continue
		}
		targets := []string{}
		if l := store.LeaderAPI(); l != "" {
			targets = append(targets, l)
		}
		for _, p := range peers {
			if p.ID != o.ID && p.APIAddr != "" {
				targets = append(targets, p.APIAddr)
			}
		}
		for _, t := range targets {
			resp, err := fwd.Forward(ctx, t, &forward.Request{Method: http.MethodPost, Path: "/v1/raft/members", Body: body,
				Identity: pki.Identity{Role: pki.RoleLead, Name: o.ID}})
			if err == nil && resp.Status == http.StatusOK {
				log.Info("announced this lead to the group", "via", t, "raft", self.RaftAddr, "api", self.APIAddr)
				return
			}
			status := 0
			if resp != nil {
				status = resp.Status
			}
			log.Debug("announce to the group failed", "via", t, "status", status, "err", err)
		}
	}
}

// probeHandler serves only the endpoints that carry no data.
func probeHandler(h http.Handler, profiling bool) http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, h)
	}
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return mux
}

// checkOwnCert refuses to start with a certificate that is not a lead's,
// or that names another lead: peers would refuse it anyway, less clearly.
func checkOwnCert(path, id string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read --tls-cert: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("--tls-cert %s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("--tls-cert %s: %w", path, err)
	}
	ident, err := pki.IdentityOf(cert)
	if err != nil {
		return fmt.Errorf("--tls-cert %s: %w", path, err)
	}
	if ident.Role != pki.RoleLead || ident.Name != id {
		return fmt.Errorf("--tls-cert %s is for %s, not lead %q", path, ident, id)
	}
	return nil
}
