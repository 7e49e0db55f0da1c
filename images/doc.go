// Package images holds the container images of the in-cluster programs,
// one Dockerfile per binary (qonnect-lead, qonnect-agent), built by
// `make images`. The package has no code: its test builds the images with
// that target and runs them.
package images
