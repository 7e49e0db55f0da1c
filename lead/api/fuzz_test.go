package api

import (
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
