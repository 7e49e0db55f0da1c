// Package install is `kubectl qonnect install lead|agent` and `uninstall`:
// it renders the kustomize bases of package manifests for one cluster,
// issues that cluster's certificates from the federation CA, and applies
// everything with server-side apply (field manager "qonnect").
//
// # Certificates
//
// The first lead's install (the first ID of --peers) creates the federation
// CA and keeps it in the Secret qonnect-ca of its namespace. Every other
// install reads the CA from there (--ca-context names that cluster's kube
// context), so the CA key stays in one cluster and the person installing
// needs no file. A certificate already in a cluster is kept as long as it
// comes from that CA, names the right identity, covers the wanted hosts
// and has more than 30 days left; so re-running install changes nothing,
// and re-running it within the last 30 days rotates the certificate
// (leads and agents reload it from the mounted Secret).
//
// # The agent's permissions
//
// The agent applies the objects of the components placed on its cluster,
// in each application's namespace, and creates that namespace when it is
// missing. RBAC cannot express "only in namespaces the agent created":
// a Role bound per namespace would have to be created by the agent, and
// creating RoleBindings needs either every permission they grant in that
// namespace or the bind verb — which, granted cluster-wide, lets the agent
// bind itself anywhere, kube-system included, so nothing is gained. So:
//
//   - a ClusterRole that names exactly what the agent does: read nodes and
//     pods; get, create and patch namespaces (never delete); create
//     Events; and, for a fixed list of kinds a component may carry
//     (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Services,
//     ConfigMaps, ServiceAccounts, PVCs, Ingresses, NetworkPolicies, HPAs,
//     PDBs), get/list/watch/create/patch/delete. Secrets are left out on
//     purpose: get on Secrets cluster-wide is every key in the cluster,
//     the federation CA's included. A component that needs another kind
//     fails with a clear "forbidden" Event until the operator binds one
//     more ClusterRole to the qonnect-agent ServiceAccount.
//   - a Role in its own namespace for its election Lease only.
//   - agent-guard, a ValidatingAdmissionPolicy (Kubernetes 1.30+, on by
//     default, --namespace-guard=false to leave it out), which narrows every
//     write the agent makes to namespaces labelled
//     app.kubernetes.io/managed-by=qonnect, the label the agent puts on the
//     namespaces it creates. Without it, the ClusterRole would let the
//     agent start a pod in kube-system, or in qonnect-system and mount the
//     CA from there. Reads are not admission-controlled: the agent can
//     still read its kinds everywhere, which is why Secrets are not among
//     them.
package install
