package manifests

import (
	"io/fs"
	"path"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestBasesBuild builds every embedded base on its own with kustomize, as
// `kubectl apply -k manifests/BASE` would.
func TestBasesBuild(t *testing.T) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := FS.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/m", p), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	for base, want := range map[string]int{Namespace: 1, Lead: 6, Agent: 7, AgentGuard: 2} {
		t.Run(base, func(t *testing.T) {
			res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/m/"+base)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Size(); got != want {
				t.Errorf("%d objects, want %d", got, want)
			}
			for _, r := range res.Resources() {
				if r.GetLabels()["app.kubernetes.io/part-of"] != "qonnect" {
					t.Errorf("%s is not labelled part-of=qonnect", r.CurId())
				}
			}
		})
	}
}
