#!/usr/bin/env bash
# Provisions one node of a shoal cluster: installs shoal (the README's setup script), keeps a
# shoald running, and makes the node a member: the first manager runs `shoal init` and leaves the
# join tokens in files of a shared directory; every other node waits for its token file and joins
# with it (the token is never on a command line). The Vagrant lab runs it on each VM; the tests
# run it inside network-namespace hosts of the one-box lab, so this path is tested here.
#
#   provision.sh first-manager|manager|worker --advertise IP [--join IP] [--token-dir DIR]
#       [--state-dir DIR] [--hostname NAME] [--supervisor systemd|background] [--no-setup]
#       [--cgroup-parent /PATH] [--insecure-registry HOST:PORT]... [--wait-seconds N] [--print-nodes]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

usage() {
  echo "provision: $*" >&2
  echo "usage: provision.sh first-manager|manager|worker --advertise IP [--join IP] [--token-dir DIR] [--state-dir DIR] [--hostname NAME] [--supervisor systemd|background] [--no-setup] [--cgroup-parent /PATH] [--insecure-registry HOST:PORT]... [--wait-seconds N] [--print-nodes]" >&2
  exit 2
}

role=${1:-}
case "$role" in first-manager|manager|worker) shift ;; *) usage "the first argument is the role: first-manager, manager or worker" ;; esac
advertise="" join="" tokens=/vagrant/.shoal-tokens state=/var/lib/shoal name=$(hostname) supervisor="" setup=1
cgroup=/shoal wait=900 print=0 registries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --advertise) advertise=${2:?}; shift 2 ;;
    --join) join=${2:?}; shift 2 ;;
    --token-dir) tokens=${2:?}; shift 2 ;;
    --state-dir) state=${2:?}; shift 2 ;;
    --hostname) name=${2:?}; shift 2 ;;
    --supervisor) supervisor=${2:?}; shift 2 ;;
    --no-setup) setup=0; shift ;;
    --cgroup-parent) cgroup=${2:?}; shift 2 ;;
    --insecure-registry) registries+=("$2"); shift 2 ;;
    --wait-seconds) wait=${2:?}; shift 2 ;;
    --print-nodes) print=1; shift ;;
    *) usage "unknown argument $1" ;;
  esac
done
[ -n "$advertise" ] || usage "--advertise IP is required (the address other nodes reach this one at)"
[ "$role" = first-manager ] || [ -n "$join" ] || usage "--join IP (the first manager's address) is required for a $role"
if [ -z "$supervisor" ]; then
  if [ -d /run/systemd/system ]; then supervisor=systemd; else supervisor=background; fi
fi
say() { echo "provision [$name]: $*"; }

# 1. shoal itself, as the README installs it (Node.js 20 first, where the machine lacks it).
if [ "$setup" = 1 ]; then
  if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    say "installing Node.js 20 (NodeSource)"
    bash "$here/wait-dpkg-lock.sh" 600
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends ca-certificates curl gnupg
    curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
    apt-get -o DPkg::Lock::Timeout=600 install -y nodejs
  fi
  say "installing shoal (scripts/setup.sh)"
  (cd "$repo" && bash scripts/setup.sh)
fi
node=$(command -v node)
shoald=("$node" "$repo/dist/node/main.js" --state-dir "$state" --listen "$advertise:4242" --advertise "$advertise:4242" --hostname "$name" --cgroup-parent "$cgroup")
for r in "${registries[@]}"; do shoald+=(--insecure-registry "$r"); done
shoal() { "$node" "$repo/dist/cli/main.js" --state-dir "$state" "$@"; }

# 2. A shoald that keeps running: a systemd unit on a VM, a detached process elsewhere.
mkdir -p "$state"
chmod 700 "$state"
running() {
  if [ "$supervisor" = systemd ]; then systemctl is-active --quiet shoald.service; else [ -f "$state/shoald.pid" ] && kill -0 "$(cat "$state/shoald.pid")" 2>/dev/null; fi
}
if running; then
  say "shoald already runs with $state"
elif [ "$supervisor" = systemd ]; then
  say "installing the shoald systemd unit"
  cat >/etc/systemd/system/shoald.service <<EOF
[Unit]
Description=shoal node daemon
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=${shoald[*]}
Restart=always
RestartSec=2
KillMode=process

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable --now shoald.service
else
  say "starting shoald in the background (log $state/shoald.log)"
  setsid "${shoald[@]}" >>"$state/shoald.log" 2>&1 </dev/null &
  echo $! >"$state/shoald.pid"
fi
for _ in $(seq 1 600); do [ -S "$state/shoald.sock" ] && break; sleep 0.1; done
[ -S "$state/shoald.sock" ] || { say "shoald did not come up; see $state/shoald.log or journalctl -u shoald"; exit 1; }

# 3. Membership: init, or join with the token from the shared directory.
if [ -f "$state/identity/node.json" ]; then
  say "already a member of a cluster; nothing to join"
elif [ "$role" = first-manager ]; then
  say "creating the cluster"
  out=$(shoal init --format json)
  mkdir -p "$tokens"
  chmod 700 "$tokens"
  for kind in worker manager; do
    tok=$(printf '%s' "$out" | "$node" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write(JSON.parse(s).${kind}Token))")
    umask 077
    printf '%s\n' "$tok" >"$tokens/$kind.token.tmp"
    mv "$tokens/$kind.token.tmp" "$tokens/$kind.token"
  done
  say "join tokens written to $tokens (readable by root only)"
else
  kind=$([ "$role" = manager ] && echo manager || echo worker)
  say "waiting for $tokens/$kind.token (up to $wait s)"
  for _ in $(seq 1 "$wait"); do [ -s "$tokens/$kind.token" ] && break; sleep 1; done
  [ -s "$tokens/$kind.token" ] || { say "no $kind token appeared in $tokens: provision the first manager first"; exit 1; }
  # A manager joining while another one is still being added may have to try again.
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if shoal join --token-file "$tokens/$kind.token" "$join:4242"; then break; fi
    [ "$attempt" = 10 ] && { say "could not join $join:4242"; exit 1; }
    sleep 3
  done
fi
if [ "$print" = 1 ]; then
  # The control API answers on managers only.
  if [ "$role" = worker ]; then say "(shoal node ls runs on a manager: e.g. on $join)"; else shoal node ls; fi
fi
say "done"
