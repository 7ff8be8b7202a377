//go:build tools

// Package tools pins cert-manager's controller. v1.11 is the last release whose
// cmd/controller lives in the root module, so the module proxy can serve it
// (see docs/development.md); hack/build-tools.sh builds it from this module.
package tools

import _ "github.com/cert-manager/cert-manager/cmd/controller"
