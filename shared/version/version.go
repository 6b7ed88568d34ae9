// Package version says which lancelot this is: the release, a constant
// bumped per release (see CHANGELOG.md), and the build's VCS revision and
// Go version, read from the build info the Go toolchain embeds.
//
// Not a public API: this package serves the lancelot binary only.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is this release. Bump it, and add its entry to CHANGELOG.md, in
// the commit that makes a release.
const Version = "0.4.0"

// Info describes a build.
type Info struct {
	// Version is the release (Version).
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from; "unknown" when
	// it was built outside a checkout (go build -buildvcs=false, an
	// archive).
	Revision string `json:"revision"`
	// Modified reports whether the checkout had uncommitted changes.
	Modified bool `json:"modified"`
	// Go is the Go version that built it.
	Go string `json:"go"`
}

// Get returns this binary's Info.
func Get() Info {
	info := Info{Version: Version, Revision: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one-line form `lancelot version` prints:
// "0.3.0 (revision 6aa9f0d…, modified: false, go1.26.8)".
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, modified: %t, %s)", i.Version, i.Revision, i.Modified, i.Go)
}
