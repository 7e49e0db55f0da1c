// Command qonnect-lead runs one lead of a qonnect federation: a member of
// the Raft group that keeps the knowledge base, serving the API to agents
// and users. See lead/node for what it wires together.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"qonnect.io/qonnect/lead/node"
)

func main() {
	var o node.Options
	var level slog.Level
	fs := flag.NewFlagSet("qonnect-lead", flag.ContinueOnError)
	fs.StringVar(&o.ID, "id", "", "this lead's Raft ID (the name in its certificate)")
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the Raft log, stable store and snapshots")
	fs.StringVar(&o.RaftAddr, "raft-addr", "", "address to listen on for Raft traffic (host:port)")
	fs.StringVar(&o.RaftAdvertise, "raft-advertise", "", "Raft address other leads dial (default --raft-addr); outgoing Raft traffic uses its IP as source")
	fs.StringVar(&o.APIAddr, "api-addr", "", "address to serve the API on (host:port)")
	fs.StringVar(&o.APIAdvertise, "api-advertise", "", "API address agents and other leads use (default --api-addr)")
	fs.StringVar(&o.Peers, "peers", "", `bootstrap members "id=raftAddr=apiAddr,..." (first start only; safe to pass again; empty: a group of this lead alone)`)
	fs.BoolVar(&o.NoBootstrap, "no-bootstrap", false, "never bootstrap: ask the group (the leads of --peers) to add this lead")
	fs.StringVar(&o.TLS.CA, "tls-ca", "", "federation CA certificate")
	fs.StringVar(&o.TLS.Cert, "tls-cert", "", "this lead's certificate (reloaded when it changes)")
	fs.StringVar(&o.TLS.Key, "tls-key", "", "this lead's key")
	fs.BoolVar(&o.InsecureDevPlaintext, "insecure-dev-plaintext", false, "DANGEROUS: no TLS and no authentication, for local development only")
	fs.StringVar(&o.ProbeAddr, "probe-addr", "", "optional plain-HTTP address serving only /healthz, /readyz and /metrics")
	fs.BoolVar(&o.Pprof, "pprof", false, "serve /debug/pprof/ on --probe-addr (keep that address private)")
	fs.DurationVar(&o.ClusterTimeout, "cluster-timeout", 0, "a cluster silent for longer is failed over (default 12s)")
	fs.DurationVar(&o.Tuning.HeartbeatTimeout, "raft-heartbeat-timeout", 0, "Raft heartbeat timeout (default 1s)")
	fs.DurationVar(&o.Tuning.ElectionTimeout, "raft-election-timeout", 0, "Raft election timeout (default 1s)")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go node.TuneMemory(ctx, log)
	if err := node.Run(ctx, o, log); err != nil {
		log.Error("lead failed", "err", err)
		fmt.Fprintln(os.Stderr, "qonnect-lead:", err)
		os.Exit(1)
	}
}
