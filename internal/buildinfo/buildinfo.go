// Package buildinfo says which ssogate this is: the version, the commit it
// was built from, the commit's time and the Go version, read from the
// module's build information (runtime/debug.ReadBuildInfo). A release build
// may set the version explicitly:
//
//	go build -ldflags "-X github.com/ssogate/ssogate/internal/buildinfo.version=v1.2.3" ./cmd/ssogate
//
// and the commit (buildinfo.revision) where the VCS stamp is missing, as in
// a container build without .git.
// Without that, `go install …@v1.2.3` reports v1.2.3 and a build from a
// clone reports "devel" with the commit from the VCS stamp.
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and revision override the build information when set with
// -ldflags -X.
var version, revision string

// Info describes the running binary. Empty fields are unknown.
type Info struct {
	Version   string // e.g. v1.2.3, or "devel"
	Revision  string // VCS commit, with "-dirty" when the tree was modified
	Time      string // commit time, RFC 3339
	GoVersion string
}

// Get reads the build information of the running binary.
func Get() Info {
	info := Info{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		info.Version, info.Revision = cmp.Or(info.Version, "devel"), revision
		return info
	}
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && info.Revision != "" {
		info.Revision += "-dirty"
	}
	if revision != "" {
		info.Revision = revision
	}
	return info
}

// String is what `ssogate version` prints: one "name value" line each.
func (i Info) String() string {
	return fmt.Sprintf("version  %s\ncommit   %s\ndate     %s\ngo       %s\n",
		i.Version, orUnknown(i.Revision), orUnknown(i.Time), i.GoVersion)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
