#!/usr/bin/env bash
# Builds the Go tools of the local cluster from the modules pinned under localcluster/tools/,
# caches each build under $ES4PS_CACHE/bin/<tool>-<version>-<hash>/ and links the
# binaries into .local/bin/. A build is reused while its inputs (go.mod, go.sum,
# sources, Go version, flags) are unchanged, so a second clone does not rebuild.
#
#   hack/build-tools.sh            build/link what the real-node cluster and `make demo` run
#   hack/build-tools.sh kwok kind  only these: the tools only some tests or `make release` use
#                                  (kwok, promtool, seaweedfs, kind, registry, cosign, syft) are built when first needed
#                                  (es4ps_localcluster.tools.ensure), then cached like the others
# Two checkouts asking for the same tool at once build it once (a lock per tool).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools_dir=$root/localcluster/tools
cache=${ES4PS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/es4ps}
bindir=$root/.local/bin
mkdir -p "$cache/bin" "$bindir"
export GOFLAGS=-trimpath GOTOOLCHAIN=local

# module version required by a tool's go.mod, e.g. "v1.34.4"
required_version() { awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m {print $2}' "$tools_dir/$1/go.mod" | head -n1; }

# tool -> "binary=package" pairs and ldflags
plan() {
  local k8s helm cm
  case $1 in
    kubernetes)
      k8s=$(required_version kubernetes k8s.io/kubernetes)
      local minor=${k8s#v1.}; minor=${minor%%.*}
      ldflags="-s -w"
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
      done
      targets="kube-apiserver=./cmd/kube-apiserver kube-controller-manager=./cmd/kube-controller-manager
               kube-scheduler=./cmd/kube-scheduler kubelet=./cmd/kubelet kube-proxy=./cmd/kube-proxy
               kubectl=./cmd/kubectl"
      version=$k8s ;;
    etcd)
      version=$(required_version etcd go.etcd.io/etcd/server/v3); ldflags="-s -w"; targets="etcd=." ;;
    kwok)
      version=$(required_version kwok sigs.k8s.io/kwok)
      ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$version"; targets="kwok=sigs.k8s.io/kwok/cmd/kwok" ;;
    helm)
      helm=$(required_version helm helm.sh/helm/v3); version=$helm
      # helm's own Makefile stamps the version and the Kubernetes minor it was built for
      k8s=$(cd "$tools_dir/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
      local minor=${k8s#v0.}; minor=${minor%%.*}
      ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm"
      for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
      done
      targets="helm=helm.sh/helm/v3/cmd/helm" ;;
    cert-manager)
      cm=$(required_version cert-manager github.com/cert-manager/cert-manager); version=$cm
      ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$cm"
      targets="cert-manager-controller=github.com/cert-manager/cert-manager/cmd/controller" ;;
    kind)
      version=$(required_version kind sigs.k8s.io/kind); ldflags="-s -w"; targets="kind=sigs.k8s.io/kind" ;;
    pause)
      # the node's sandbox image: a static binary, no module to pin
      version=v1; ldflags="-s -w"; targets="pause=."; cgo=0 ;;
    coredns)
      version=$(required_version coredns github.com/coredns/coredns); ldflags="-s -w"; targets="coredns=." ;;
    kube-router)
      # only its network policy controller runs (the real node's NetworkPolicies)
      version=$(required_version kube-router github.com/cloudnativelabs/kube-router/v2)
      ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$version"
      targets="kube-router=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"; cgo=0 ;;
    promtool)
      # checks and unit-tests the operator's alerting rules
      version=$(required_version promtool github.com/prometheus/prometheus); ldflags="-s -w"
      targets="promtool=github.com/prometheus/prometheus/cmd/promtool" ;;
    seaweedfs)
      # the S3-compatible server of the backup tests
      version=$(required_version seaweedfs github.com/seaweedfs/seaweedfs); ldflags="-s -w"
      targets="weed=github.com/seaweedfs/seaweedfs/weed" ;;
    registry)
      # the OCI registry the release tests push to and the real node pulls from (es4ps_localcluster.registry)
      version=$(required_version registry github.com/distribution/distribution/v3)
      ldflags="-s -w -X github.com/distribution/distribution/v3/version.version=$version"
      targets="registry=github.com/distribution/distribution/v3/cmd/registry"; cgo=0 ;;
    cosign)
      # signs the released images and their SBOMs (key-based)
      version=$(required_version cosign github.com/sigstore/cosign/v2)
      ldflags="-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$version"
      targets="cosign=github.com/sigstore/cosign/v2/cmd/cosign"; cgo=0 ;;
    syft)
      # the SBOM of each released image (Debian and Python packages)
      version=$(required_version syft github.com/anchore/syft)
      ldflags="-s -w -X main.version=$version"; targets="syft=github.com/anchore/syft/cmd/syft"; cgo=0 ;;
    traefik)
      # the ingress controller, a static binary in a FROM scratch image (es4ps_localcluster.ingress)
      version=$(required_version traefik github.com/traefik/traefik/v3)
      ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version"
      targets="traefik=github.com/traefik/traefik/v3/cmd/traefik"; cgo=0 ;;
    *) echo "unknown tool: $1" >&2; return 1 ;;
  esac
}

# where a tool's build is cached: its version and a hash of everything the build reads
cache_dir() {
  local tool=$1 key
  key=$( { go version; echo "$ldflags $targets${cgo:+ cgo=$cgo}"; cd "$tools_dir/$tool" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -c1-12)
  echo "$cache/bin/$tool-$version-$key"
}

# Download the modules a tool's build needs, in the background: the downloads (network) of the
# next tools overlap the compiling (CPU) of the current one.
prefetch() {
  local tool=$1 ldflags targets version cgo=
  plan "$tool"
  [ ! -f "$(cache_dir "$tool")/.complete" ] || return 0
  local packages=()
  for t in $targets; do packages+=("${t#*=}"); done
  (cd "$tools_dir/$tool" && go list -deps "${packages[@]}" >/dev/null 2>&1 || true) &
}

build_tool() {
  local tool=$1 ldflags targets version cgo=
  plan "$tool"
  local src=$tools_dir/$tool
  local dest
  dest=$(cache_dir "$tool")
  (
    flock 9
    if [ ! -f "$dest/.complete" ]; then
      echo "building $tool $version (cached afterwards in $dest)" >&2
      start=$SECONDS
      tmp=$(mktemp -d "$cache/bin/.$tool.XXXXXX")
      packages=() same_names=1
      for t in $targets; do
        packages+=("${t#*=}")
        [ "${t%%=*}" = "$(basename "${t#*=}")" ] || same_names=
      done
      if [ ${#packages[@]} -gt 1 ] && [ -n "$same_names" ]; then
        # one go command for several binaries: shared packages compiled once, the links in parallel
        (cd "$src" && env ${cgo:+CGO_ENABLED=$cgo} go build -ldflags "$ldflags" -o "$tmp/" "${packages[@]}")
      else
        for t in $targets; do
          (cd "$src" && env ${cgo:+CGO_ENABLED=$cgo} go build -ldflags "$ldflags" -o "$tmp/${t%%=*}" "${t#*=}")
        done
      fi
      touch "$tmp/.complete"
      rm -rf "$dest"; mv "$tmp" "$dest"
      echo "built $tool in $((SECONDS - start)) s" >&2
    fi
  ) 9>"$cache/bin/.$tool.lock"
  for t in $targets; do ln -sfn "$dest/${t%%=*}" "$bindir/${t%%=*}"; done
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(kubernetes etcd helm cert-manager coredns pause kube-router traefik)
for tool in "${tools[@]}"; do
  [ -d "$tools_dir/$tool" ] || { echo "unknown tool: $tool (no localcluster/tools/$tool)" >&2; exit 1; }
done
if [ ${#tools[@]} -gt 1 ]; then
  for tool in "${tools[@]:1}"; do prefetch "$tool"; done
fi
for tool in "${tools[@]}"; do build_tool "$tool"; done
wait
