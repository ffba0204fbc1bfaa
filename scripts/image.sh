#!/usr/bin/env bash
# `npm run image`: builds the Dockerfile (unchanged: `docker build` takes the same file) with podman, on a machine
# with no Docker engine and no registry access, and saves the image as an OCI archive.
#   - Base images debian:12 and debian:12-slim are made here with debootstrap from the Debian mirror apt already
#     uses, and imported under their Docker Hub names, so `FROM debian:12` resolves locally (`--pull=never`).
#   - podman runs with its own configuration and storage under the cache (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#     CONTAINERS_REGISTRIES_CONF, --signature-policy): nothing under /etc or /var/lib/containers is changed, except
#     the blob-info cache podman always writes to /var/lib/containers/cache (removed again if it was not there).
#   - The storage keeps the bases and the layer cache of the last build (older builds' layers are pruned), so a second
#     run rebuilds only what changed.
#   - KOA_IMAGE_EXTRA_CA_DIR=DIR (off by default): the build stage's base also trusts DIR/*.crt, for machines whose
#     registry access goes through a TLS-inspecting proxy. Only the build stage: the runtime base stays plain.
#
# usage: scripts/image.sh
# env:   KOA_FIXTURE_CACHE   cache root (default /var/cache/kube-ovn-node-agent); this script uses $KOA_FIXTURE_CACHE/image
#        KOA_IMAGE_TAG       image name (default localhost/kube-ovn-node-agent:dev)
#        KOA_IMAGE_ARCHIVE   OCI archive written (default build/image/kube-ovn-node-agent.oci.tar in the repository)
#        KOA_IMAGE_EXTRA_CA_DIR  see above
# Prints `image.sh: ...` progress lines and, last, one JSON line with the measured times and sizes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${KOA_FIXTURE_CACHE:-/var/cache/kube-ovn-node-agent}/image
tag=${KOA_IMAGE_TAG:-localhost/kube-ovn-node-agent:dev}
archive=${KOA_IMAGE_ARCHIVE:-$repo/build/image/kube-ovn-node-agent.oci.tar}
extra_ca=${KOA_IMAGE_EXTRA_CA_DIR:-}
suite=bookworm
# bump when the base recipe below changes: bases with another value are made again
recipe=1
t0=$(date +%s)
say() { echo "image.sh: $*" >&2; }
die() { say "$*"; exit 1; }

for t in podman debootstrap flock tar; do command -v "$t" >/dev/null || die "missing $t (npm run setup installs it)"; done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, podman's overlay storage)"
mkdir -p "$cache"
# one run at a time per cache (bases and the blob-info cache clean-up are shared)
exec 9>"$cache/lock"
flock 9

# ---- private podman configuration ----
conf=$cache/podman
mkdir -p "$conf/graph" "$conf/run" "$conf/tmp" "$conf/networks" "$conf/runc"
cat >"$conf/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$conf/graph"
runroot = "$conf/run"
EOF
# ulimits: podman's default nofile (1048576) and nproc fail without CAP_SYS_RESOURCE; the hard limit we have works
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
cat >"$conf/containers.conf" <<EOF
[containers]
netns = "host"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
events_logfile_path = "$conf/events.log"
tmp_dir = "$conf/tmp"
[network]
network_config_dir = "$conf/networks"
EOF
# short names (FROM debian:12) resolve to Docker Hub names, which here are only ever local images
cat >"$conf/registries.conf" <<'EOF'
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
[aliases]
"debian" = "docker.io/library/debian"
EOF
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$conf/policy.json"
export CONTAINERS_CONF=$conf/containers.conf CONTAINERS_STORAGE_CONF=$conf/storage.conf
export CONTAINERS_REGISTRIES_CONF=$conf/registries.conf
policy=(--signature-policy "$conf/policy.json")
# RUN steps: runc's state under the cache too (its default is /run/runc)
runc_root=(--runtime-flag "root=$conf/runc")

# podman writes /var/lib/containers/cache/blob-info-cache-v1.boltdb whatever the configuration says
blob_cache=/var/lib/containers/cache/blob-info-cache-v1.boltdb
created=()
for p in /var/lib/containers /var/lib/containers/cache "$blob_cache"; do [ -e "$p" ] || created=("$p" "${created[@]}"); done
# work dirs of runs that were killed (the lock says none is running); --one-file-system: debootstrap mounts /proc and
# /sys inside its target while it runs, and a killed run may leave them mounted
rm -rf --one-file-system "$cache"/tmp.*
work=$(mktemp -d "$cache/tmp.XXXXXX")
cleanup() {
  rm -rf --one-file-system "$work"
  local p
  for p in "${created[@]}"; do
    if [ -d "$p" ]; then rmdir "$p" 2>/dev/null || true; else rm -f "$p"; fi
  done
}
trap cleanup EXIT

label_of() { # image label -> value ('' when the image or label is missing)
  podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# ---- base images ----
base=localhost/koa-base/debian
make_bases() {
  # the mirror and security archive apt uses on this machine (whatever the sources' format)
  local mirror security
  mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' | awk -v s="$suite" '$1 == s { print $2; exit }')
  security=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' | awk -v s="$suite-security" '$1 == s { print $2; exit }')
  [ -n "$mirror" ] || die "no '$suite' archive in apt's sources (apt-get indextargets)"
  local root=$work/rootfs
  say "debootstrap $suite from $mirror"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # apt sources as the Debian image has them, on this machine's mirror
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$suite" "$suite"
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$security" "$suite"
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
  # container settings: no cached .debs or package lists in layers, no translations, no service starts
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
  local changes=(--change 'CMD ["bash"]' --change "LABEL koa.base.recipe=$recipe")
  tar -C "$root" --numeric-owner --xattrs -cf "$work/debian12.tar" .
  podman import -q "${policy[@]}" "${changes[@]}" "$work/debian12.tar" "$base:12" >/dev/null
  # slim: no documentation, man pages or translations, now or in packages installed later
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/groff/* "$root"/usr/share/info/* "$root"/usr/share/lintian/* \
    "$root"/usr/share/linda/* "$root"/usr/share/locale/*
  tar -C "$root" --numeric-owner --xattrs -cf "$work/debian12-slim.tar" .
  podman import -q "${policy[@]}" "${changes[@]}" "$work/debian12-slim.tar" "$base:12-slim" >/dev/null
  rm -rf --one-file-system "$root" "$work"/*.tar
}
tb=$(date +%s)
made_bases=false
if [ "$(label_of "$base:12" koa.base.recipe)" != "$recipe" ] || [ "$(label_of "$base:12-slim" koa.base.recipe)" != "$recipe" ]; then
  make_bases
  made_bases=true
fi
bases_s=$(( $(date +%s) - tb ))

# the build stage's base: plain, or with the extra CA layer
build_base=$base:12
if [ -n "$extra_ca" ]; then
  ls "$extra_ca"/*.crt >/dev/null 2>&1 || die "KOA_IMAGE_EXTRA_CA_DIR=$extra_ca has no *.crt"
  mkdir -p "$work/ca"
  cp "$extra_ca"/*.crt "$work/ca/"
  # ca-certificates (installed by the build stage) merges these into /etc/ssl/certs/ca-certificates.crt;
  # Debian's node/npm read that bundle through NODE_EXTRA_CA_CERTS
  printf 'FROM %s\nCOPY *.crt /usr/local/share/ca-certificates/\nENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\n' \
    "$base:12" >"$work/ca/Containerfile"
  podman build "${policy[@]}" "${runc_root[@]}" --pull=never --quiet -t "$base:12-extra-ca" -f "$work/ca/Containerfile" "$work/ca" >/dev/null
  build_base=$base:12-extra-ca
  say "build stage base trusts $(ls "$extra_ca"/*.crt | wc -l) extra CA certificate(s) from $extra_ca"
fi
podman tag "$build_base" docker.io/library/debian:12
podman tag "$base:12-slim" docker.io/library/debian:12-slim

# ---- the image ----
say "building $tag"
tbuild=$(date +%s)
# --jobs=2: the runtime stage's apt-get runs while the build stage compiles (a cold build waits on both)
podman build "${policy[@]}" "${runc_root[@]}" --pull=never --network=host --layers --jobs=2 -t "$tag" -f "$repo/Dockerfile" "$repo" >"$cache/build.log" 2>&1 ||
  { tail -40 "$cache/build.log" >&2; die "podman build failed (log: $cache/build.log)"; }
build_s=$(( $(date +%s) - tbuild ))
# The layer cache stays bounded: the build stage gets a name too (a cached re-run of the same build, seconds), then
# every image that is neither named nor a parent of a named one goes (older builds' layers, ~300 MB per changed build).
podman build "${policy[@]}" "${runc_root[@]}" --pull=never --network=host --layers --target build -q -t "$tag-build-stage" \
  -f "$repo/Dockerfile" "$repo" >>"$cache/build.log" 2>&1 || die "podman build --target build failed (log: $cache/build.log)"
podman image prune -f >/dev/null

mkdir -p "$(dirname "$archive")"
tsave=$(date +%s)
# the archive is written again only when the image changed (its ID is kept next to it)
id=$(podman image inspect --format '{{ .Id }}' "$tag")
if [ ! -f "$archive" ] || [ "$(cat "$archive.id" 2>/dev/null)" != "$id" ]; then
  rm -f "$archive.tmp" "$archive.id"
  podman save -q "${policy[@]}" --format oci-archive -o "$archive.tmp" "$tag" >/dev/null
  mv -f "$archive.tmp" "$archive"
  echo "$id" >"$archive.id"
fi
save_s=$(( $(date +%s) - tsave ))
size=$(podman image inspect --format '{{ .Size }}' "$tag")
layers=$(podman image inspect --format '{{ len .RootFS.Layers }}' "$tag")
asize=$(stat -c %s "$archive")
say "$tag: $((size / 1000000)) MB in $layers layers; $archive: $((asize / 1000000)) MB"
printf '{"tag":"%s","archive":"%s","image_bytes":%s,"archive_bytes":%s,"layers":%s,"bases_made":%s,"bases_s":%s,"build_s":%s,"save_s":%s,"total_s":%s}\n' \
  "$tag" "$archive" "$size" "$asize" "$layers" "$made_bases" "$bases_s" "$build_s" "$save_s" "$(( $(date +%s) - t0 ))"
