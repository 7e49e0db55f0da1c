// Package forward sends writes that reach a follower on to the Raft
// leader, and asks the leader how far a follower must catch up for a
// consistent read.
//
// A write is forwarded whole (method, path, body), not as a Raft command:
// the leader must run the handler itself, because it alone keeps liveness
// and must diff a report against its own, current, state. The original
// caller's identity travels in a header that the leader honours only when
// the connection carries a lead's certificate.
package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/pki"
)

// Headers of a forwarded request.
const (
	// HeaderIdentity is the original caller's identity, "role/name".
	HeaderIdentity = "X-Qonnect-Forwarded-For"
	// HeaderHop marks a forwarded request, so the receiver never forwards
	// it again (no forwarding loops while leadership moves).
	HeaderHop = "X-Qonnect-Forwarded"
)

// ErrNotLeader is returned by ReadIndex when the lead asked is no longer
// the leader.
var ErrNotLeader = errors.New("asked lead is not the leader")

// Request is a write to forward.
type Request struct {
	Method   string
	Path     string // with the query string
	Body     []byte
	Identity pki.Identity
}

// Response is the leader's answer, to copy to the original caller.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Forwarder talks to the leader on a follower's behalf.
type Forwarder interface {
	// Forward sends req to the leader at leaderAPI and returns its answer.
	Forward(ctx context.Context, leaderAPI string, req *Request) (*Response, error)
	// ReadIndex asks the leader at leaderAPI for an index that a follower
	// must apply before answering a consistent read.
	ReadIndex(ctx context.Context, leaderAPI string) (uint64, error)
}

// EncodeIdentity and ParseIdentity convert an identity for HeaderIdentity.
func EncodeIdentity(id pki.Identity) string { return string(id.Role) + "/" + id.Name }

// ParseIdentity reads HeaderIdentity.
func ParseIdentity(s string) (pki.Identity, error) {
	role, name, ok := strings.Cut(s, "/")
	if !ok || name == "" {
		return pki.Identity{}, fmt.Errorf("malformed forwarded identity %q", s)
	}
	switch pki.Role(role) {
	case pki.RoleLead, pki.RoleAgent, pki.RoleUser:
	default:
		return pki.Identity{}, fmt.Errorf("forwarded identity has unknown role %q", role)
	}
	return pki.Identity{Role: pki.Role(role), Name: name}, nil
}

// HTTP forwards over HTTPS with the lead's own client certificate (or
// plain HTTP in the insecure dev mode).
type HTTP struct {
	client *http.Client
	scheme string
}

// MaxResponseBytes bounds what is read back from the leader.
const MaxResponseBytes = 16 << 20

// NewHTTP returns a forwarder. clientTLS nil means plain HTTP (dev mode).
// localAddr, when set, is the source address of outgoing connections, so
// a lead's traffic comes from the address it advertises.
func NewHTTP(clientTLS *tls.Config, localAddr *net.TCPAddr) *HTTP {
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: localAddr, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSClientConfig:     clientTLS,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	scheme := "https"
	if clientTLS == nil {
		scheme = "http"
	}
	return &HTTP{client: &http.Client{Transport: tr}, scheme: scheme}
}

// Forward implements Forwarder.
func (h *HTTP) Forward(ctx context.Context, leaderAPI string, req *Request) (*Response, error) {
	r, err := http.NewRequestWithContext(ctx, req.Method, h.scheme+"://"+leaderAPI+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("forward to leader %s: %w", leaderAPI, err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(HeaderHop, "1")
	r.Header.Set(HeaderIdentity, EncodeIdentity(req.Identity))
	resp, err := h.client.Do(r)
	if err != nil {
		return nil, fmt.Errorf("forward to leader %s: %w", leaderAPI, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("forward to leader %s: read answer: %w", leaderAPI, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// ReadIndex implements Forwarder with GET /v1/raft?consistent=true on the
// leader, which makes the leader confirm its leadership and apply everything
// committed before it answers.
func (h *HTTP) ReadIndex(ctx context.Context, leaderAPI string) (uint64, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, h.scheme+"://"+leaderAPI+"/v1/raft?consistent=true", nil)
	if err != nil {
		return 0, err
	}
	r.Header.Set(HeaderHop, "1")
	resp, err := h.client.Do(r)
	if err != nil {
		return 0, fmt.Errorf("read index from %s: %w", leaderAPI, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e apiv1.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		if e.Code == apiv1.CodeNotLeader {
			return 0, fmt.Errorf("read index from %s: %w", leaderAPI, ErrNotLeader)
		}
		return 0, fmt.Errorf("read index from %s: %s: %s", leaderAPI, resp.Status, e.Message)
	}
	var st apiv1.RaftStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBytes)).Decode(&st); err != nil {
		return 0, fmt.Errorf("read index from %s: %w", leaderAPI, err)
	}
	if st.State != "Leader" {
		return 0, fmt.Errorf("read index from %s (%s): %w", leaderAPI, st.State, ErrNotLeader)
	}
	return st.AppliedIndex, nil
}
