package spec

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	"qonnect.io/qonnect/internal/fleet"
)

// Requirements is what a component asks of the nodes it is placed on.
type Requirements struct {
	// Total is the sum of every pod's requests × replicas.
	Total fleet.Resources `json:"total"`
	// LargestPod is the largest single pod; some node must have room for it.
	LargestPod fleet.Resources `json:"largestPod"`
	// Architecture is the kubernetes.io/arch a pod template pins, if any.
	Architecture string `json:"architecture,omitempty"`
}

// ComponentRequirements sums the requests of the pod templates in the
// component's objects (Pods, Deployments, StatefulSets, ReplicaSets,
// DaemonSets count once, Jobs by parallelism, CronJobs once), each pod's
// request being the larger of its containers' sum and its largest init
// container, as the Kubernetes scheduler computes it.
func ComponentRequirements(c *Component) (Requirements, error) {
	var req Requirements
	for i, obj := range c.Resources {
		tmpl, replicas := podTemplate(obj)
		if tmpl == nil {
			continue
		}
		pod, err := podRequests(tmpl)
		if err != nil {
			return req, fmt.Errorf("resources[%d]: %w", i, err)
		}
		pod.Pods = 1
		if replicas < 0 {
			return req, fmt.Errorf("resources[%d]: replicas %d is negative", i, replicas)
		}
		req.Total = req.Total.Add(pod.Scale(replicas))
		req.LargestPod = maxRes(req.LargestPod, pod)
		if sel, ok := nested(tmpl, "spec", "nodeSelector").(map[string]any); ok {
			if arch, ok := sel["kubernetes.io/arch"].(string); ok {
				req.Architecture = arch
			}
		}
	}
	return req, nil
}

// podTemplate returns the pod template of a workload object and how many
// pods it makes; nil when the object makes no pods.
func podTemplate(obj Object) (map[string]any, int64) {
	kind, _ := obj["kind"].(string)
	replicas := int64(1)
	switch kind {
	case "Pod":
		return obj, 1
	case "Deployment", "StatefulSet", "ReplicaSet", "ReplicationController":
		if r, ok := number(nested(obj, "spec", "replicas")); ok {
			replicas = r
		}
	case "Job":
		if r, ok := number(nested(obj, "spec", "parallelism")); ok {
			replicas = r
		}
	case "DaemonSet":
	case "CronJob":
		t, _ := nested(obj, "spec", "jobTemplate", "spec", "template").(map[string]any)
		return t, 1
	default:
		return nil, 0
	}
	t, _ := nested(obj, "spec", "template").(map[string]any)
	return t, replicas
}

func podRequests(tmpl map[string]any) (fleet.Resources, error) {
	var sum, initMax fleet.Resources
	for _, list := range []string{"containers", "initContainers"} {
		cs, _ := nested(tmpl, "spec", list).([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			r, err := containerRequests(cm)
			if err != nil {
				return sum, err
			}
			if list == "containers" {
				sum = sum.Add(r)
			} else {
				initMax = maxRes(initMax, r)
			}
		}
	}
	return maxRes(sum, initMax), nil
}

func containerRequests(c map[string]any) (fleet.Resources, error) {
	var r fleet.Resources
	reqs, _ := nested(c, "resources", "requests").(map[string]any)
	if reqs == nil {
		// As in Kubernetes, limits stand in for missing requests.
		reqs, _ = nested(c, "resources", "limits").(map[string]any)
	}
	for name, v := range reqs {
		q, err := quantity(v)
		if err != nil {
			return r, fmt.Errorf("container %v: resources.requests.%s: %w", c["name"], name, err)
		}
		switch name {
		case "cpu":
			r.MilliCPU = q.MilliValue()
		case "memory":
			r.MemoryBytes = q.Value()
		case "ephemeral-storage":
			r.EphemeralStorage = q.Value()
		}
	}
	return r, nil
}

func quantity(v any) (resource.Quantity, error) {
	switch x := v.(type) {
	case string:
		return resource.ParseQuantity(x)
	case float64:
		return *resource.NewMilliQuantity(int64(x*1000), resource.DecimalSI), nil
	case int64:
		return *resource.NewQuantity(x, resource.DecimalSI), nil
	}
	return resource.Quantity{}, fmt.Errorf("%v is not a quantity", v)
}

func number(v any) (int64, bool) {
	switch x := v.(type) {
	case float64:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	}
	return 0, false
}

func nested(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func maxRes(a, b fleet.Resources) fleet.Resources {
	return fleet.Resources{
		MilliCPU:         max(a.MilliCPU, b.MilliCPU),
		MemoryBytes:      max(a.MemoryBytes, b.MemoryBytes),
		EphemeralStorage: max(a.EphemeralStorage, b.EphemeralStorage),
		Pods:             max(a.Pods, b.Pods),
	}
}
