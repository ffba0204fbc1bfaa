#!/bin/bash
# /kube-ovn/install-cni.sh: the init container of the kube-ovn-cni DaemonSet (same name, arguments and effects as
# upstream, spec §1.3). Arguments are passed on to `kube-ovn-daemon --install-cni-config`
# (--cni-conf-dir, --cni-conf-file, --cni-conf-name).
#  1. copies the CNI executables to the host's CNI bin dir: each one to <dst>.tmp.<pid> (stale <dst>.tmp.* removed
#     first), fsync, then renamed over <dst>, so kubelet never runs a half-written file;
#  2. for each address in POD_IPS turns on forwarding (IPv4: ip_forward=1, rp_filter=0; IPv6: forwarding=1);
#  3. installs the conflist (kept when it already exists with mode 0600, else written atomically with mode 0600).
# Overrides for tests only: KOA_CNI_BIN_DIR (/opt/cni/bin), KOA_KUBECTL_DIR (/usr/local/bin), KOA_PROC_SYS (/proc/sys).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
root=$(cd "$here/.." && pwd)
bin_dir=${KOA_CNI_BIN_DIR:-/opt/cni/bin}
kubectl_dir=${KOA_KUBECTL_DIR:-/usr/local/bin}
proc_sys=${KOA_PROC_SYS:-/proc/sys}

install_file() { # src dst
  local src=$1 dst=$2 tmp="$2.tmp.$$"
  rm -f -- "$dst".tmp.*
  cp -- "$src" "$tmp"
  chmod 0755 -- "$tmp"
  sync -- "$tmp"
  mv -f -- "$tmp" "$dst"
}

mkdir -p -- "$bin_dir"
install_file "$root/loopback" "$bin_dir/loopback"
install_file "$root/portmap" "$bin_dir/portmap"
install_file "$here/kube-ovn" "$bin_dir/kube-ovn"
install_file "$root/macvlan" "$bin_dir/macvlan"
install_file "$root/ipvlan" "$bin_dir/ipvlan"
sync -- "$bin_dir" 2>/dev/null || true  # the renames, durably
# kubectl-ko is upstream's kubectl plugin script; copied only when an image ships it and the directory is mounted
if [ -f "$here/kubectl-ko" ] && [ -d "$kubectl_dir" ]; then
  install_file "$here/kubectl-ko" "$kubectl_dir/kubectl-ko"
fi

IFS=',' read -r -a ips <<< "${POD_IPS:-}"
for ip in "${ips[@]}"; do
  case "$ip" in
    '') ;;
    *:*) echo 1 > "$proc_sys/net/ipv6/conf/all/forwarding" ;;
    *.*) echo 1 > "$proc_sys/net/ipv4/ip_forward"
         echo 0 > "$proc_sys/net/ipv4/conf/all/rp_filter" ;;
    *) echo "install-cni.sh: ignoring POD_IPS entry '$ip' (not an IP address)" >&2 ;;
  esac
done

exec "$here/kube-ovn-daemon" --install-cni-config "$@"
