// Package version is the build's version, set by the Makefile with -ldflags.
package version

import "runtime"

// Set at build time: -X qonnect.io/qonnect/internal/version.Version=v0.1.0
var (
	Version = "dev"
	Commit  = "unknown"
)

// Info is what `version -o json` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build's version information.
func Get() Info {
	return Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}
