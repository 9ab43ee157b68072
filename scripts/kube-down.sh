#!/usr/bin/env bash
# Stops what scripts/kube-up.sh STATE started and undoes what it changed on
# the host, touching nothing of another instance:
#   the pods (deleted through the API while the kubelet still runs, so it
#   tears down their network and volumes), then kubelet, scheduler,
#   controller-manager, API server by their recorded PIDs; containers still
#   running are killed by containerd's init.pid files, and the shims of THIS
#   containerd (found by STATE's socket path on their command line); then
#   containerd and etcd. Every mount they made was in their own mount
#   namespace, which goes with them (checked). Then the iptables rule for
#   the API server's service, the bridge, the cgroup root, and, when it is
#   the last instance, the sysctls.
#
# Usage: scripts/kube-down.sh STATE [--keep]   (--keep leaves STATE's files)
set -uo pipefail
state=${1:?usage: kube-down.sh STATE [--keep]}
[ -d "$state" ] || exit 0
state=$(cd "$state" && pwd)
keep=${2:-}
log() { echo "kube-down: $*" >&2; }

alive() { # running and not a zombie waiting for its parent to reap it
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null &&
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
stop_pid() { # pid name: TERM, up to 10 s, then KILL
  alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 50); do
    alive "$1" || return 0
    sleep 0.2
  done
  log "$2 did not stop on TERM: KILL"
  kill -KILL "$1" 2>/dev/null
  for _ in $(seq 25); do
    alive "$1" || return 0
    sleep 0.2
  done
}
stop() { # name
  local f=$state/pids/$1.pid
  [ -f "$f" ] || return 0
  stop_pid "$(cat "$f")" "$1"
  rm -f "$f"
}

# 1. The pods, through the API, while the kubelet still runs.
kubectl=$(cat "$state/kubectl.path" 2>/dev/null || true)
if [ -f "$state/pids/kubelet.pid" ] && alive "$(cat "$state/pids/kubelet.pid")" && [ -x "$kubectl" ]; then
  timeout 30 "$kubectl" --kubeconfig "$state/admin.kubeconfig" delete pods --all --all-namespaces \
    --grace-period=1 --wait=true >/dev/null 2>&1 || log "pods not all deleted in 30 s: killing their containers"
fi
stop kubelet
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver

# 2. Containers left, and this containerd's shims.
c=$state/containerd
if [ -d "$c/state/io.containerd.runtime.v2.task" ]; then
  for f in "$c"/state/io.containerd.runtime.v2.task/*/*/init.pid; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
  done
  containerd_pid=$(cat "$state/pids/containerd.pid" 2>/dev/null || true)
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$containerd_pid" ] && continue
    if tr '\0' '\n' 2>/dev/null <"$d/cmdline" | grep -qxF -- "$c/containerd.sock"; then
      kill -KILL "$pid" 2>/dev/null && log "killed shim $pid"
    fi
  done
fi
stop containerd
stop etcd

# 3. The mount namespace: gone once nothing is in it.
if [ -f "$state/host/mount-namespace" ]; then
  ns=$(cat "$state/host/mount-namespace")
  for _ in $(seq 50); do
    left=""
    for d in /proc/[0-9]*; do
      [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$ns" ] && alive "${d#/proc/}" && left="$left ${d#/proc/}"
    done
    [ -z "$left" ] && break
    sleep 0.2
  done
  [ -z "$left" ] || log "WARNING: processes still in its mount namespace:$left"
fi

# 4. Host changes.
h=$state/host
if [ -f "$h/iptables-nat" ]; then
  mapfile -t rule <"$h/iptables-nat"
  iptables -t nat -D "${rule[@]}" 2>/dev/null || log "WARNING: the iptables rule of $state was not there"
  rm -f "$h/iptables-nat"
fi
if [ -f "$h/bridge" ]; then
  br=$(cat "$h/bridge")
  # The veths of pods whose network namespace is gone go by themselves.
  for v in $(ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$v" 2>/dev/null
  done
  ip link del "$br" 2>/dev/null
  rm -f "$h/bridge"
fi
if [ -f "$h/cgroups" ]; then
  while read -r cg; do
    # Deepest first; a cgroup with a process left in it stays (and says so).
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$cg" ] && log "WARNING: cgroup $cg still there (a process left in it?)"
  done <"$h/cgroups"
  rm -f "$h/cgroups"
  (
    flock 9
    others=$(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^skk[0-9]+br$' || true)
    if [ -z "$others" ] && [ -f /var/tmp/skydeck-kube.sysctl ]; then
      while IFS='=' read -r k v; do sysctl -qw "$k=$v" 2>/dev/null; done </var/tmp/skydeck-kube.sysctl
      rm -f /var/tmp/skydeck-kube.sysctl
    fi
  ) 9</var/tmp
fi

left=$(awk -v s="$state/" 'index($2, s) == 1' /proc/self/mounts | wc -l)
if [ "$left" != 0 ]; then
  log "WARNING: $left mounts still under $state: keeping it"
elif [ "$keep" != --keep ]; then
  rm -rf --one-file-system "$state"
fi
