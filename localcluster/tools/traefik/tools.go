//go:build tools

// Package tools pins github.com/traefik/traefik/v3, the ingress controller of the local
// cluster (its Kubernetes Ingress provider serves the portal's Ingress in `make demo` and the
// e2e tests); hack/build-tools.sh builds github.com/traefik/traefik/v3/cmd/traefik from this
// module.
//
// v3.6.12: the v3.7 releases pull in github.com/ucloud/ucloud-sdk-go (through lego v5's DNS
// providers), which the Go module proxy does not serve (403), and replace a module of their
// own by a local path.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
