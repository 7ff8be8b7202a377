// Command coredns is upstream CoreDNS with its standard plugin set; the local
// real node runs it as a host process serving the cluster domain.
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // the standard plugins
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
