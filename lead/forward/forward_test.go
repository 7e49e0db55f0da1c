package forward

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/pki"
)

func TestIdentityRoundTrip(t *testing.T) {
	id := pki.Identity{Role: pki.RoleAgent, Name: "edge-a"}
	got, err := ParseIdentity(EncodeIdentity(id))
	if err != nil || got != id {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"", "qonnect:agent", "qonnect:agent/", "root/admin", "insecure-dev/dev"} {
		if _, err := ParseIdentity(bad); err == nil {
			t.Errorf("ParseIdentity(%q) accepted", bad)
		}
	}
}

func TestForwardCarriesIdentityAndBody(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Set(apiv1.HeaderIndex, "42")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"code":"Conflict","message":"x"}`))
	}))
	defer srv.Close()
	f := NewHTTP(nil, nil)
	resp, err := f.Forward(context.Background(), strings.TrimPrefix(srv.URL, "http://"), &Request{
		Method: "PUT", Path: "/v1/clusters/edge-a/status?x=1", Body: []byte(`{"statuses":[]}`),
		Identity: pki.Identity{Role: pki.RoleAgent, Name: "edge-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusConflict || resp.Header.Get(apiv1.HeaderIndex) != "42" {
		t.Fatalf("response %+v", resp)
	}
	if got.Method != "PUT" || got.URL.RequestURI() != "/v1/clusters/edge-a/status?x=1" || body != `{"statuses":[]}` ||
		got.Header.Get(HeaderIdentity) != "qonnect:agent/edge-a" || got.Header.Get(HeaderHop) == "" {
		t.Fatalf("forwarded request %s %s %q %v", got.Method, got.URL, body, got.Header)
	}
}

func TestReadIndex(t *testing.T) {
	state := "Leader"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("consistent") != "true" {
			t.Errorf("read index without consistent=true: %s", r.URL)
		}
		_ = json.NewEncoder(w).Encode(apiv1.RaftStatus{State: state, AppliedIndex: 77})
	}))
	defer srv.Close()
	f := NewHTTP(nil, nil)
	addr := strings.TrimPrefix(srv.URL, "http://")
	if idx, err := f.ReadIndex(context.Background(), addr); err != nil || idx != 77 {
		t.Fatalf("ReadIndex = %d, %v", idx, err)
	}
	state = "Follower"
	if _, err := f.ReadIndex(context.Background(), addr); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadIndex from a follower: %v", err)
	}
}
