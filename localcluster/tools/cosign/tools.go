//go:build tools

// Package tools pins cosign; hack/build-tools.sh builds its cmd/cosign from this module.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
