//go:build tools

// Package tools pins Prometheus; hack/build-tools.sh builds its promtool (the tests check and
// unit-test the operator's alerting rules with it).
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
