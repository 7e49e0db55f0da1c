package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPaperProfile(t *testing.T) {
	p := PaperProfile()
	if err := p.Validate(); err != nil {
		t.Fatalf("paper profile invalid: %v", err)
	}
	if len(p.Clusters) != 9 {
		t.Fatalf("paper profile has %d clusters, want 9", len(p.Clusters))
	}
	tiers := map[string]int{}
	for _, c := range p.Clusters {
		tiers[string(c.Tier)]++
		if countNodes(c) != 3 {
			t.Errorf("%s has %d nodes, want 3", c.Name, countNodes(c))
		}
	}
	for _, tier := range []string{"cloud", "fog", "edge"} {
		if tiers[tier] != 3 {
			t.Errorf("tier %s has %d clusters, want 3", tier, tiers[tier])
		}
	}
	if got := len(p.Leads()); got != 3 {
		t.Errorf("paper profile has %d lead clusters, want 3", got)
	}
	n, err := NodeObject(p.Clusters[2].Nodes[0], "cloud-perf-0")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Status.Allocatable.Cpu().String(); got != "10" {
		t.Errorf("performance node cpu = %s, want 10", got)
	}
	if got := n.Labels["qonnect.io/price"]; got != "32.7726" {
		t.Errorf("performance node price label = %q", got)
	}
}

func TestLoadProfileBadInput(t *testing.T) {
	base := `clusters:
  - name: a
    tier: cloud
    role: lead
    nodes: [{name: w, cpu: "2", memory: 2Gi}]
`
	cases := []struct {
		name, yaml, want string
	}{
		{"duplicate cluster", base + `  - name: a
    tier: edge
    nodes: [{name: m, cpu: "2", memory: 2Gi}]
`, `clusters[1].name: duplicate cluster name "a"`},
		{"unknown tier", strings.Replace(base, "tier: cloud", "tier: space", 1), `clusters[0].tier: unknown tier "space"`},
		{"no nodes", strings.Replace(base, `nodes: [{name: w, cpu: "2", memory: 2Gi}]`, "nodes: []", 1), `clusters[0].nodes: cluster "a" has no nodes`},
		{"bad quantity", strings.Replace(base, "memory: 2Gi", "memory: lots", 1), `clusters[0].nodes[0].memory: "lots" is not a quantity`},
		{"bad cpu", strings.Replace(base, `cpu: "2"`, `cpu: "2x"`, 1), `clusters[0].nodes[0].cpu: "2x" is not a quantity`},
		{"unknown field", base + "colour: blue\n", `unknown field "colour"`},
		{"bad role", strings.Replace(base, "role: lead", "role: boss", 1), `clusters[0].role: unknown role "boss"`},
		{"no lead", strings.Replace(base, "role: lead", "role: member", 1), `no cluster has role lead`},
		{"bad name", strings.Replace(base, "name: a\n", "name: A_b\n", 1), `clusters[0].name: "A_b" is not a valid name`},
		{"empty", "", "at least one cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadProfile(path)
			if err == nil {
				t.Fatalf("LoadProfile accepted a bad profile")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestLoadProfileFile(t *testing.T) {
	p, err := LoadProfile("testdata/two.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Clusters) != 2 || countNodes(p.Clusters[0]) != 2 {
		t.Fatalf("unexpected profile: %+v", p)
	}
}

func TestLoadProfileTypeError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(path, []byte("clusters:\n  - name: a\n    tier: cloud\n    nodes: [{name: n, cpu: \"1\", memory: 1Gi}]\n"), 0o644)
	_, err := LoadProfile(path)
	if err == nil || !strings.Contains(err.Error(), "clusters.nodes.name: cannot be a bool (want string") {
		t.Fatalf("err = %v", err)
	}
}
