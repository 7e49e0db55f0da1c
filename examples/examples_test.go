// Package examples checks that the shipped examples load and validate.
package examples

import (
	"testing"

	"qonnect.io/qonnect/internal/spec"
)

func TestBookinfoLoads(t *testing.T) {
	a, err := spec.Load("bookinfo/bookinfo.yaml", spec.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.Spec.Components); got != 4 {
		t.Fatalf("bookinfo has %d components, want 4", got)
	}
	want := map[string]int{"productpage": 3, "details": 2, "reviews": 3, "ratings": 2}
	for _, c := range a.Spec.Components {
		if got := len(c.Resources); got != want[c.Name] {
			t.Errorf("%s has %d objects, want %d", c.Name, got, want[c.Name])
		}
		req, err := spec.ComponentRequirements(&c)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if req.Total.Pods != 2 || req.Total.MilliCPU == 0 {
			t.Errorf("%s requirements = %+v, want 2 pods with cpu", c.Name, req.Total)
		}
	}
}
