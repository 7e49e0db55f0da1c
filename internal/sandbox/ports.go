package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Cluster ports are chosen here, not by kwokctl: kwokctl probes downwards
// from a fixed port for one that is free now, so while a sandbox cluster is
// stopped its ports look free, and another sandbox (tests run in parallel)
// would take them and keep it from ever starting again. A machine-wide
// registry keeps each cluster's ports reserved until its sandbox is down.

// portRange is below Linux's ephemeral range (32768+), so outgoing
// connections never hold these ports, and below where kwokctl probes.
const (
	portLow  = 20000
	portHigh = 30000
)

// ClusterPorts are the ports of one cluster's components.
type ClusterPorts struct {
	EtcdPeer              uint32 `json:"etcdPeerPort"`
	Etcd                  uint32 `json:"etcdPort"`
	KubeApiserver         uint32 `json:"kubeApiserverPort"`
	KubeControllerManager uint32 `json:"kubeControllerManagerPort"`
	KubeScheduler         uint32 `json:"kubeSchedulerPort"`
	KwokController        uint32 `json:"kwokControllerPort"`
}

func (p ClusterPorts) all() []uint32 {
	return []uint32{p.EtcdPeer, p.Etcd, p.KubeApiserver, p.KubeControllerManager, p.KubeScheduler, p.KwokController}
}

// portEntry is one reservation: the sandbox folder that holds it.
type portEntry struct {
	Dir   string   `json:"dir"`
	Ports []uint32 `json:"ports"`
}

func registryPaths() (file, lock string) {
	d := os.TempDir()
	return filepath.Join(d, "qonnect-sandbox-ports.json"), filepath.Join(d, "qonnect-sandbox-ports.lock")
}

// reservePorts picks free ports for a cluster of the sandbox in dir and
// records them.
func reservePorts(ctx context.Context, dir string) (ClusterPorts, error) {
	var out ClusterPorts
	err := withRegistry(ctx, func(entries []portEntry) ([]portEntry, error) {
		taken := map[uint32]bool{}
		for _, e := range entries {
			for _, p := range e.Ports {
				taken[p] = true
			}
		}
		var picked []uint32
		for tries := 0; len(picked) < 6; tries++ {
			if tries > 5000 {
				return nil, errors.New("no free ports left for a cluster in 20000-29999")
			}
			p := uint32(portLow + rand.IntN(portHigh-portLow))
			if taken[p] || !portFree(p) {
				continue
			}
			taken[p] = true
			picked = append(picked, p)
		}
		out = ClusterPorts{picked[0], picked[1], picked[2], picked[3], picked[4], picked[5]}
		return append(entries, portEntry{Dir: dir, Ports: picked}), nil
	})
	return out, err
}

// releasePorts drops every reservation of the sandbox in dir.
func releasePorts(ctx context.Context, dir string) error {
	return withRegistry(ctx, func(entries []portEntry) ([]portEntry, error) {
		out := entries[:0]
		for _, e := range entries {
			if e.Dir != dir {
				out = append(out, e)
			}
		}
		return out, nil
	})
}

// withRegistry runs fn on the registry under its lock, dropping entries of
// sandboxes that no longer exist (their state file is gone).
func withRegistry(ctx context.Context, fn func([]portEntry) ([]portEntry, error)) error {
	file, lock := registryPaths()
	unlock, err := lockFile(ctx, lock)
	if err != nil {
		return err
	}
	defer unlock()
	var entries []portEntry
	if data, err := os.ReadFile(file); err == nil {
		_ = json.Unmarshal(data, &entries) // a damaged registry starts afresh
	}
	live := entries[:0]
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(e.Dir, stateFile)); err == nil {
			live = append(live, e)
		}
	}
	entries, err = fn(live)
	if err != nil {
		return err
	}
	data, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o666); err != nil {
		return fmt.Errorf("write port registry: %w", err)
	}
	return os.Rename(tmp, file)
}

func portFree(p uint32) bool {
	for _, host := range []string{"127.0.0.1", ""} {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(p))))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// writeKwokConfig writes the kwokctl configuration that pins a cluster's ports.
func writeKwokConfig(path string, p ClusterPorts) error {
	cfg := map[string]any{
		"apiVersion": "config.kwok.x-k8s.io/v1alpha1",
		"kind":       "KwokctlConfiguration",
		"options": map[string]any{
			"etcdPeerPort": p.EtcdPeer, "etcdPort": p.Etcd, "kubeApiserverPort": p.KubeApiserver,
			"kubeControllerManagerPort": p.KubeControllerManager, "kubeSchedulerPort": p.KubeScheduler,
			"kwokControllerPort": p.KwokController,
		},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
