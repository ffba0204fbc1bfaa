#!/usr/bin/env bash
# Local container images for the real-node bed (integration/realnode): there is no registry to pull from, so the
# two images its pods use are assembled here as single-layer OCI archives that `ctr images import` takes:
#   pause    registry.k8s.io/pause:3.10         scripts/images/pause.c, static (the CRI sandbox image)
#   busybox  docker.io/library/busybox:local    Debian's busybox-static with a link per applet (the pods' image)
# Pods name them with imagePullPolicy: Never. Output: $CACHE/images/{pause,busybox}.tar; idempotent (a stamp holds
# the hash of this script and of the inputs, so a second run only checks).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE="${KOA_FIXTURE_CACHE:-/var/cache/kube-ovn-node-agent}"
OUT="$CACHE/images"
BUSYBOX=${BUSYBOX:-/bin/busybox}
mkdir -p "$OUT"
[ -x "$BUSYBOX" ] || { echo "build-images: $BUSYBOX missing (apt-get install busybox-static)" >&2; exit 1; }

inputs=$(cat "$0" "$here/images/pause.c" "$BUSYBOX" | sha256sum)
inputs=${inputs%% *}
if [ -f "$OUT/pause.tar" ] && [ -f "$OUT/busybox.tar" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$inputs" ]; then
  echo "images ready in $OUT"
  exit 0
fi

work=$(mktemp -d /tmp/koa-images-XXXXXX)
trap 'rm -rf -- "$work"' EXIT

sha() { local s; s=$(sha256sum "$1"); printf '%s' "${s%% *}"; }
size() { stat -c %s "$1"; }

# oci_archive <rootfs dir> <image name> <config "config" object JSON> <output tar>
oci_archive() {
  local root=$1 name=$2 cfg=$3 out=$4 d layer_sha layer_size config_sha config_size manifest_sha manifest_size
  d=$(mktemp -d "$work/oci-XXXXXX")
  mkdir -p "$d/blobs/sha256"
  # reproducible layer: sorted, owned by root, fixed mtime
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$d/layer.tar" .
  layer_sha=$(sha "$d/layer.tar"); layer_size=$(size "$d/layer.tar")
  mv "$d/layer.tar" "$d/blobs/sha256/$layer_sha"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$cfg" "$layer_sha" > "$d/config.json"
  config_sha=$(sha "$d/config.json"); config_size=$(size "$d/config.json")
  mv "$d/config.json" "$d/blobs/sha256/$config_sha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_sha" "$config_size" "$layer_sha" "$layer_size" > "$d/manifest.json"
  manifest_sha=$(sha "$d/manifest.json"); manifest_size=$(size "$d/manifest.json")
  mv "$d/manifest.json" "$d/blobs/sha256/$manifest_sha"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_sha" "$manifest_size" "$name" "${name##*:}" > "$d/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$d/oci-layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d" -cf "$out.tmp" oci-layout index.json blobs
  mv -f "$out.tmp" "$out"
}

# pause
mkdir -p "$work/pause"
gcc -static -Os -s -o "$work/pause/pause" "$here/images/pause.c"
oci_archive "$work/pause" registry.k8s.io/pause:3.10 '{"Entrypoint":["/pause"]}' "$OUT/pause.tar"

# busybox: /bin/busybox plus one relative link per applet (busybox --list prints the names)
mkdir -p "$work/busybox/bin" "$work/busybox/tmp" "$work/busybox/etc"
install -m 0755 "$BUSYBOX" "$work/busybox/bin/busybox"
applets=$("$BUSYBOX" --list)
while IFS= read -r a; do
  [ -n "$a" ] && [ "$a" != busybox ] && ln -sf busybox "$work/busybox/bin/$a"
done <<< "$applets"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/busybox/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/busybox/etc/group"
chmod 1777 "$work/busybox/tmp"
oci_archive "$work/busybox" docker.io/library/busybox:local '{"Env":["PATH=/bin"],"Cmd":["sh"]}' "$OUT/busybox.tar"

echo "$inputs" > "$OUT/stamp"
echo "images built in $OUT: pause.tar ($(size "$OUT/pause.tar") B), busybox.tar ($(size "$OUT/busybox.tar") B)"
