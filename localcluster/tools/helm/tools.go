//go:build tools

// Package tools pins helm v3; hack/build-tools.sh builds helm.sh/helm/v3/cmd/helm from this module.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
