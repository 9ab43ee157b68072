#!/usr/bin/env bash
# Stops what scripts/kube-apiserver-up.sh DIR started, by the PIDs it
# recorded (the API server first, then etcd), and removes DIR.
set -uo pipefail
dir=${1:?usage: kube-apiserver-down.sh DIR}
[ -d "$dir" ] || exit 0
for name in kube-apiserver etcd; do
  f=$dir/pids/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -TERM "$pid" 2>/dev/null; then
    # Up to 10 s to exit, then SIGKILL.
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
rm -rf "$dir"
