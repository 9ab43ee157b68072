#!/usr/bin/env bash
# Breaks (and mends) one test host of scripts/ssh-hosts-up.sh, as the fault
# tests need:
#   cut        its link goes down: packets to and from it are lost (a cable
#              pulled, a switch gone); connections hang until keepalives or
#              timeouts give up
#   restore    its link comes back up (after `cut`)
#   stop       the host goes down: sshd is PID 1 of the host's PID
#              namespace, so every process on it (agent, jobs) dies with it;
#              its address still answers, with "connection refused"
#   start      the host comes back (after `stop`): a new PID namespace and
#              sshd; its files (/root, /tmp) are as they were
#   reboot     stop, then start
# Only the processes ssh-hosts-up.sh (or this script) started for that host
# are stopped, by the PID recorded in DIR/pids, which `start` updates so
# that ssh-hosts-down.sh stops the new one.
#
# Usage: scripts/ssh-hosts-ctl.sh DIR HOST cut|restore|stop|start|reboot
set -euo pipefail
dir=${1:?usage: ssh-hosts-ctl.sh DIR HOST cut|restore|stop|start|reboot}
name=${2:?usage: ssh-hosts-ctl.sh DIR HOST cut|restore|stop|start|reboot}
action=${3:?usage: ssh-hosts-ctl.sh DIR HOST cut|restore|stop|start|reboot}
log() { echo "ssh-hosts-ctl: $*" >&2; }

h=$dir/hosts/$name
[ -f "$h/etc/sshd_config" ] && [ -f "$dir/slot" ] || {
  log "no host $name in $dir (start them with scripts/ssh-hosts-up.sh $dir)"
  exit 1
}
slot=$(cat "$dir/slot")
i=${name#h}
ns=sd$slot-h$i
link=sd${slot}h$i

pid_of() { awk -v n="$name" '$1 == n { print $2 }' "$dir/pids"; }

# Alive, and not a zombie waiting for its parent to reap it.
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

cut_link() {
  [ "$i" != 4 ] || { log "h4 has no link of its own (it sits behind h1): cut h1"; exit 1; }
  ip link set "$link" "$1"
}

stop_host() {
  local pid
  pid=$(pid_of)
  [ -n "$pid" ] && alive "$pid" || return 0
  # unshare ignores TERM while it waits for its child; with --kill-child
  # its end takes sshd, PID 1 of the host, and with it every process of
  # the host's PID namespace.
  kill -KILL "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    # Gone when its sshd no longer lets anyone in.
    if ! ssh -F "$dir/ssh_config" -o ConnectTimeout=1 "$name" true 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "$name ($pid) did not stop"
  exit 1
}

start_host() {
  if [ -n "$(pid_of)" ] && alive "$(pid_of)"; then
    return 0
  fi
  # As ssh-hosts-up.sh starts it.
  ip netns exec "$ns" unshare --uts --mount --propagation private --pid --fork --kill-child \
    --mount-proc sh -c "hostname skydeck-test-h$i &&
      mount --bind '$h/root' /root && mount --bind '$h/tmp' /tmp &&
      exec /usr/sbin/sshd -D -e -f '$h/etc/sshd_config'" \
    >>"$h/sshd.log" 2>&1 </dev/null &
  local pid=$!
  awk -v n="$name" -v p="$pid" '$1 == n { $2 = p } { print }' "$dir/pids" >"$dir/pids.new"
  mv "$dir/pids.new" "$dir/pids"
  for _ in $(seq 100); do
    if ssh -F "$dir/ssh_config" "$name" true 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "$name does not answer on port 22; its log: $h/sshd.log"
  exit 1
}

case $action in
  cut) cut_link down ;;
  restore) cut_link up ;;
  stop) stop_host ;;
  start) start_host ;;
  reboot) stop_host && start_host ;;
  *)
    log "unknown action $action (cut|restore|stop|start|reboot)"
    exit 1
    ;;
esac
