#!/usr/bin/env bash
# Stops the hosts scripts/ssh-hosts-up.sh started in DIR, by the PIDs it
# recorded, removes their namespaces and links, then DIR itself.
# Usage: scripts/ssh-hosts-down.sh DIR [--keep]   (--keep leaves DIR's files)
set -uo pipefail
dir=${1:?usage: ssh-hosts-down.sh DIR [--keep]}
[ -d "$dir" ] || exit 0
if [ -f "$dir/pids" ]; then
  while read -r _ pid; do
    # The PID is unshare's: it takes the host's PID namespace (sshd and
    # whatever runs on the host) down with it.
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null
    fi
  done <"$dir/pids"
  rm -f "$dir/pids"
fi
if [ -f "$dir/slot" ]; then
  slot=$(cat "$dir/slot")
  for i in 1 2 3 4 5; do
    ip link del "sd${slot}h$i" 2>/dev/null
    ip netns del "sd$slot-h$i" 2>/dev/null
  done
  ip link del "sd${slot}br" 2>/dev/null
  ip route del unreachable "10.214.$slot.0/24" 2>/dev/null
  rm -f "$dir/slot"
fi
rm -f "$dir/hosts.json"
[ "${2:-}" = --keep ] || rm -rf "$dir"
exit 0
