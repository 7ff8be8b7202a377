//go:build tools

// Package tools pins kind, for `make e2e-kind` on machines with Docker and registry
// access; hack/build-tools.sh builds sigs.k8s.io/kind from this module on demand.
package tools

import _ "sigs.k8s.io/kind"
