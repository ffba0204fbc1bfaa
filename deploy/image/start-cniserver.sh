#!/bin/bash
# /kube-ovn/start-cniserver.sh: the cni-server container's entrypoint (upstream DaemonSet: `bash
# /kube-ovn/start-cniserver.sh <flags>`; spec §1.5). Waits for Open vSwitch on the node, selects the iptables
# backend, then replaces itself with kube-ovn-daemon --ovs-socket=... --bind-socket=... <flags>.
# Differences from upstream, on purpose: a socket file left at --bind-socket is NOT deleted here; the agent removes a
# stale one itself and refuses to start when a live agent still answers on it (it also removes it on SIGTERM).
# Overrides (tests): OVS_RUNDIR (/run/openvswitch), KOA_CNI_SOCK, KOA_OVS_WAIT_LOG_EVERY (seconds, 10).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
rundir=${OVS_RUNDIR:-/run/openvswitch}
CNI_SOCK=${KOA_CNI_SOCK:-$rundir/kube-ovn-daemon.sock}
OVS_SOCK=$rundir/db.sock
log_every=${KOA_OVS_WAIT_LOG_EVERY:-10}

ovs_up() { # ovsdb-server and ovs-vswitchd answer (pid file, control socket; ovs-appctl version when installed)
  [ -S "$OVS_SOCK" ] || return 1
  local comp pid
  for comp in ovsdb-server ovs-vswitchd; do
    pid=$(cat "$rundir/$comp.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -S "$rundir/$comp.$pid.ctl" ] || return 1
    if command -v ovs-appctl >/dev/null 2>&1; then
      ovs-appctl -T 1 -t "$rundir/$comp.$pid.ctl" version >/dev/null 2>&1 || return 1
    fi
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
