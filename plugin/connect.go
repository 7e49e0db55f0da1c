package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
)

// Environment variables that name the leads directly; the sandbox's env
// file sets exactly these.
const (
	EnvLead     = "QONNECT_LEAD"
	EnvLeadCA   = "QONNECT_LEAD_CA"
	EnvLeadCert = "QONNECT_LEAD_CERT"
	EnvLeadKey  = "QONNECT_LEAD_KEY"
	EnvLeadUser = "QONNECT_USER"
)

// Session is an open connection to the lead group.
type Session struct {
	// Client makes the calls.
	Client leadclient.User
	// Via says how the leads were reached, for error messages and the TUI.
	Via   string
	close func()
}

// NewSession wraps a client; closeFn (may be nil) releases what reaching
// the leads holds, such as port-forwards.
func NewSession(c leadclient.User, via string, closeFn func()) *Session {
	return &Session{Client: c, Via: via, close: closeFn}
}

// Close releases the session.
func (s *Session) Close() {
	if s != nil && s.close != nil {
		s.close()
		s.close = nil
	}
}

// Connector opens sessions to the lead group. The commands only see this,
// so tests and the end-to-end run can plug in any way of reaching a lead.
type Connector interface {
	Connect(ctx context.Context) (*Session, error)
}

// ConnectorFunc adapts a function to a Connector.
type ConnectorFunc func(ctx context.Context) (*Session, error)

// Connect calls f.
func (f ConnectorFunc) Connect(ctx context.Context) (*Session, error) { return f(ctx) }

// DirectConnector reaches leads by their API addresses, trying the next when
// one does not answer.
type DirectConnector struct {
	Addresses []string
	// TLS are the user's certificate files; an empty CA means plain HTTP,
	// allowed only for addresses given as http:// (a lead in dev mode).
	TLS     pki.Files
	Timeout time.Duration
}

// Connect builds the client; it does not call a lead yet.
func (d DirectConnector) Connect(context.Context) (*Session, error) {
	var cfg *tls.Config
	if d.TLS.CA != "" {
		var err error
		if cfg, err = pki.ClientConfig(d.TLS); err != nil {
			return nil, fmt.Errorf("lead TLS: %w", err)
		}
	}
	c, err := leadclient.New(leadclient.Config{Addresses: d.Addresses, TLS: cfg, Timeout: d.Timeout, ConsistentReads: true})
	if err != nil {
		return nil, err
	}
	return NewSession(c, strings.Join(d.Addresses, ","), nil), nil
}

// validateDirect checks the direct settings before anything is dialled, so
// a missing certificate is one clear line rather than a TLS failure.
func validateDirect(addrs []string, files pki.Files) error {
	needTLS := false
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			return errors.New("empty lead address in --lead / " + EnvLead)
		}
		if !strings.Contains(a, "://") {
			needTLS = true
			continue
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			return fmt.Errorf("lead address %q is not a URL or host:port", a)
		}
		switch u.Scheme {
		case "https":
			needTLS = true
		case "http":
		default:
			return fmt.Errorf("lead address %q: scheme must be https or http", a)
		}
	}
	set := 0
	for _, f := range []string{files.CA, files.Cert, files.Key} {
		if f != "" {
			set++
		}
	}
	switch {
	case set == 0 && needTLS:
		return fmt.Errorf("--lead-ca, --lead-cert and --lead-key (or %s, %s, %s) are required to reach a lead over https", EnvLeadCA, EnvLeadCert, EnvLeadKey)
	case set > 0 && set < 3:
		return fmt.Errorf("mutual TLS needs all of --lead-ca, --lead-cert and --lead-key (or %s, %s, %s)", EnvLeadCA, EnvLeadCert, EnvLeadKey)
	}
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
