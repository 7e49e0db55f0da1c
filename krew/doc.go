// Package krew holds the krew plugin manifest of kubectl-qonnect
// (qonnect.yaml, rendered by hack/dist.sh from the release-bot template
// ../.krew.yaml). The package has no code: its tests validate the manifest
// and install the plugin with krew from the archives `make dist` builds.
package krew
