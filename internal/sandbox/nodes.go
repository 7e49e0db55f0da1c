package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"qonnect.io/qonnect/internal/fleet"
)

// KwokNodeAnnotation marks a Node that kwok simulates.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

// NodeObject builds the fake Node for one node of a NodeSpec.
func NodeObject(n NodeSpec, name string) (*corev1.Node, error) {
	arch := n.Architecture
	if arch == "" {
		arch = "amd64"
	}
	labels := map[string]string{
		"kubernetes.io/hostname": name,
		"kubernetes.io/arch":     arch,
		"kubernetes.io/os":       "linux",
		"type":                   "kwok",
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	for k, v := range map[string]string{fleet.LabelEnergy: n.Energy, fleet.LabelPrice: n.Price, fleet.LabelBandwidth: n.Bandwidth, fleet.LabelLocation: n.Location} {
		if v != "" {
			labels[k] = v
		}
	}
	res := corev1.ResourceList{}
	for k, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: n.CPU, corev1.ResourceMemory: n.Memory, corev1.ResourceEphemeralStorage: n.EphemeralStorage} {
		if v == "" {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("node %s: %s %q: %w", name, k, v, err)
		}
		res[k] = q
	}
	pods := n.Pods
	if pods == 0 {
		pods = 110
	}
	res[corev1.ResourcePods] = resource.MustParse(strconv.Itoa(pods))
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{KwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res.DeepCopy(),
			NodeInfo:    corev1.NodeSystemInfo{Architecture: arch, OperatingSystem: "linux", KubeletVersion: "fake"},
		},
	}, nil
}

// createNodes creates the cluster's fake nodes and waits until kwok has
// made every one Ready.
func (f *Federation) createNodes(ctx context.Context, c *ClusterState, spec ClusterSpec) error {
	cs, err := f.Client(c.Name)
	if err != nil {
		return err
	}
	var names []string
	for _, ns := range spec.Nodes {
		for _, name := range ns.names() {
			node, err := NodeObject(ns, name)
			if err != nil {
				return err
			}
			if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create node %s: %w", name, err)
			}
			names = append(names, name)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !nodeReady(n) {
				return false, nil
			}
		}
		return true, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
