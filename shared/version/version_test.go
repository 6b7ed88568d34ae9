package version_test

import (
	"regexp"
	"runtime"
	"testing"

	"github.com/camelot/lancelot/shared/version"
)

func TestGet(t *testing.T) {
	info := version.Get()
	if info.Version != version.Version || info.Go != runtime.Version() || info.Revision == "" {
		t.Errorf("Get() = %+v, want version %s, go %s and a revision", info, version.Version, runtime.Version())
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(version.Version) {
		t.Errorf("Version %q is not x.y.z", version.Version)
	}
}

func TestString(t *testing.T) {
	info := version.Info{Version: "1.2.3", Revision: "abc", Modified: true, Go: "go1.99"}
	if got, want := info.String(), "1.2.3 (revision abc, modified: true, go1.99)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
