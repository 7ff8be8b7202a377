//go:build tools

// Package tools pins SeaweedFS; hack/build-tools.sh builds its `weed` binary, the S3-compatible
// server the backup tests store archives in.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
