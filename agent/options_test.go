package agent

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOptionsValidate(t *testing.T) {
	base := []string{"--cluster", "edge-1", "--tier", "edge", "--leads", "127.0.0.1:7443",
		"--tls-ca", "ca.crt", "--tls-cert", "a.crt", "--tls-key", "a.key"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"complete", base, ""},
		{"plain text for development", []string{"--cluster", "c", "--tier", "fog", "--leads", "l:1", "--insecure-dev-plaintext"}, ""},
		{"no cluster", base[2:], "--cluster is required"},
		{"no leads", append(append([]string{}, base[:4]...), base[6:]...), "--leads is required"},
		{"bad tier", append(append([]string{}, base...), "--tier", "moon"), `--tier: unknown tier "moon"`},
		{"bad role", append(append([]string{}, base...), "--role", "boss"), `--role "boss"`},
		{"no TLS", base[:6], "--tls-ca, --tls-cert and --tls-key are required"},
		{"TLS and plain text", append(append([]string{}, base...), "--insecure-dev-plaintext"), "exclude each other"},
		{"bad interval", append(append([]string{}, base...), "--heartbeat-interval", "0s"), "must be positive"},
		{"bad log level", append(append([]string{}, base...), "--log-level", "loud"), "--log-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMetricsServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.LeadRequests.WithLabelValues("status", "ok").Inc()
	srv := httptest.NewServer(metricsServer(reg).Handler)
	defer srv.Close()
	for path, want := range map[string]string{
		"/metrics": `qonnect_agent_lead_requests_total{call="status",result="ok"} 1`,
		"/healthz": "ok",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %q lacks %q", path, resp.StatusCode, body, want)
		}
	}
}
