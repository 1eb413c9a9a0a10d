package cli

import "runtime/debug"

// version is tutti's version as the Go toolchain recorded it in the binary:
// the module version of a `go install …@vX.Y.Z`, or the one `go build`
// derives from the git checkout (a tag, or a pseudo-version of the commit,
// "+dirty" with uncommitted changes); "devel" when neither is known
// (-buildvcs=false, or no git).
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "devel"
	}
	return info.Main.Version
}
