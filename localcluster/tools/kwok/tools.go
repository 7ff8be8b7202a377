//go:build tools

// Package tools pins sigs.k8s.io/kwok (simulated nodes for the local cluster);
// hack/build-tools.sh builds sigs.k8s.io/kwok/cmd/kwok from this module.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
