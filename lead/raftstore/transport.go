package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/internal/pki"
)

// TransportConfig configures the network transport between leads.
type TransportConfig struct {
	// Bind is the address to listen on ("0.0.0.0:7000", "127.0.0.11:0").
	Bind string
	// Advertise is the address other leads dial; empty means the bound one.
	// When it is an IP literal, outgoing connections use it as their source
	// address, so a lead's traffic always comes from the address it
	// advertises (tests partition leads by source address).
	Advertise string
	// ServerTLS and ClientTLS are mutual TLS configurations (pki.ServerConfig
	// and pki.ClientConfig). Both nil means plain TCP, for the dev flag only.
	ServerTLS, ClientTLS *tls.Config
	MaxPool              int
	Timeout              time.Duration
	Logger               *slog.Logger
}

// NewTransport listens and returns raft's network transport over a stream
// layer that is mutual TLS, accepting only peers whose certificate carries
// the lead role, in both directions.
func NewTransport(cfg TransportConfig) (*raft.NetworkTransport, error) {
	if (cfg.ServerTLS == nil) != (cfg.ClientTLS == nil) {
		return nil, errors.New("raft transport: give both server and client TLS, or neither")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("raft transport: listen on %s: %w", cfg.Bind, err)
	}
	adv := cfg.Advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, _, err := net.SplitHostPort(adv)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("raft transport: advertise address %q: %w", adv, err)
	}
	s := &streamLayer{
		ln:        ln,
		advertise: stringAddr(adv),
		dialer:    net.Dialer{LocalAddr: LocalTCPAddr(host)},
		log:       cfg.Logger,
	}
	if cfg.ServerTLS != nil {
		s.server = cfg.ServerTLS.Clone()
		s.server.VerifyConnection = requireLead
		s.client = cfg.ClientTLS.Clone()
		s.client.VerifyConnection = requireLead
		s.ln = tls.NewListener(ln, s.server)
	}
	if cfg.MaxPool == 0 {
		cfg.MaxPool = 5
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  s,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.Timeout,
		Logger:  NewHCLogger(cfg.Logger, "raft-net"),
	}), nil
}

// LocalTCPAddr is the source address to dial from for an advertised host:
// the host itself when it is a specific IP, else nil (let the kernel pick).
func LocalTCPAddr(host string) *net.TCPAddr {
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() || !isLocalIP(ip) {
		// An advertised address that is not this host's (a load balancer's,
		// a Service's) cannot be a source address: dial from the default.
		return nil
	}
	return &net.TCPAddr{IP: ip}
}

// isLocalIP reports whether ip can be a source address here: it is a
// loopback address (all of 127.0.0.0/8 answers on lo) or one of this
// host's interface addresses.
func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// requireLead refuses a connection whose peer is not a lead. It runs after
// the chain was verified against the federation CA, on both ends, so an
// agent or user certificate from the same CA cannot join Raft.
func requireLead(cs tls.ConnectionState) error {
	id, err := pki.PeerIdentity(&cs)
	if err != nil {
		return fmt.Errorf("raft peer: %w", err)
	}
	if id.Role != pki.RoleLead {
		return fmt.Errorf("raft peer %s is not a lead", id)
	}
	return nil
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// streamLayer is raft's StreamLayer over TCP, optionally TLS.
type streamLayer struct {
	ln             net.Listener
	advertise      net.Addr
	dialer         net.Dialer
	server, client *tls.Config
	log            *slog.Logger
}

// Accept returns the next connection. The TLS handshake (and the role
// check) happens on its first read, in raft's per-connection goroutine, so
// a slow or hostile peer cannot stall the accept loop.
func (s *streamLayer) Accept() (net.Conn, error) {
	conn, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*tls.Conn); ok {
		return &handshakeConn{Conn: tc, log: s.log}, nil
	}
	return conn, nil
}

// handshakeTimeout bounds how long a connecting peer may take to prove who
// it is.
const handshakeTimeout = 10 * time.Second

// handshakeConn completes the TLS handshake on first read, under a deadline,
// and logs peers it refuses.
type handshakeConn struct {
	*tls.Conn
	log  *slog.Logger
	once sync.Once
	err  error
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		_ = c.Conn.SetDeadline(time.Now().Add(handshakeTimeout))
		if c.err = c.Conn.Handshake(); c.err != nil {
			c.log.Warn("refused raft connection", "remote", c.Conn.RemoteAddr().String(), "err", c.err)
			return
		}
		_ = c.Conn.SetDeadline(time.Time{})
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

func (s *streamLayer) Close() error { return s.ln.Close() }

// Addr is the advertised address: raft tells it to peers as ours.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := s.dialer
	d.Timeout = timeout
	if s.client == nil {
		return d.Dial("tcp", string(addr))
	}
	host, _, err := net.SplitHostPort(string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft dial %s: %w", addr, err)
	}
	cfg := s.client.Clone()
	cfg.ServerName = host
	conn, err := tls.DialWithDialer(&d, "tcp", string(addr), cfg)
	if err != nil {
		s.log.Warn("raft dial failed", "peer", addr, "err", err)
		return nil, fmt.Errorf("raft dial %s: %w", addr, err)
	}
	return conn, nil
}
