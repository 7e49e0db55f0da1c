package spec

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the want lines of testdata/bad from what Load says")

// TestBadSpecs loads every spec under testdata/bad and checks the exact
// one-line message a user sees, given on the file's first line.
func TestBadSpecs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("only %d bad specs in the corpus, want at least 40", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be '# want: MESSAGE'", file)
			}
			want = strings.ReplaceAll(want, "FILE", file)
			_, err = Load(file, ValidateOptions{})
			if err == nil {
				t.Fatalf("Load accepted a bad spec")
			}
			got := err.Error()
			if strings.Contains(got, "\n") {
				t.Errorf("message is more than one line: %q", got)
			}
			if *update {
				line := "# want: " + strings.ReplaceAll(got, file, "FILE")
				rest := strings.SplitN(string(data), "\n", 2)[1]
				if err := os.WriteFile(file, []byte(line+"\n"+rest), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("message\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestGoodSpec(t *testing.T) {
	a, err := Load("testdata/good/app.yaml", ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.NamespaceOf() != "shop" {
		t.Errorf("namespace = %q, want the app name", a.NamespaceOf())
	}
	web := a.Component("web")
	if web == nil || len(web.Resources) != 2 || web.Manifests != "" {
		t.Fatalf("web component not read from its manifest file: %+v", web)
	}
	req, err := ComponentRequirements(web)
	if err != nil {
		t.Fatal(err)
	}
	// Per pod: containers 500m+250m (limits stand in for requests) = 750m,
	// but the init container's 2 CPU is larger, as in the kube-scheduler.
	if req.LargestPod.MilliCPU != 2000 {
		t.Errorf("largest pod cpu = %dm, want 2000m", req.LargestPod.MilliCPU)
	}
	if req.LargestPod.MemoryBytes != (256+128)<<20 {
		t.Errorf("largest pod memory = %d, want 384Mi", req.LargestPod.MemoryBytes)
	}
	if req.Total.MilliCPU != 6000 || req.Total.Pods != 3 || req.Total.EphemeralStorage != 3<<30 {
		t.Errorf("total = %+v, want 3 pods × (2 cpu, 1Gi storage)", req.Total)
	}
	refs := References(`{"x":"${qonnect:web} and ${qonnect:db} and ${qonnect:web}"}`)
	if strings.Join(refs, ",") != "db,web" {
		t.Errorf("References = %v", refs)
	}
	if got := FillAddresses("http://${qonnect:web}:80/${qonnect:zzz}", map[string]string{"web": "w.example"}); got != "http://w.example:80/${qonnect:zzz}" {
		t.Errorf("FillAddresses = %q", got)
	}
}

func TestAllowKinds(t *testing.T) {
	a := &Application{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: "ops"}, Spec: AppSpec{Components: []Component{{
		Name: "rbac", Tier: "cloud", Resources: []Object{{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "reader"}}},
	}}}}
	if err := Validate(a, ValidateOptions{}); err == nil {
		t.Fatal("ClusterRole accepted by default")
	}
	if err := Validate(a, ValidateOptions{AllowKinds: []string{"ClusterRole"}}); err != nil {
		t.Fatalf("ClusterRole refused although allowed: %v", err)
	}
}

// FuzzDecode: no input makes the parser or the validator panic, and what
// passes validation encodes and decodes to the same thing.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data, "fuzz.yaml")
		if err != nil {
			return
		}
		if Validate(a, ValidateOptions{}) != nil {
			return
		}
		for i := range a.Spec.Components {
			if _, err := ComponentRequirements(&a.Spec.Components[i]); err != nil {
				return
			}
		}
	})
}
