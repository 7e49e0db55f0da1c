package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/lead/forward"
)

// roleInsecure is the identity of every caller in the insecure dev mode.
const roleInsecure pki.Role = "insecure-dev"

// identity is who is calling: the verified client certificate's identity,
// or, on a request a lead forwarded, the original caller's (trusted only
// because a lead's certificate vouches for it).
func (s *Server) identity(r *http.Request) (pki.Identity, error) {
	fwd := r.Header.Get(forward.HeaderIdentity)
	if s.cfg.Insecure {
		if fwd != "" {
			return forward.ParseIdentity(fwd)
		}
		return pki.Identity{Role: roleInsecure, Name: "dev"}, nil
	}
	id, err := pki.PeerIdentity(r.TLS)
	if err != nil {
		return pki.Identity{}, errorf(http.StatusForbidden, apiv1.CodeForbidden, "no qonnect identity in the client certificate")
	}
	if fwd != "" && id.Role == pki.RoleLead {
		orig, err := forward.ParseIdentity(fwd)
		if err != nil {
			return pki.Identity{}, badRequest("", "%v", err)
		}
		return orig, nil
	}
	return id, nil
}

// Who may do what.
func isUserOrLead(id pki.Identity) bool {
	return id.Role == pki.RoleUser || id.Role == pki.RoleLead || id.Role == roleInsecure
}

func isAgentOf(id pki.Identity, cluster string) bool {
	return (id.Role == pki.RoleAgent && id.Name == cluster) || id.Role == roleInsecure
}

// authorize resolves the caller and checks allowed(id); it answers 403
// itself and returns false when the caller may not proceed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, what string, allowed func(pki.Identity) bool) (pki.Identity, bool) {
	id, err := s.identity(r)
	if err != nil {
		s.fail(w, r, err)
		return id, false
	}
	if !allowed(id) {
		s.metrics.forbidden.Inc()
		s.log.Warn("forbidden", "identity", id.String(), "method", r.Method, "path", r.URL.Path)
		s.fail(w, r, errorf(http.StatusForbidden, apiv1.CodeForbidden, "%s may not %s", id, what))
		return id, false
	}
	return id, true
}

// readBody reads a size-limited body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, apiv1.MaxBodyBytes)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, apiv1.CodeTooLarge, "body is larger than the limit of %d bytes", apiv1.MaxBodyBytes)
		}
		return nil, badRequest("", "read body: %v", err)
	}
	return b, nil
}

// decodeStrict decodes one JSON value, rejecting unknown fields and
// trailing data.
func decodeStrict(b []byte, dst any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest("", "empty body")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			// The field is named once (by Field); the types are said the way
			// a person writing JSON thinks of them, not as Go types.
			return badRequest(ute.Field, "cannot be %s (want %s)", withArticle(ute.Value), jsonKind(ute.Type))
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badRequest(strings.Trim(name, `"`), "unknown field")
		}
		return badRequest("", "malformed JSON: %v", err)
	}
	if dec.More() {
		return badRequest("", "trailing data after the JSON body")
	}
	return nil
}

// readJSON reads and decodes a body.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) ([]byte, error) {
	b, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	return b, decodeStrict(b, dst)
}

// jsonKind names a Go type as the JSON value it decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return t.String()
}

// withArticle: "number" → "a number", "array" → "an array".
func withArticle(v string) string {
	if v == "" {
		return "empty"
	}
	if strings.ContainsRune("aeiou", rune(v[0])) {
		return "an " + v
	}
	return "a " + v
}

// checkLabel and checkSubdomain: the message does not repeat the field,
// which the error names (clients print "FIELD: MESSAGE").
func checkLabel(field, v string) error {
	if v == "" {
		return badRequest(field, "is required")
	}
	if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
		return badRequest(field, "%q is not a valid name: %s", v, errs[0])
	}
	return nil
}

func checkSubdomain(field, v string) error {
	if v == "" {
		return badRequest(field, "is required")
	}
	if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
		return badRequest(field, "%q is not a valid name: %s", v, errs[0])
	}
	return nil
}

// blockingParams reads ?index=N&wait=D.
func blockingParams(r *http.Request) (uint64, time.Duration, error) {
	q := r.URL.Query()
	var index uint64
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, badRequest("index", "index must be a non-negative integer, got %q", v)
		}
		index = n
	}
	wait := apiv1.DefaultWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, 0, badRequest("wait", "wait must be a duration like 30s, got %q", v)
		}
		wait = min(d, apiv1.MaxWait)
	}
	return index, wait, nil
}

// onLeader runs a write on the leader: here, or by forwarding the request.
// fn returns the body to answer with.
func (s *Server) onLeader(w http.ResponseWriter, r *http.Request, id pki.Identity, body []byte, fn func() (any, error)) {
	if !s.store.IsLeader() {
		s.forward(w, r, id, body)
		return
	}
	out, err := fn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// forward sends the request to the leader and relays its answer. When
// leadership is moving it tries a few times within the request's context.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, id pki.Identity, body []byte) {
	if r.Header.Get(forward.HeaderHop) != "" {
		// Sent here by a lead that thought we lead; never forward twice.
		s.fail(w, r, errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "lead %s is not the leader", s.store.ID()))
		return
	}
	if s.cfg.Forwarder == nil {
		s.fail(w, r, errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "lead %s is not the leader and cannot forward", s.store.ID()))
		return
	}
	var lastErr error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-r.Context().Done():
				s.fail(w, r, r.Context().Err())
				return
			}
			if s.store.IsLeader() {
				s.fail(w, r, errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "this lead became leader during the request; retry"))
				return
			}
		}
		leader := s.store.LeaderAPI()
		if leader == "" {
			lastErr = errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "no raft leader known to forward to")
			continue
		}
		s.metrics.forwarded.Inc()
		resp, err := s.cfg.Forwarder.Forward(r.Context(), leader, &forward.Request{
			Method: r.Method, Path: r.URL.RequestURI(), Body: body, Identity: id,
		})
		if err != nil {
			lastErr = errorf(http.StatusServiceUnavailable, apiv1.CodeUnavailable, "forward to leader: %v", err)
			continue
		}
		if resp.Status == http.StatusServiceUnavailable && isNotLeader(resp.Body) {
			lastErr = fmt.Errorf("leader at %s moved: %w", leader, forward.ErrNotLeader)
			continue
		}
		for _, h := range []string{"Content-Type", apiv1.HeaderIndex, "Retry-After"} {
			if v := resp.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
		return
	}
	s.fail(w, r, lastErr)
}

func isNotLeader(body []byte) bool {
	var e apiv1.Error
	return json.Unmarshal(body, &e) == nil && e.Code == apiv1.CodeNotLeader
}

// catchUp makes this lead's KB at least as fresh as the leader's was when
// the call began, for ?consistent=true reads.
func (s *Server) catchUp(r *http.Request) error {
	if r.URL.Query().Get("consistent") != "true" {
		return nil
	}
	ctx := r.Context()
	if s.store.IsLeader() {
		_, err := s.store.ReadIndex(ctx)
		return err
	}
	if r.Header.Get(forward.HeaderHop) != "" {
		return errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "lead %s is not the leader", s.store.ID())
	}
	leader := s.store.LeaderAPI()
	if leader == "" || s.cfg.Forwarder == nil {
		return errorf(http.StatusServiceUnavailable, apiv1.CodeNotLeader, "no raft leader known for a consistent read")
	}
	idx, err := s.cfg.Forwarder.ReadIndex(ctx, leader)
	if err != nil {
		return err
	}
	return s.store.WaitApplied(ctx, idx)
}
