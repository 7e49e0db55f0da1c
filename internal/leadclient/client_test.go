package leadclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"qonnect.io/qonnect/internal/apiv1"
)

// After a write, reads ask for a consistent answer: the next lead tried
// may not have applied the write yet.
func TestReadYourWrites(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RawQuery)
		mu.Unlock()
		w.Write([]byte(`{"index": 7}`))
	}))
	defer srv.Close()
	c, err := New(Config{Addresses: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ack apiv1.Ack
	if err := c.Do(ctx, http.MethodGet, "/v1/apps", nil, nil, &ack, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodDelete, "/v1/apps/x", nil, nil, &ack, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/apps", nil, nil, &ack, 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET ", "DELETE ", "GET consistent=true"}
	if len(seen) != 3 || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] {
		t.Fatalf("requests = %q, want %q", seen, want)
	}
}

// A lead that answers NotLeader or Unavailable is skipped; any other error
// is the answer.
func TestFailover(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"code":"Unavailable","message":"cut off"}`))
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"code":"NotFound","message":"application \"x\" not found"}`))
	}))
	defer up.Close()
	c, _ := New(Config{Addresses: []string{down.URL, up.URL}})
	err := c.Do(context.Background(), http.MethodGet, "/v1/apps/x", nil, nil, nil, 0)
	if !IsCode(err, apiv1.CodeNotFound) {
		t.Fatalf("err = %v, want NotFound from the second lead", err)
	}
	if got := c.Addresses()[0]; got != up.URL {
		t.Fatalf("first address now %s, want the lead that answered", got)
	}
}

func TestConsistentReads(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RawQuery
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, _ := New(Config{Addresses: []string{srv.URL}, ConsistentReads: true})
	if err := c.Do(context.Background(), http.MethodGet, "/v1/apps", nil, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if got != "consistent=true" {
		t.Fatalf("query = %q, want consistent=true", got)
	}
}
