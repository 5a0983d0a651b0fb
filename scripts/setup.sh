#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for shoal's tests, lab and benchmarks, then the npm
# dependencies. Run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# A fresh machine often runs unattended-upgrades: wait for the dpkg lock instead of failing, and
# let apt-get itself wait too (the lock can be taken again between the check and the call).
bash scripts/wait-dpkg-lock.sh 600
apt-get -o DPkg::Lock::Timeout=600 update
# runc/busybox-static/docker-registry: containers and the test image; iproute2/nftables: network
# namespaces, veth, VXLAN, partitions; e2fsprogs/util-linux: volumes (ext4, loop devices);
# attr: opaque-directory xattrs in image layers; openssl: the registry token-auth test's certificate;
# serf/etcd-server: the real peers the benchmarks measure against; gcc/libc6-dev: the runtime
# compiles its small C shim (runtime/shim/) on first use; containernetworking-plugins +
# iptables: the CNI plugins (bridge, host-local, portmap, loopback) the runtime's pod networking
# is tested with (portmap writes iptables rules); containerd: the peer the CRI benchmark
# measures shoal-runtime against (the benchmark starts its own instance, with its own socket,
# root and network namespace).
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
  ca-certificates runc busybox-static docker-registry iproute2 nftables e2fsprogs util-linux kmod attr openssl \
  serf etcd-server gcc libc6-dev containernetworking-plugins iptables containerd
npm ci --no-audit --no-fund
npm run build
# Put `shoal`, `shoald` and `shoal-runtime` on the PATH (symlinks to this checkout's dist/).
npm link --no-audit --no-fund
