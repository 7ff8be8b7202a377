//go:build tools

// Package tools pins github.com/cloudnativelabs/kube-router, whose network policy
// controller (iptables + ipset) enforces NetworkPolicies on the real node of the
// local cluster, since its bridge CNI does not; hack/build-tools.sh builds
// github.com/cloudnativelabs/kube-router/v2/cmd/kube-router from this module.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
