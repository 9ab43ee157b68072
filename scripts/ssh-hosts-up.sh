#!/usr/bin/env bash
# Starts throw-away SSH hosts for the tests: real sshd daemons, each in its
# own network, UTS, mount and PID namespace, so each has its own address,
# hostname, /root and /tmp, and its own processes. Prints the path of
# hosts.json, which describes them (the tests read it through
# SKYDECK_TEST_SSH_HOSTS).
#
# Usage: scripts/ssh-hosts-up.sh DIR     (stop: scripts/ssh-hosts-down.sh DIR)
#
# Layout (N is a free slot the script picks, so parallel runs never collide):
#   10.213.N.0/24  bridge sd<N>br in the root namespace (10.213.N.1), with
#                  h1 .2, h2 .3, h3 .4 and h5 .6. h5 is for tests that break a
#                  host (change its host key, cut its link).
#   10.214.N.0/24  a veth pair between h1 (.1) and h4 (.2) only: the root
#                  namespace cannot reach h4 (its route there is
#                  "unreachable"), so it takes ProxyJump h1.
# Nothing routes out of these networks: traffic never leaves the machine.
#
# h3 also has a non-root login, `skytest` (uid 4242, home
# hosts/h3/home/skytest, the same client key), that may sudo with a
# password only (written to hosts/h3/sudo_password, made per run): the pool
# file's `password:` is tested on it. Its passwd/group/shadow entries and
# its sudoers rule (and an /etc/hosts line for h3's name, which sudo looks
# up) exist only inside h3's mount namespace (copies of the
# machine's files bind-mounted over /etc there), so the machine's own /etc
# is never changed and nothing is left to undo when h3 stops; `sudo` is
# installed from Debian when missing.
#
# DIR must lie outside /root and /tmp: every host mounts its own over those,
# and sshd reads its host key from DIR after that. DIR gets the client key
# pair (id_ed25519, generated here, never committed), ssh_config (aliases
# h1..h5), known_hosts, and hosts/<name>/{root,tmp,etc} per host. Idempotent:
# running it again on a DIR whose hosts run prints the path and does nothing.
set -euo pipefail
dir=${1:?usage: ssh-hosts-up.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "ssh-hosts-up: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "needs root (network namespaces, bind mounts)"
  exit 1
fi
dir=$(realpath -m "$dir")
case "$dir/" in
  /tmp/* | /root/*)
    log "DIR ($dir) must lie outside /root and /tmp: each host mounts its own over them (try /var/tmp)"
    exit 1
    ;;
esac
mkdir -p "$dir"

if [ -f "$dir/hosts.json" ] && [ -f "$dir/pids" ]; then
  alive=yes
  while read -r _ pid; do kill -0 "$pid" 2>/dev/null || alive=no; done <"$dir/pids"
  if [ $alive = yes ]; then
    echo "$dir/hosts.json"
    exit 0
  fi
  log "some hosts in $dir are gone: starting again"
  bash "$here/ssh-hosts-down.sh" "$dir" --keep
fi

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
# The runner syncs with rsync when both ends have it (tar otherwise).
command -v rsync >/dev/null || missing+=(rsync)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
# h3's `skytest` login sudoes with a password (the pool file's `password:`).
[ -x /usr/bin/sudo ] || missing+=(sudo)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# sshd refuses to start without its privilege separation directory.
install -d -m 0755 /run/sshd

# A free slot: creating the bridge is the atomic claim.
slot=
for n in $(seq 0 99); do
  if ip link add "sd${n}br" type bridge 2>/dev/null; then
    slot=$n
    break
  fi
done
if [ -z "$slot" ]; then
  log "no free slot (bridges sd0br..sd99br all exist)"
  exit 1
fi
echo "$slot" >"$dir/slot"
: >"$dir/pids"
on_exit() {
  local rc=$?
  [ "$rc" = 0 ] || log "failed; stop what started with ssh-hosts-down.sh $dir"
}
trap on_exit EXIT

net_a=10.213.$slot
net_b=10.214.$slot
ip addr add "$net_a.1/24" dev "sd${slot}br"
ip link set "sd${slot}br" up
# h4's network is not reachable from here, and a packet for it must not
# take the default route off the machine either: refuse it at once.
ip route add unreachable "$net_b.0/24"

rm -f "$dir/id_ed25519" "$dir/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C skydeck-test-hosts -f "$dir/id_ed25519"
: >"$dir/known_hosts"

# host index -> address on net A ("" for h4, which is only on net B)
addr_of() {
  case $1 in
    1) echo "$net_a.2" ;; 2) echo "$net_a.3" ;; 3) echo "$net_a.4" ;;
    4) echo "$net_b.2" ;; 5) echo "$net_a.6" ;;
  esac
}

for i in 1 2 3 4 5; do
  ns=sd$slot-h$i
  h=$dir/hosts/h$i
  mkdir -p "$h/root/.ssh" "$h/tmp" "$h/etc"
  chmod 700 "$h/root" "$h/root/.ssh"
  chmod 1777 "$h/tmp"
  cp "$dir/id_ed25519.pub" "$h/root/.ssh/authorized_keys"
  rm -f "$h/etc/ssh_host_ed25519_key" "$h/etc/ssh_host_ed25519_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C "h$i" -f "$h/etc/ssh_host_ed25519_key"
  cat >"$h/etc/sshd_config" <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey $h/etc/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
Subsystem sftp /usr/lib/openssh/sftp-server
MaxStartups 100:30:200
# One multiplexed connection carries many commands at once.
MaxSessions 100
EOF
  /usr/sbin/sshd -t -f "$h/etc/sshd_config"

  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  if [ "$i" != 4 ]; then
    ip link add "sd${slot}h$i" type veth peer name "sd${slot}p$i"
    ip link set "sd${slot}h$i" master "sd${slot}br"
    ip link set "sd${slot}h$i" up
    ip link set "sd${slot}p$i" netns "$ns"
    ip netns exec "$ns" ip link set "sd${slot}p$i" name eth0
    ip netns exec "$ns" ip addr add "$(addr_of "$i")/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
  fi
done
# net B: h1 <-> h4 only.
ip link add "sd${slot}j1" type veth peer name "sd${slot}j4"
ip link set "sd${slot}j1" netns "sd$slot-h1"
ip link set "sd${slot}j4" netns "sd$slot-h4"
ip netns exec "sd$slot-h1" ip link set "sd${slot}j1" name eth1
ip netns exec "sd$slot-h1" ip addr add "$net_b.1/24" dev eth1
ip netns exec "sd$slot-h1" ip link set eth1 up
ip netns exec "sd$slot-h4" ip link set "sd${slot}j4" name eth0
ip netns exec "sd$slot-h4" ip addr add "$net_b.2/24" dev eth0
ip netns exec "sd$slot-h4" ip link set eth0 up

# h3's sudo login: its /etc entries, bind-mounted over the machine's
# inside h3 only (see the header).
sudo_user=skytest
h=$dir/hosts/h3
sudo_password=$(openssl rand -hex 12)
printf '%s\n' "$sudo_password" >"$h/sudo_password"
chmod 600 "$h/sudo_password"
mkdir -p "$h/home/$sudo_user/.ssh"
cp "$dir/id_ed25519.pub" "$h/home/$sudo_user/.ssh/authorized_keys"
chown -R 4242:4242 "$h/home/$sudo_user"
chmod 700 "$h/home/$sudo_user" "$h/home/$sudo_user/.ssh"
# sshd reads the login's authorized_keys as the login: every directory above
# its home must let it through (DIR may come from `mktemp -d`, mode 0700).
# Traverse only: nothing in them can be listed.
chmod o+x "$dir" "$dir/hosts" "$h" "$h/home"
{ cat /etc/passwd; echo "$sudo_user:x:4242:4242::$h/home/$sudo_user:/bin/bash"; } >"$h/etc/passwd"
{ cat /etc/group; echo "$sudo_user:x:4242:"; } >"$h/etc/group"
{ cat /etc/shadow; echo "$sudo_user:$(openssl passwd -6 "$sudo_password"):20000:0:99999:7:::"; } >"$h/etc/shadow"
printf '%s\n' 'Defaults env_reset' 'Defaults timestamp_timeout=0' \
  'root ALL=(ALL:ALL) ALL' "$sudo_user ALL=(ALL:ALL) ALL" >"$h/etc/sudoers"
# sudo looks its host's name up; without a line for it, it waits for DNS
# that these networks do not have.
{ cat /etc/hosts; echo "127.0.1.1 skydeck-test-h3"; } >"$h/etc/hosts"
chmod 644 "$h/etc/passwd" "$h/etc/group" "$h/etc/hosts"
chmod 640 "$h/etc/shadow"
chmod 440 "$h/etc/sudoers"
h3_etc="mount --bind '$h/etc/passwd' /etc/passwd && mount --bind '$h/etc/group' /etc/group &&
      mount --bind '$h/etc/shadow' /etc/shadow && mount --bind '$h/etc/sudoers' /etc/sudoers &&
      mount --bind '$h/etc/hosts' /etc/hosts &&"

for i in 1 2 3 4 5; do
  ns=sd$slot-h$i
  h=$dir/hosts/h$i
  etc=
  [ "$i" != 3 ] || etc=$h3_etc
  # unshare's own PID is recorded: killing it kills sshd (--kill-child),
  # which is PID 1 of the host's PID namespace, so every process left on
  # the host dies with it.
  ip netns exec "$ns" unshare --uts --mount --propagation private --pid --fork --kill-child \
    --mount-proc sh -c "hostname skydeck-test-h$i &&
      mount --bind '$h/root' /root && mount --bind '$h/tmp' /tmp && $etc
      exec /usr/sbin/sshd -D -e -f '$h/etc/sshd_config'" \
    >"$h/sshd.log" 2>&1 </dev/null &
  echo "h$i $!" >>"$dir/pids"
done

# Wait for every sshd to accept connections (h4 through h1).
{
  echo "# Written by scripts/ssh-hosts-up.sh: the test hosts."
  for i in 1 2 3 4 5; do
    echo "Host h$i"
    echo "  HostName $(addr_of "$i")"
    echo "  User root"
    echo "  IdentityFile $dir/id_ed25519"
    echo "  IdentitiesOnly yes"
    echo "  UserKnownHostsFile $dir/known_hosts"
    echo "  StrictHostKeyChecking accept-new"
    echo "  BatchMode yes"
    echo "  ConnectTimeout 5"
    [ "$i" != 4 ] || echo "  ProxyJump h1"
  done
} >"$dir/ssh_config"
for i in 1 2 3 4 5; do
  for attempt in $(seq 100); do
    if ssh -F "$dir/ssh_config" "h$i" true 2>/dev/null; then
      break
    fi
    if [ "$attempt" = 100 ]; then
      log "h$i does not answer on port 22; its log: $dir/hosts/h$i/sshd.log"
      exit 1
    fi
    sleep 0.1
  done
done

{
  echo "{"
  echo "  \"dir\": \"$dir\","
  echo "  \"key\": \"$dir/id_ed25519\","
  echo "  \"ssh_config\": \"$dir/ssh_config\","
  echo "  \"hosts\": ["
  for i in 1 2 3 4 5; do
    jump=null link="\"sd${slot}h$i\""
    [ "$i" != 4 ] || { jump='"h1"'; link=null; }
    sep=,
    [ "$i" != 5 ] || sep=
    echo "    {\"name\": \"h$i\", \"address\": \"$(addr_of "$i")\", \"user\": \"root\", \"hostname\": \"skydeck-test-h$i\", \"jump\": $jump, \"netns\": \"sd$slot-h$i\", \"link\": $link, \"dir\": \"$dir/hosts/h$i\"}$sep"
  done
  echo "  ]"
  echo "}"
} >"$dir/hosts.json"
log "5 hosts up (h4 behind h1); ssh -F $dir/ssh_config h1"
echo "$dir/hosts.json"
