// Package manifests holds qonnect's kustomize bases, embedded so that
// `kubectl qonnect install` renders exactly what `kubectl apply -k` would:
//
//   - namespace:   the qonnect-system namespace
//   - lead:        the lead of one Raft member cluster (Deployment, PVC,
//     Service, ServiceAccount, and the Role a user needs)
//   - agent:       the agent of one cluster (Deployment, ServiceAccount,
//     least-privilege RBAC)
//   - agent-guard: an admission policy that keeps the agent's writes in
//     qonnect's own application namespaces
//
// See README.md in this folder for how to use them without the plugin.
package manifests

import "embed"

// FS holds the bases, each in its own folder with a kustomization.yaml.
//
//go:embed namespace lead agent agent-guard
var FS embed.FS

// The bases, as folder names in FS.
const (
	Namespace  = "namespace"
	Lead       = "lead"
	Agent      = "agent"
	AgentGuard = "agent-guard"
)
