#!/usr/bin/env bash
# Builds the Go test fixtures (kube-apiserver, etcd, cnitool; kubelet, kube-ovn-controller, Multus' thin `multus`
# and thick `multus-daemon` + `multus-shim` for the real-node bed) from the Go module proxy into a cache
# outside the repository. Idempotent: a fixture whose stamp matches its pinned version is not rebuilt.
# The product contains no Go; these binaries only serve the integration test bed.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"        # kube-apiserver; its go.mod pins etcd server v3.6.5
CNI_VERSION="${CNI_VERSION:-v1.3.0}"         # cnitool
CACHE="${KOA_FIXTURE_CACHE:-/var/cache/kube-ovn-node-agent}"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/src"

need_go() {
  command -v go >/dev/null 2>&1 || { echo "build-fixtures: the Go toolchain is needed to build the test fixtures (not found on PATH or in /usr/local/go/bin)" >&2; exit 1; }
}
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi

stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/$1.version" 2>/dev/null)" = "$2" ]; }

k8s_minor="${K8S_VERSION#v1.}"                 # 35.4 -> staging modules are v0.35.4
staging_version="v0.${k8s_minor}"

if ! stamp_ok kube-apiserver "$K8S_VERSION+v2" || ! stamp_ok etcd "$K8S_VERSION"; then
  need_go
  mod="$CACHE/src/k8s-$K8S_VERSION"
  mkdir -p "$mod"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths, which a dependent module cannot
  # use: the usual remedy is a wrapper module that pins each staging module to its published v0.x.y.
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" > "$mod/download.json"
  kdir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$mod/download.json")
  # etcd: exactly the server version this Kubernetes release pins in its own go.mod
  etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$kdir/go.mod")
  {
    echo "module koa.local/fixtures"
    echo
    echo "go 1.25.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $etcd_version"
    echo ")"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$kdir/go.mod" | awk '/=> \.\/staging/ {print "\t" $1 " => " $1 " '"$staging_version"'"}'
    echo ")"
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'GO'
//go:build tools

package fixtures

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
GO
  ( cd "$mod"
    go mod tidy
    echo "building kube-apiserver $K8S_VERSION (first time: several minutes on 2 cores)"
    # Stamp the version as the Kubernetes release build does: the apiserver derives its emulation version from it.
    vpkg=k8s.io/component-base/version
    minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    echo "building etcd (the version kube-apiserver $K8S_VERSION pins)"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$K8S_VERSION+v2" > "$BIN/kube-apiserver.version"
  echo "$K8S_VERSION" > "$BIN/etcd.version"
fi

# kubelet: the real-node bed (integration/realnode). Its own wrapper module with the same staging pins, so the
# kube-apiserver module above and its stamp stay as they are.
if ! stamp_ok kubelet "$K8S_VERSION"; then
  need_go
  mod="$CACHE/src/kubelet-$K8S_VERSION"
  mkdir -p "$mod"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" > "$mod/download.json"
  kdir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$mod/download.json")
  {
    echo "module koa.local/kubelet"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$kdir/go.mod" | awk '/=> \.\/staging/ {print "\t" $1 " => " $1 " '"$staging_version"'"}'
    echo ")"
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'GO'
//go:build tools

package fixtures

import _ "k8s.io/kubernetes/cmd/kubelet"
GO
  ( cd "$mod"
    go mod tidy
    echo "building kubelet $K8S_VERSION (first time: about 8 min on 2 idle cores)"
    vpkg=k8s.io/component-base/version
    minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
    t=$(date +%s)
    GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags="$ldflags" -o "$BIN/kubelet" k8s.io/kubernetes/cmd/kubelet
    echo "kubelet built in $(( $(date +%s) - t )) s"
  )
  echo "$K8S_VERSION" > "$BIN/kubelet.version"
fi

# Upstream releases kept in ../shared/upstream (the Go module proxy does not serve these two modules); built only
# as test-bed fixtures, their sources stay in the cache. Their Go dependencies come from the module proxy.
# ../shared/upstream beside the repository; a git worktree elsewhere falls back to /work/shared/upstream.
UPSTREAM="${KOA_UPSTREAM_DIR:-$(cd "$(dirname "$0")/.." && pwd)/../shared/upstream}"
[ -d "$UPSTREAM" ] || [ -n "${KOA_UPSTREAM_DIR:-}" ] || UPSTREAM=/work/shared/upstream
KUBE_OVN_VERSION="${KUBE_OVN_VERSION:-v1.16.2}"
MULTUS_VERSION="${MULTUS_VERSION:-v4.3.0}"

# unpack_upstream <archive> <dir>: the archive's single top directory becomes <dir> (fresh each time it is needed).
unpack_upstream() {
  [ -f "$1" ] || { echo "build-fixtures: $1 not found (see ../shared/upstream/README.md)" >&2; exit 1; }
  rm -rf "$2" "$2.tmp"
  mkdir -p "$2.tmp"
  tar -xzf "$1" -C "$2.tmp" --strip-components=1
  mv "$2.tmp" "$2"
}

# The upstream fixtures (the real kube-ovn-controller, upstream's daemon and CNI executable, Multus) are built by
# default, so that CI runs the tests that need them; KOA_BUILD_UPSTREAM=0 skips them (those tests then report as
# skipped, with the reason). First time, with empty Go build and module caches (2 cores, at nice 19 beside other
# work, load average 2-4, 2026-12-03): kube-ovn-controller 367 s (497 CPU-s), kube-ovn-daemon 36 s, kube-ovn 3 s,
# multus 167 s; 573 s in all.
# the unpacked release stays in the cache: the bed reads its OVN schemas, CRDs and ClusterRole at test time
src="$CACHE/src/kube-ovn-$KUBE_OVN_VERSION"
if [ "${KOA_BUILD_UPSTREAM:-1}" = 1 ] && { ! stamp_ok kube-ovn-controller "$KUBE_OVN_VERSION" || [ ! -f "$src/charts/kube-ovn/templates/kube-ovn-crd.yaml" ]; }; then
  need_go
  unpack_upstream "$UPSTREAM/kube-ovn-$KUBE_OVN_VERSION.tar.gz" "$src"
  echo "building kube-ovn-controller $KUBE_OVN_VERSION (first time: about 10 min on 2 cores)"
  t=$(date +%s)
  # The binary picks its role from its file name: it must stay kube-ovn-controller.
  ( cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags='-s -w' -o "$BIN/kube-ovn-controller" ./cmd/controller )
  echo "kube-ovn-controller built in $(( $(date +%s) - t )) s"
  echo "$KUBE_OVN_VERSION" > "$BIN/kube-ovn-controller.version"
fi

# Upstream's node daemon and its CNI executable, from the same release: the reference for the side-by-side bench
# (`npm run bench -- vs-upstream`) and the differential test (integration/upstream/). The executable sits alone in a
# dir of its own, as `kube-ovn`, so a conflist's CNI_PATH can point at it.
if [ "${KOA_BUILD_UPSTREAM:-1}" = 1 ] && { ! stamp_ok kube-ovn-daemon "$KUBE_OVN_VERSION" || [ ! -x "$BIN/upstream-cni/kube-ovn" ]; }; then
  need_go
  [ -f "$src/go.mod" ] || unpack_upstream "$UPSTREAM/kube-ovn-$KUBE_OVN_VERSION.tar.gz" "$src"
  echo "building kube-ovn-daemon and kube-ovn (CNI) $KUBE_OVN_VERSION"
  t=$(date +%s)
  mkdir -p "$BIN/upstream-cni"
  ( cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags='-s -w' -o "$BIN/kube-ovn-daemon" ./cmd/daemon \
      && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags='-s -w' -o "$BIN/upstream-cni/kube-ovn" ./cmd/cni )
  echo "kube-ovn-daemon and kube-ovn built in $(( $(date +%s) - t )) s"
  echo "$KUBE_OVN_VERSION" > "$BIN/kube-ovn-daemon.version"
fi

src="$CACHE/src/multus-cni-$MULTUS_VERSION"   # its deployments/multus-daemonset.yml holds the NAD CRD
if [ "${KOA_BUILD_UPSTREAM:-1}" = 1 ] && { ! stamp_ok multus "$MULTUS_VERSION" || [ ! -f "$src/deployments/multus-daemonset.yml" ]; }; then
  need_go
  unpack_upstream "$UPSTREAM/multus-cni-$MULTUS_VERSION.tar.gz" "$src"
  echo "building multus $MULTUS_VERSION (thin plugin)"
  t=$(date +%s)
  ( cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags='-s -w' -o "$BIN/multus" ./cmd/multus )
  echo "multus built in $(( $(date +%s) - t )) s"
  echo "$MULTUS_VERSION" > "$BIN/multus.version"
fi

# Multus' thick plugin from the same release: multus-daemon (runs in the node, serves the CNI requests) and
# multus-shim (the CNI executable the node's conflist names; it forwards each request to the daemon's socket).
# Each builds to a temporary name and is moved into place, because other test runs read the cache meanwhile.
if [ "${KOA_BUILD_UPSTREAM:-1}" = 1 ] && { ! stamp_ok multus-daemon "$MULTUS_VERSION" || ! stamp_ok multus-shim "$MULTUS_VERSION"; }; then
  need_go
  [ -f "$src/go.mod" ] || unpack_upstream "$UPSTREAM/multus-cni-$MULTUS_VERSION.tar.gz" "$src"
  for cmd in multus-daemon multus-shim; do
    echo "building $cmd $MULTUS_VERSION (thick plugin)"
    t=$(date +%s)
    ( cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags='-s -w' -o "$BIN/.$cmd.tmp" "./cmd/$cmd" )
    mv "$BIN/.$cmd.tmp" "$BIN/$cmd"
    echo "$cmd built in $(( $(date +%s) - t )) s"
    echo "$MULTUS_VERSION" > "$BIN/$cmd.version"
  done
fi

if ! stamp_ok cnitool "$CNI_VERSION"; then
  need_go
  GOBIN="$BIN" CGO_ENABLED=0 go install "github.com/containernetworking/cni/cnitool@$CNI_VERSION"
  echo "$CNI_VERSION" > "$BIN/cnitool.version"
fi

# NetworkManager for the underlay's NetworkManager test (integration/node/underlay-nm.test.ts): Debian's package and
# the libraries it needs beyond this machine's, unpacked into the cache, not installed (installing it upgrades systemd
# and adds udev on the host). The test runs it inside a node namespace, on a private D-Bus.
NM_PKGS=(network-manager libnm0 libndp0 libteamdctl0 libmm-glib0 libbluetooth3 libnewt0.52)
nm_dir="$CACHE/network-manager"
nm_stamp="${NM_PKGS[*]} v1"
if [ ! -x "$nm_dir/root/usr/sbin/NetworkManager" ] || [ "$(cat "$nm_dir/stamp" 2>/dev/null)" != "$nm_stamp" ]; then
  rm -rf "$nm_dir.tmp"; mkdir -p "$nm_dir.tmp/debs"
  # a machine whose package lists were never fetched cannot download: fetch them once and try again
  ( cd "$nm_dir.tmp/debs" && { apt-get download "${NM_PKGS[@]}" 2>/dev/null || { apt-get update -qq && apt-get download "${NM_PKGS[@]}"; }; } )
  for d in "$nm_dir.tmp/debs"/*.deb; do dpkg -x "$d" "$nm_dir.tmp/root"; done
  nm_ldd=$(LD_LIBRARY_PATH="$nm_dir.tmp/root/usr/lib/x86_64-linux-gnu" ldd "$nm_dir.tmp/root/usr/sbin/NetworkManager")
  if [[ "$nm_ldd" == *"not found"* ]]; then echo "build-fixtures: NetworkManager lacks libraries:" >&2; printf '%s\n' "$nm_ldd" >&2; exit 1; fi
  echo "$nm_stamp" > "$nm_dir.tmp/stamp"
  rm -rf "$nm_dir"; mv "$nm_dir.tmp" "$nm_dir"
  echo "NetworkManager $(LD_LIBRARY_PATH="$nm_dir/root/usr/lib/x86_64-linux-gnu" "$nm_dir/root/usr/sbin/NetworkManager" --version 2>/dev/null || true) unpacked into $nm_dir"
fi

"$BIN/kube-apiserver" --version
# No pipeline into an early-exiting reader (pipefail + SIGPIPE made ~40% of runs exit 141): capture, then print.
etcd_version_out=$("$BIN/etcd" --version)
printf '%s\n' "${etcd_version_out%%$'\n'*}"
echo "fixtures ready in $BIN"
