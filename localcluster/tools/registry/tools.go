//go:build tools

// Package tools pins the distribution registry (the OCI registry the release tests push to and
// the real node pulls from); hack/build-tools.sh builds its cmd/registry from this module.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
