#!/usr/bin/env bash
# One idempotent setup for a fresh Debian 12 machine of this kind, as root:
# system packages, Go test fixtures (kube-apiserver, etcd, cnitool), npm dependencies, builds.
# A second run only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

# Debian packages the agent and its test bed use (openssl: the bed's throw-away CA and certificates).
# Services are never started by the packages here
# (no systemd, policy-rc.d denies): the test bed starts its own daemons with private directories.
PKGS=(openvswitch-switch openvswitch-common ovn-central ovn-host ovn-common ipset iptables nftables
      containernetworking-plugins iproute2 ethtool iputils-ping tcpdump procps strace
      openssl ca-certificates
      build-essential python3 make g++ gcc libc6-dev)
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

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
bash scripts/build-fixtures.sh

# npm ci only when the lockfile changed since the last install (npm writes node_modules/.package-lock.json).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
echo "setup: done in $(( $(date +%s) - t0 )) s"
