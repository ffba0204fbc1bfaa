#!/usr/bin/env bash
# One idempotent setup for a fresh Debian 12 machine of this kind, as root:
# system packages, Go test fixtures (kube-apiserver, etcd, cnitool, kubelet, kube-ovn-controller, Multus thin and
# thick), the real-node bed's local images, npm dependencies, builds.
# A second run only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

# Debian packages the agent and its test bed use (openssl: the bed's throw-away CA and certificates;
# containerd, runc, busybox-static: the real-node bed and its local images).
# Services are never started by the packages here
# (no systemd, policy-rc.d denies): the test bed starts its own daemons with private directories.
PKGS=(openvswitch-switch openvswitch-common ovn-central ovn-host ovn-common ipset iptables nftables
      containernetworking-plugins iproute2 ethtool iputils-ping tcpdump procps strace
      openssl ca-certificates
      build-essential python3 make g++ gcc libc6-dev
      # `npm run image` (scripts/image.sh) and its test: base images, the build engine, a private containerd;
      # the real-node bed: containerd, runc, busybox-static (its busybox image; its udhcpd serves the NetworkManager DHCP test)
      debootstrap podman containerd runc busybox-static
      # the underlay's NetworkManager test: a private system bus (NetworkManager itself is unpacked by build-fixtures.sh)
      dbus-daemon)
missing=()
for p in "${PKGS[@]}"; do
  # captured, not piped into `grep -q` (an early-exiting reader under pipefail is a race)
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# podman's package puts a bridge network conflist into /etc/cni/net.d, where a kubelet on this node would find it;
# the image build (scripts/image.sh) runs with host networking and uses none of it. A deleted conffile stays deleted.
podman_cni=/etc/cni/net.d/87-podman-bridge.conflist
if [ -f "$podman_cni" ] && dpkg -S "$podman_cni" >/dev/null 2>&1; then rm -f "$podman_cni"; fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
bash scripts/build-fixtures.sh
bash scripts/build-images.sh

# npm ci only when the lockfile changed since the last install (npm writes node_modules/.package-lock.json).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
echo "setup: done in $(( $(date +%s) - t0 )) s"
