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
# xfsprogs: xfs_io, whose `shutdown` the CSI driver uses to fence a volume's ext4 on a node that
# lost its attachment;
# psmisc: fuser, with which wait-dpkg-lock.sh names the process holding the dpkg lock (and its test
# checks that it does); attr: opaque-directory xattrs in image layers; openssl: the registry token-auth test's certificate;
# serf/etcd-server: the real peers the benchmarks measure against; vagrant: CI checks the
# multi-VM lab's Vagrantfile with `vagrant validate` (this machine cannot boot VMs); gcc/libc6-dev: the runtime
# compiles its small C shim (runtime/shim/) on first use; containernetworking-plugins +
# iptables: the CNI plugins (bridge, host-local, portmap, loopback) the runtime's pod networking
# is tested with (portmap writes iptables rules); containerd: the peer the CRI benchmark
# measures shoal-runtime against (the benchmark starts its own instance, with its own socket,
# root and network namespace), and shoal-cni's test runs a pod through it (portmap chained after
# shoal-cni); iperf3: bench:overlay's throughput tool (its debconf default starts no daemon).
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
  ca-certificates runc busybox-static docker-registry iproute2 nftables e2fsprogs util-linux xfsprogs kmod psmisc attr openssl \
  serf etcd-server gcc libc6-dev containernetworking-plugins iptables containerd iperf3 vagrant
# docker.io: Docker Swarm, the peer bench:replicas and bench:failover measure against
# (benchmarks/swarm-peer.ts runs its own dockerd and containerd inside network namespaces of its
# own). Its postinst would start a dockerd in the machine's own network namespace (on systemd:
# `deb-systemd-invoke start docker.service docker.socket`; without systemd: `invoke-rc.d docker
# start`, /etc/init.d/docker), which adds a docker0 bridge and iptables rules there. So: its units
# are masked first (the postinst's `deb-systemd-helper unmask` lifts only masks that
# deb-systemd-helper made), a policy-rc.d denies service starts during this install (invoke-rc.d
# and deb-systemd-invoke both ask it) unless the machine has one, the SysV script is disabled,
# and a dockerd an earlier install started is stopped.
if command -v systemctl >/dev/null; then
  systemctl mask docker.service docker.socket >/dev/null
  if [ -d /run/systemd/system ]; then systemctl stop docker.socket docker.service 2>/dev/null || true; fi
fi
policy_rc_d=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy_rc_d=/usr/sbin/policy-rc.d
  trap 'rm -f "$policy_rc_d"' EXIT
  printf '#!/bin/sh\n# scripts/setup.sh (shoal): no service starts while docker.io installs\nexit 101\n' > "$policy_rc_d"
  chmod 755 "$policy_rc_d"
fi
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends docker.io
if [ -n "$policy_rc_d" ]; then rm -f "$policy_rc_d"; trap - EXIT; fi
if [ -x /etc/init.d/docker ]; then update-rc.d docker disable >/dev/null 2>&1 || true; fi
# kubectl 1.20 (Debian's kubernetes-client): a real SPDY-only streaming client (kubectl before
# 1.29) the runtime's exec/attach/port-forward are tested with (runtime/kubectl-spdy.test.ts).
# Unpacked into /opt/shoal/kubernetes-client, not installed, so a kubectl the machine may already
# have stays as it is.
if [ ! -x /opt/shoal/kubernetes-client/usr/bin/kubectl ]; then
  kc_tmp=$(mktemp -d)
  chown _apt "$kc_tmp" 2>/dev/null || true  # apt fetches as _apt
  (cd "$kc_tmp" && apt-get download kubernetes-client)
  mkdir -p /opt/shoal/kubernetes-client
  dpkg -x "$kc_tmp"/kubernetes-client_*.deb /opt/shoal/kubernetes-client
  rm -rf "$kc_tmp"
fi
npm ci --no-audit --no-fund
npm run build
# Put `shoal`, `shoald`, `shoal-runtime`, `shoal-net` and `shoal-cni` on the PATH (symlinks to
# this checkout's dist/). With several clones the last one that ran setup wins: say which one.
npm link --no-audit --no-fund
echo "setup: shoal, shoald, shoal-runtime, shoal-net and shoal-cni on the PATH now run $(pwd)/dist (shoal --version says so too)"
