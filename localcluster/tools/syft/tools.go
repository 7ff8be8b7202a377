//go:build tools

// Package tools pins syft; hack/build-tools.sh builds its cmd/syft from this module.
package tools

import _ "github.com/anchore/syft/cmd/syft"
