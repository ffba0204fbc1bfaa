#!/bin/bash
# The real-node bed's "holder": started by `ip netns exec <node ns>` (which gives it a mount namespace of its own,
# a slave of the host's, with /sys remounted for the network namespace), it prepares that mount namespace for
# kubelet + containerd and then blocks. Every node daemon joins it with `nsenter -t <holder pid> -m -n`.
# Nothing here reaches the host: mounts are made private first, and each host path kubelet or containerd writes to
# despite their flags is covered by a private directory (../shared/notes/real-node.md, obstacles 2-4).
#   usage: holder.sh <bed dir> <OVS run dir>
set -euo pipefail
dir=$1
ovsrun=$2

mount --make-rprivate /

# `ip netns exec` remounted /sys, so /sys/fs/cgroup is empty here: mount the host's v1 hierarchies again (the same
# hierarchies, so cgroups made here are real ones, under the kubelet's cgroupRoot that the bed created)
mount -t tmpfs -o mode=0755 koa-cgroup /sys/fs/cgroup
for h in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p "/sys/fs/cgroup/$h"
  mount -t cgroup -o "$h" cgroup "/sys/fs/cgroup/$h"
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified

# /run (containerd state and shim sockets, pod netns files under /run/netns = /var/run/netns) is private; OVS's run
# dir appears at /run/openvswitch, where the DaemonSet's scripts look for it and the agent binds its CNI socket
mount --bind "$dir/run" /run
mkdir -p /run/openvswitch
mount --bind "$ovsrun" /run/openvswitch

# /var: an overlay with a private upper dir catches /var/lib/kubelet/*, /var/log/{pods,containers}, /var/lib/cni
mount -t overlay koa-var -o "lowerdir=/var,upperdir=$dir/var-upper,workdir=$dir/var-work" /var

# kubelet checks (protectKernelDefaults) these global sysctls instead of writing them: it reads the expected values
for f in vm/overcommit_memory kernel/panic kernel/panic_on_oops; do
  mount --bind "$dir/sysctl/${f//\//.}" "/proc/sys/$f"
done

# shared again, but only within this namespace (the host's peer groups were cut above): containers that mount a
# node path with mountPropagation HostToContainer (the agent's /run/openvswitch, /var/run/netns) need a shared or
# slave source, or containerd refuses to create them; new mounts here (pod netns files) then reach those containers
mount --make-rshared /

echo ready
exec sleep infinity
