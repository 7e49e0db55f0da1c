#!/usr/bin/env bash
# Builds the sandbox's testbed binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok, kwokctl, and krew on request) from the pinned tools
# modules under tools/testbed, into a cache folder outside the work tree keyed by
# version. A second run builds nothing.
#
# Usage: hack/testbed.sh [--with-krew] [--print-dir]
# Prints progress on stderr and, at the end, the folder of the binaries on stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QONNECT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qonnect}
want_krew=0
print_only=0
for a in "$@"; do
  case "$a" in
    --with-krew) want_krew=1 ;;
    --print-dir) print_only=1 ;;
    *) echo "testbed.sh: unknown argument $a" >&2; exit 1 ;;
  esac
done

# version MODULE_DIR MODULE_PATH: the version a tools module requires.
version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$root/tools/testbed/$1/go.mod"
}

kube_v=$(version kubernetes k8s.io/kubernetes)
etcd_v=$(version etcd go.etcd.io/etcd/server/v3)
kwok_v=$(version kwok sigs.k8s.io/kwok)
krew_v=$(version krew sigs.k8s.io/krew)
gov=$(go env GOVERSION)
key="kubernetes-${kube_v}_etcd-${etcd_v}_kwok-${kwok_v}_krew-${krew_v}_${gov}"
bin="$cache/testbed/$key"

if [ "$print_only" = 1 ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"

# build MODULE_DIR PACKAGE BINARY
build() {
  local dir=$1 pkg=$2 name=$3
  if [ -x "$bin/$name" ]; then return 0; fi
  local start=$SECONDS
  echo "testbed: building $name from $pkg (minutes on a cold machine)..." >&2
  # Build to a temporary name first so an interrupted build never looks finished.
  (cd "$root/tools/testbed/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/.$name.tmp" "$pkg")
  mv "$bin/.$name.tmp" "$bin/$name"
  echo "testbed: built $name in $((SECONDS - start))s" >&2
}

build etcd go.etcd.io/etcd/server/v3 etcd
build kwok sigs.k8s.io/kwok/cmd/kwok kwok
build kwok sigs.k8s.io/kwok/cmd/kwokctl kwokctl
build kubernetes k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver
build kubernetes k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager
build kubernetes k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler
if [ "$want_krew" = 1 ]; then
  build krew sigs.k8s.io/krew/cmd/krew krew
  build krew sigs.k8s.io/krew/cmd/validate-krew-manifest validate-krew-manifest
fi
echo "$bin"
