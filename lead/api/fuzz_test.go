package api

import (
	"net/http"
	"net/url"
	"testing"

	"qonnect.io/qonnect/internal/apiv1"
)

// FuzzRequestDecoders: no body makes a request decoder or validator panic.
func FuzzRequestDecoders(f *testing.F) {
	for _, s := range []string{
		`{"cluster":{"name":"edge-a","tier":"edge","labels":{"a":"b"}}}`,
		`{"nodes":[{"name":"n1","allocatable":{"milliCPU":1}}],"full":true,"deleted":["x"]}`,
		`{"statuses":[{"app":"a","component":"c","phase":"Healthy","message":"m"}]}`,
		`{"id":"lead1","raftAddress":"h:1","apiAddress":"h:2","voter":false}`,
		goodSpec, `{`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, b []byte) {
		var reg apiv1.RegisterRequest
		if decodeStrict(b, &reg) == nil {
			_ = validateCluster(&reg.Cluster)
		}
		var nr apiv1.NodeReport
		if decodeStrict(b, &nr) == nil {
			_ = validateNodeReport("edge-a", &nr)
		}
		var sr apiv1.StatusReport
		if decodeStrict(b, &sr) == nil {
			_ = validateStatusReport("edge-a", &sr)
		}
		var mr apiv1.MemberRequest
		_ = decodeStrict(b, &mr)
		if len(b) < 1<<16 {
			_, _ = s.decodeSpec(b)
		}
	})
}

// FuzzBlockingParams: the query of a blocking read (?index=&wait=) is
// either refused or gives a wait within the server's bound — an agent
// cannot park a request for longer than MaxWait.
func FuzzBlockingParams(f *testing.F) {
	for _, s := range []string{"index=1&wait=30s", "index=-1", "wait=forever", "wait=-1s", "index=18446744073709551616", "wait=1000000h", "index=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		r := &http.Request{URL: &url.URL{RawQuery: query}}
		_, wait, err := blockingParams(r)
		if err == nil && (wait < 0 || wait > apiv1.MaxWait) {
			t.Fatalf("query %q gave wait %v, outside [0, %v]", query, wait, apiv1.MaxWait)
		}
	})
}
