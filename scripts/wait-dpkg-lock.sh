#!/usr/bin/env bash
# Waits (at most $1 seconds, default 600) until no other process holds the dpkg/apt locks: on a
# fresh machine unattended-upgrades or another apt-get often runs, and apt-get would fail at once.
# Says what it waits for (the holding process) while it waits. Exit 0 once free, 1 on timeout.
set -u
limit=${1:-600}
# SHOAL_DPKG_LOCKS (space-separated paths) replaces the list: the test uses locks of its own.
read -r -a locks <<<"${SHOAL_DPKG_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"
# "PID ARGS; PID ARGS" of up to 3 holders of lock $1. ps pads PIDs to pid_max's width: the
# padding is dropped so the message reads "held by 812 apt-get ...", whatever the PID's length.
holders() {
  fuser "$1" 2>/dev/null | xargs -r ps -o pid=,args= -p 2>/dev/null | head -3 | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g'
}
start=$(date +%s)
said=""
for (( ; ; )); do
  busy=""
  for l in "${locks[@]}"; do
    [ -e "$l" ] || continue
    if ! flock -n -E 99 "$l" true 2>/dev/null; then busy=$l; break; fi
  done
  [ -z "$busy" ] && exit 0
  now=$(date +%s)
  if (( now - start >= limit )); then
    h=$(holders "$busy")
    echo "setup: gave up after ${limit} s waiting for $busy (held by: ${h:-unknown}); stop that process or try again later" >&2
    exit 1
  fi
  if [ "$said" != "$busy" ]; then
    holder=$(holders "$busy")
    echo "setup: waiting for $busy, held by ${holder:-another process} (apt or unattended-upgrades); up to ${limit} s" >&2
    said=$busy
  fi
  sleep 1
done
