package install

import (
	"fmt"
	"io/fs"
	"path"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"qonnect.io/qonnect/manifests"
)

// Overlay is a kustomization over the embedded bases: what a person would
// write by hand to install qonnect with `kubectl apply -k`. Install renders
// one instead of editing objects in Go, so the plugin and a GitOps
// repository get exactly the same objects from the same inputs.
type Overlay struct {
	// Bases are folders of package manifests (manifests.Lead, ...).
	Bases []string
	// Namespace replaces qonnect-system.
	Namespace string
	// ConfigMaps are merged into the bases' generated ConfigMaps, by name.
	ConfigMaps map[string][]string
	// Images rename the bases' images (qonnect-lead, qonnect-agent).
	Images []kustypes.Image
	// Patches are strategic-merge patches, each a whole object in YAML.
	Patches []string
}

// Kustomization is the overlay's kustomization.yaml, with the bases at
// basesDir (relative to the overlay's folder).
func (o Overlay) Kustomization(basesDir string) ([]byte, error) {
	k := kustypes.Kustomization{
		TypeMeta:  kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind},
		Namespace: o.Namespace,
		Images:    o.Images,
	}
	for _, b := range o.Bases {
		k.Resources = append(k.Resources, path.Join(basesDir, b))
	}
	names := make([]string, 0, len(o.ConfigMaps))
	for n := range o.ConfigMaps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k.ConfigMapGenerator = append(k.ConfigMapGenerator, kustypes.ConfigMapArgs{GeneratorArgs: kustypes.GeneratorArgs{
			Name:          n,
			Behavior:      "merge",
			KvPairSources: kustypes.KvPairSources{LiteralSources: o.ConfigMaps[n]},
		}})
	}
	for _, p := range o.Patches {
		k.Patches = append(k.Patches, kustypes.Patch{Patch: p})
	}
	return yaml.Marshal(k)
}

// clusterScoped are the bases' cluster-scoped kinds that kustomize's
// namespace transformer does not know to be (it knows RBAC's and
// Namespace), so that the rendered objects read as what they are.
var clusterScoped = map[string]bool{
	"ValidatingAdmissionPolicy":        true,
	"ValidatingAdmissionPolicyBinding": true,
}

// Render builds the overlay with kustomize over the embedded bases and
// returns the objects in kustomize's order.
func Render(o Overlay) ([]*unstructured.Unstructured, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(manifests.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := manifests.FS.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/manifests", p), data)
	})
	if err != nil {
		return nil, fmt.Errorf("copy the embedded manifests: %w", err)
	}
	kust, err := o.Kustomization("../manifests")
	if err != nil {
		return nil, fmt.Errorf("write the overlay: %w", err)
	}
	if err := mem.WriteFile("/overlay/kustomization.yaml", kust); err != nil {
		return nil, err
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/overlay")
	if err != nil {
		return nil, fmt.Errorf("kustomize: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		// Through JSON: kustomize's maps hold Go ints, which the
		// apimachinery helpers (DeepCopy, the converters) refuse.
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize output %s: %w", r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("kustomize output %s: %w", r.CurId(), err)
		}
		if clusterScoped[u.GetKind()] {
			u.SetNamespace("")
		}
		out = append(out, u)
	}
	return out, nil
}
