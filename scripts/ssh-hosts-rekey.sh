#!/usr/bin/env bash
# Gives one test host of scripts/ssh-hosts-up.sh a new host key, as a
# reinstalled machine (or a man in the middle) would show: the tests check
# that a client that recorded the old key refuses the new one.
# Usage: scripts/ssh-hosts-rekey.sh DIR NAME     (NAME: h1..h5)
set -euo pipefail
dir=${1:?usage: ssh-hosts-rekey.sh DIR NAME}
name=${2:?usage: ssh-hosts-rekey.sh DIR NAME}
key=$dir/hosts/$name/etc/ssh_host_ed25519_key
[ -f "$key" ] || { echo "ssh-hosts-rekey: no host $name in $dir" >&2; exit 1; }
unshare_pid=$(awk -v n="$name" '$1 == n { print $2 }' "$dir/pids")
sshd_pid=$(pgrep -P "$unshare_pid")
rm -f "$key" "$key.pub"
ssh-keygen -q -t ed25519 -N '' -C "$name-rekeyed" -f "$key"
address=$(awk '/"name": "'"$name"'"/ { match($0, /"address": "[^"]*"/); print substr($0, RSTART + 12, RLENGTH - 13) }' "$dir/hosts.json")
# sshd re-executes itself on SIGHUP and reads the new key; its PID stays.
kill -HUP "$sshd_pid"
# The script's own ssh_config should keep working: forget the old key there.
ssh-keygen -q -R "$address" -f "$dir/known_hosts" >/dev/null 2>&1 || true
for _ in $(seq 100); do
  ssh-keyscan -T 2 -t ed25519 "$address" 2>/dev/null \
    | grep -qF "$(cut -d' ' -f2 "$key.pub")" && exit 0
  sleep 0.1
done
echo "ssh-hosts-rekey: $name does not offer its new key; log: $dir/hosts/$name/sshd.log" >&2
exit 1
