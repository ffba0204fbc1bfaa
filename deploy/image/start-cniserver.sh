#!/bin/bash
# /kube-ovn/start-cniserver.sh: the cni-server container's entrypoint (upstream DaemonSet: `bash
# /kube-ovn/start-cniserver.sh <flags>`; spec §1.5). Waits for Open vSwitch on the node, selects the iptables
# backend, then replaces itself with kube-ovn-daemon --ovs-socket=... --bind-socket=... <flags>.
# Differences from upstream, on purpose: a socket file left at --bind-socket is NOT deleted here; the agent removes a
# stale one itself and refuses to start when a live agent still answers on it (it also removes it on SIGTERM).
# Overrides (tests): OVS_RUNDIR (/run/openvswitch), KOA_CNI_SOCK, KOA_OVS_WAIT_LOG_EVERY (seconds, 10),
# KOA_OVS_APPCTL=none (probe with node even where ovs-appctl exists).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
rundir=${OVS_RUNDIR:-/run/openvswitch}
CNI_SOCK=${KOA_CNI_SOCK:-$rundir/kube-ovn-daemon.sock}
OVS_SOCK=$rundir/db.sock
log_every=${KOA_OVS_WAIT_LOG_EVERY:-10}

# unixctl "version" over the control socket, answered within 1 s: ovs-appctl when the image has it (this one does
# not: it carries no OVS userland), else the same JSON-RPC call with the image's node
appctl_version() { # ctl socket
  if [ "${KOA_OVS_APPCTL:-}" != none ] && command -v ovs-appctl >/dev/null 2>&1; then
    ovs-appctl -T 1 -t "$1" version >/dev/null 2>&1
  else
    "$here/node" -e '
      const s = require("node:net").connect(process.argv[1]);
      const t = setTimeout(() => process.exit(1), 1000);
      let b = "";
      s.on("connect", () => s.write(JSON.stringify({ method: "version", params: [], id: 0 })));
      s.on("data", (d) => { b += d; try { const r = JSON.parse(b); clearTimeout(t); process.exit(r.error == null && r.result != null ? 0 : 1); } catch {} });
      s.on("error", () => process.exit(1));' "$1" >/dev/null 2>&1
  fi
}
ovs_up() { # ovsdb-server and ovs-vswitchd answer (db.sock, pid file, control socket)
  [ -S "$OVS_SOCK" ] || return 1
  local comp pid
  for comp in ovsdb-server ovs-vswitchd; do
    pid=$(cat "$rundir/$comp.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -S "$rundir/$comp.$pid.ctl" ] || return 1
    appctl_version "$rundir/$comp.$pid.ctl" || return 1
  done
}

waited=0
until ovs_up; do
  if [ $((waited % log_every)) -eq 0 ]; then echo "start-cniserver.sh: waiting for Open vSwitch in $rundir (${waited}s)" >&2; fi
  sleep 1
  waited=$((waited + 1))
done

# iptables-wrapper (when present) picks legacy or nft on the first call; FORWARD ACCEPT as upstream, best effort
iptables -V >/dev/null 2>&1 || true
iptables -P FORWARD ACCEPT >/dev/null 2>&1 || true
iptables-nft -P FORWARD ACCEPT >/dev/null 2>&1 || true

exec "$here/kube-ovn-daemon" --ovs-socket="$OVS_SOCK" --bind-socket="$CNI_SOCK" "$@"
