// Package leadclient is the Go client of the lead's /v1 API, used by the
// agent and the plugin. It speaks mutual TLS, tries each known lead address
// in turn when one does not answer, and turns error bodies into *apiv1.Error.
//
// The core (this file) is the transport; agent.go holds the agent's calls
// and user.go the plugin's.
package leadclient

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
	"net/url"
	"strings"
	"sync"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
)

// ErrNoLead is returned when no lead address answered.
var ErrNoLead = errors.New("no lead answered")

// Config builds a Client.
type Config struct {
	// Addresses are lead API base URLs ("https://127.0.0.11:7443") or
	// host:port pairs (https is assumed).
	Addresses []string
	// TLS is the mutual TLS configuration; nil means plain HTTP, which only
	// a lead started with its insecure dev flag answers.
	TLS *tls.Config
	// Timeout bounds one request that is not a blocking query. Default 10s.
	Timeout time.Duration
	// Transport replaces the HTTP transport (tests, port-forwards).
	Transport http.RoundTripper
	// ConsistentReads makes every read catch up with the leader first, so
	// what a user wrote with one command the next command sees, whichever
	// lead answers. Without it, reads are consistent only after this
	// client's own writes.
	ConsistentReads bool
}

// Client calls the leads. It is safe for concurrent use.
type Client struct {
	http    *http.Client
	timeout time.Duration

	mu    sync.Mutex
	addrs []string
	next  int // index of the address to try first
	// consistent makes reads ask for an answer caught up with the leader:
	// from the start with Config.ConsistentReads, else once a write
	// succeeded, since the next lead tried may not have applied it yet
	// (read-your-writes, e.g. apply --wait).
	consistent bool
}

// New returns a client for the given leads.
func New(cfg Config) (*Client, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("no lead address given")
	}
	addrs := make([]string, 0, len(cfg.Addresses))
	for _, a := range cfg.Addresses {
		u, err := normalize(a, cfg.TLS != nil)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, u)
	}
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			TLSClientConfig:     cfg.TLS,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &Client{http: &http.Client{Transport: rt}, timeout: timeout, addrs: addrs, consistent: cfg.ConsistentReads}, nil
}

func normalize(a string, tlsOn bool) (string, error) {
	a = strings.TrimSpace(a)
	if a == "" {
		return "", errors.New("empty lead address")
	}
	if !strings.Contains(a, "://") {
		if tlsOn {
			a = "https://" + a
		} else {
			a = "http://" + a
		}
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("lead address %q is not a URL or host:port", a)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// Addresses returns the lead addresses the client knows, the one it will
// try first leading.
func (c *Client) Addresses() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.addrs))
	for i := range c.addrs {
		out = append(out, c.addrs[(c.next+i)%len(c.addrs)])
	}
	return out
}

// SetAddresses replaces the known leads (from what the leads report),
// keeping the one that answered last in front. Unparseable ones are dropped.
func (c *Client) SetAddresses(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tlsOn := strings.HasPrefix(c.addrs[0], "https://")
	cur := c.addrs[c.next%len(c.addrs)]
	var out []string
	seen := map[string]bool{}
	for _, a := range addrs {
		u, err := normalize(a, tlsOn)
		if err != nil || seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	if len(out) == 0 {
		return
	}
	c.addrs, c.next = out, 0
	for i, a := range out {
		if a == cur {
			c.next = i
		}
	}
}

// Do sends one request, trying each lead in turn while they fail to
// answer. in (if not nil) is sent as JSON; out (if not nil) receives the
// JSON answer. A lead that answers with an error status ends the attempt
// with its *apiv1.Error. wait > 0 marks a blocking query: the request may
// take that long plus the usual timeout.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any, wait time.Duration) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	addrs := c.Addresses()
	var errs []error
	for _, base := range addrs {
		err := c.once(ctx, base, method, path, query, body, out, wait)
		if err == nil {
			c.setFirst(base)
			return nil
		}
		var apiErr *apiv1.Error
		if errors.As(err, &apiErr) && apiErr.Code != apiv1.CodeNotLeader && apiErr.Code != apiv1.CodeUnavailable {
			c.setFirst(base)
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", base, err))
	}
	return fmt.Errorf("%w: %w", ErrNoLead, errors.Join(errs...))
}

func (c *Client) setFirst(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.addrs {
		if a == base {
			c.next = i
			return
		}
	}
}

func (c *Client) once(ctx context.Context, base, method, path string, query url.Values, body []byte, out any, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+wait)
	defer cancel()
	u := base + path
	// The group's status is each lead's own view, and is wanted most when
	// there is no leader to be consistent with.
	if method == http.MethodGet && path != "/v1/raft" && c.readsConsistent() && query.Get("consistent") == "" {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("consistent", "true")
		query = q
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &apiv1.Error{}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Message == "" {
			apiErr = &apiv1.Error{Code: codeFor(resp.StatusCode), Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))}
		}
		return apiErr
	}
	if method != http.MethodGet {
		c.mu.Lock()
		c.consistent = true
		c.mu.Unlock()
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer from %s: %w", base, err)
	}
	return nil
}

func (c *Client) readsConsistent() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.consistent
}

func codeFor(status int) string {
	switch {
	case status == http.StatusNotFound:
		return apiv1.CodeNotFound
	case status == http.StatusForbidden, status == http.StatusUnauthorized:
		return apiv1.CodeForbidden
	case status == http.StatusConflict:
		return apiv1.CodeConflict
	case status == http.StatusRequestEntityTooLarge:
		return apiv1.CodeTooLarge
	case status == http.StatusServiceUnavailable:
		return apiv1.CodeUnavailable
	case status >= 500:
		return apiv1.CodeInternal
	}
	return apiv1.CodeBadRequest
}

// IsCode reports whether err is an *apiv1.Error with the given code.
func IsCode(err error, code string) bool {
	var e *apiv1.Error
	return errors.As(err, &e) && e.Code == code
}
