#!/usr/bin/env bash
# Starts a real single-node Kubernetes 1.20 on this machine, without systemd,
# and prints the path of its admin kubeconfig:
#   etcd -> kube-apiserver (TLS, Node+RBAC authorization)
#   -> kube-controller-manager + kube-scheduler
#   -> a bridge, containerd (+ runc, CNI bridge), the images of
#      scripts/kube-build.sh imported -> kubelet; waits until the node is Ready.
# Pods run from localhost/debian:bookworm (or any image imported with
# `ctr --address STATE/containerd/containerd.sock -n k8s.io images import`),
# with imagePullPolicy Never or IfNotPresent: nothing is ever pulled.
#
# Usage: scripts/kube-up.sh [--api-only] STATE     (stop: scripts/kube-down.sh STATE)
#   --api-only   etcd + kube-apiserver only: objects are stored and
#                authorized, nothing runs (the chart's RBAC tests)
# STATE gets everything: PKI, kubeconfigs, etcd's data, containerd's
# root/state/socket, the kubelet's root, logs/, pids/. Keep it short (under
# about 60 characters): containerd's unix socket lives in it.
#
# Several instances run side by side without meeting:
#   ports        free ones the kernel picks (bind to port 0), etcd, the API
#                server and the control plane's on 127.0.0.1
#   network      a free slot N (creating the bridge skk<N>br is the claim):
#                pods get 10.216.N.2-254 on it, the bridge is 10.216.N.1 (the
#                node's address, where the kubelet listens). No default route
#                and no masquerading: pod traffic cannot leave the machine.
#                Services get 10.96.N.0/24. There is no kube-proxy; only the
#                API server's own service (10.96.N.1:443, what a pod's
#                in-cluster config uses) is routed: pods have a route to
#                10.96.N.0/24 through the bridge, and one iptables DNAT rule
#                for packets from the bridge sends 10.96.N.1:443 to the API
#                server on 127.0.0.1 (route_localnet on the bridge only).
#   cgroups      the kubelet's --cgroup-root is /skydeck-kube-<N>
#   /var/log     kubelet 1.20 hard-codes /var/log/pods and /var/log/containers
#                and garbage-collects every pod directory there it does not
#                know, so containerd and the kubelet run in a mount namespace
#                of their own with STATE/varlog mounted over /var/log.
#                That namespace also holds every mount they make (volumes,
#                container root filesystems); it goes when they stop.
#   sysctls      the kubelet sets vm.overcommit_memory, kernel.panic and a
#                few more; the first instance records the old values
#                (/var/tmp/skydeck-kube.sysctl, under a lock on /var/tmp) and the last one down
#                restores them.
# Binaries and images: scripts/kube-build.sh (cached in
# ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/kube). Debian packages it
# installs when missing: etcd's and the node's (containerd, runc,
# containernetworking-plugins, iproute2). Needs root, except --api-only
# with the packages there.
# Up in about 30 s (6 s with --api-only).
set -euo pipefail
api_only=false
if [ "${1:-}" = --api-only ]; then
  api_only=true
  shift
fi
state=${1:?usage: kube-up.sh [--api-only] STATE}
here=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s.%N)
log() { echo "kube-up: +$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s $*" >&2; }
$api_only || [ "$(id -u)" = 0 ] || {
  log "needs root (containerd, the kubelet, a bridge; --api-only does not)"
  exit 1
}

if $api_only; then
  bin=$(bash "$here/kube-build.sh" --api-only | tail -n 1)
else
  bin=$(bash "$here/kube-build.sh" | tail -n 1)
fi
images=$(dirname "$bin")/images
export DEBIAN_FRONTEND=noninteractive
need_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  }
}
need_pkgs openssl curl python3
$api_only || need_pkgs containerd runc containernetworking-plugins iproute2 iptables util-linux

mkdir -p "$state"
state=$(cd "$state" && pwd)
if ls "$state"/pids/*.pid >/dev/null 2>&1; then
  log "$state has PID files: run kube-down.sh $state first"
  exit 1
fi
if [ -n "$(ls -A "$state")" ] && [ ! -f "$state/kubectl.path" ]; then
  log "$state is not empty and is not a kube-up.sh state dir: not wiping it"
  exit 1
fi
rm -rf --one-file-system "$state"
mkdir -p "$state"/{pki,logs,pids,etcd,host}
chmod 700 "$state/etcd"
echo "$bin/kubectl" >"$state/kubectl.path"
on_exit() {
  local rc=$?
  [ "$rc" = 0 ] || log "failed (logs in $state/logs); stop what started with kube-down.sh $state"
}
trap on_exit EXIT

free_port() { # a port nothing listens on now, on any address
  python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}
etcd_port=$(free_port)
etcd_peer_port=$(free_port)
api_port=$(free_port)
cm_port=$(free_port)
sched_port=$(free_port)
kubelet_port=$(free_port)
kubelet_healthz_port=$(free_port)
node=skydeck-node

start() { # name command...: in the background, its own session, PID recorded
  local name=$1
  shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/pids/$name.pid"
}
wait_for() { # what seconds command...
  local what=$1 secs=$2
  shift 2
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "$what did not come up in ${secs}s"
      [ -f "$state/logs/$what.log" ] && tail -20 "$state/logs/$what.log" >&2
      return 1
    fi
    sleep 0.2
  done
  log "$what ready"
}

# --- the node's slot: bridge, pod network, cgroup root ----------------------
if ! $api_only; then
  slot=
  for n in $(seq 0 99); do
    if ip link add "skk${n}br" type bridge 2>/dev/null; then
      slot=$n
      break
    fi
  done
  [ -n "$slot" ] || {
    log "no free slot (bridges skk0br..skk99br all exist)"
    exit 1
  }
  echo "$slot" >"$state/host/slot"
  bridge=skk${slot}br
  echo "$bridge" >"$state/host/bridge"
  pod_net=10.216.$slot
  node_ip=$pod_net.1
  service_cidr=10.96.$slot.0/24
  ip addr add "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
  cgroup_root=/skydeck-kube-$slot
  for c in /sys/fs/cgroup/*/; do
    # The kubelet wants it in every v1 hierarchy; runc adds it to the
    # unified (v2) one by itself. kube-down.sh removes all of them.
    case $c in */unified/) ;; *) mkdir -p "$c${cgroup_root#/}" ;; esac
    echo "$c${cgroup_root#/}" >>"$state/host/cgroups"
  done
  # The first instance records the sysctls the kubelet changes; the last
  # one down restores them (kube-down.sh).
  (
    flock 9
    others=$(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^skk[0-9]+br$' | grep -vx "$bridge" || true)
    if [ -z "$others" ]; then
      for s in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
        kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
        echo "$s=$(sysctl -n "$s")"
      done >/var/tmp/skydeck-kube.sysctl
    fi
  ) 9</var/tmp
fi

service_cidr=${service_cidr:-10.96.0.0/24}

# --- PKI: a CA, serving and client certs, the service-account key. Valid
# for 30 days, made fresh on each start: a test fixture only.
p=$state/pki
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 30 \
  -subj "/CN=skydeck-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
cert() { # name subject extendedKeyUsage [subjectAltName]
  openssl req -new -newkey rsa:2048 -nodes -keyout "$p/$1.key" -subj "$2" -out "$p/$1.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$3"
    [ -z "${4:-}" ] || echo "subjectAltName=$4"
  } >"$p/$1.ext"
  openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$p/$1.ext" -out "$p/$1.crt" 2>/dev/null
  rm -f "$p/$1.csr" "$p/$1.ext"
}
svc_ip=${service_cidr%.*}.1
cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin "/CN=admin/O=system:masters" clientAuth
openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
if ! $api_only; then
  cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert scheduler "/CN=system:kube-scheduler" clientAuth
  cert kubelet "/CN=system:node:$node/O=system:nodes" clientAuth
  cert kubelet-serving "/CN=$node" serverAuth "IP:$node_ip,IP:127.0.0.1,DNS:$node,DNS:localhost"
fi
log "certificates made"

kubeconfig() { # file user certname
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: skydeck-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 <"$p/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 <"$p/$3.crt")
    client-key-data: $(base64 -w0 <"$p/$3.key")
contexts:
- name: $2@skydeck-test
  context: {cluster: skydeck-test, user: $2}
current-context: $2@skydeck-test
EOF
  chmod 600 "$1"
}
kubeconfig "$state/admin.kubeconfig" admin admin
kubectl=("$bin/kubectl" --kubeconfig "$state/admin.kubeconfig")

# --- etcd, kube-apiserver ---------------------------------------------------
start etcd "$bin/etcd" --name skydeck --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "skydeck=http://127.0.0.1:$etcd_peer_port" --initial-cluster-state new
wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

if $api_only; then
  authz=(--authorization-mode=RBAC)
else
  authz=("--authorization-mode=Node,RBAC" --enable-admission-plugins=NodeRestriction
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt"
    --kubelet-client-key="$p/apiserver-kubelet-client.key"
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP
    --allow-privileged=true)
fi
start kube-apiserver "$bin/kube-apiserver" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$api_port" --insecure-port=0 \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --client-ca-file="$p/ca.crt" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
  --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range="$service_cidr" \
  "${authz[@]}" --profiling=false --v=1
wait_for kube-apiserver 90 curl -fsS --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
  "https://127.0.0.1:$api_port/readyz"
# RBAC's bootstrap roles (system:basic-user, cluster-admin, …) are written
# by a post-start hook; readyz covers it, this makes it explicit.
wait_for "RBAC bootstrap roles" 30 "${kubectl[@]}" get clusterrole system:basic-user

if $api_only; then
  echo "$state/admin.kubeconfig"
  exit 0
fi

# --- controller-manager, scheduler ------------------------------------------
kubeconfig "$state/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
kubeconfig "$state/scheduler.kubeconfig" system:kube-scheduler scheduler
kubeconfig "$state/kubelet.kubeconfig" "system:node:$node" kubelet
start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$state/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$state/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$cm_port" --port=0 --leader-elect=false \
  --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
  --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
  --use-service-account-credentials=true --service-cluster-ip-range="$service_cidr" \
  --allocate-node-cidrs=false --profiling=false
start kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig="$state/scheduler.kubeconfig" \
  --authentication-kubeconfig="$state/scheduler.kubeconfig" \
  --authorization-kubeconfig="$state/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$sched_port" --port=0 --leader-elect=false --profiling=false
wait_for kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$cm_port/healthz"
wait_for kube-scheduler 60 curl -fsSk "https://127.0.0.1:$sched_port/healthz"

# --- containerd in a mount namespace of its own -----------------------------
mkdir -p "$state"/{containerd,cni/net.d,cni/ipam,kubelet/root,kubelet/pki,varlog}
cat >"$state/cni/net.d/10-skydeck.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "skydeck-pods-$slot", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": false, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam",
            "ranges": [[{"subnet": "$pod_net.0/24", "gateway": "$node_ip"}]],
            "routes": [{"dst": "$service_cidr"}]}}]}
EOF
# The API server's service, for pods' in-cluster config: see the top.
sysctl -qw "net.ipv4.conf.$bridge.route_localnet=1"
dnat=(PREROUTING -i "$bridge" -d "$svc_ip/32" -p tcp --dport 443
  -m comment --comment "skydeck-kube $state" -j DNAT --to-destination "127.0.0.1:$api_port")
iptables -t nat -A "${dnat[@]}"
printf '%s\n' "${dnat[@]}" >"$state/host/iptables-nat"
c=$state/containerd
cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$c/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:k8s"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE in this sandbox: runc cannot lower oom_score_adj
  # below ours (the pause container asks for -998 and fails with "can't get
  # final child's PID from pipe: EOF"); clamp it instead.
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/bin/runc"
        Root = "$c/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
    max_conf_num = 1
EOF
# slave propagation: the host's mounts still appear inside, none of ours leak out.
# shellcheck disable=SC2016 # $1 and $@ are the inner shell's arguments
start containerd unshare --mount --propagation slave \
  sh -c 'mount --bind "$1" /var/log && shift && exec "$@"' sh "$state/varlog" \
  /usr/bin/containerd --config "$c/config.toml"
containerd_pid=$(cat "$state/pids/containerd.pid")
ctr=(/usr/bin/ctr --address "$c/containerd.sock" -n k8s.io)
wait_for containerd 30 "${ctr[@]}" version
readlink "/proc/$containerd_pid/ns/mnt" >"$state/host/mount-namespace"
for img in "$images"/*.tar; do
  [ -e "$img" ] || continue
  "${ctr[@]}" images import "$img" >/dev/null
done
log "images imported: $("${ctr[@]}" images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --- kubelet, in containerd's mount namespace --------------------------------
cat >"$state/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $p/kubelet-serving.crt
tlsPrivateKeyFile: $p/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 50
EOF
start kubelet nsenter --mount="/proc/$containerd_pid/ns/mnt" -- "$bin/kubelet" \
  --config="$state/kubelet/config.yaml" \
  --kubeconfig="$state/kubelet.kubeconfig" \
  --container-runtime=remote --container-runtime-endpoint="unix://$c/containerd.sock" \
  --image-service-endpoint="unix://$c/containerd.sock" \
  --root-dir="$state/kubelet/root" --cert-dir="$state/kubelet/pki" \
  --hostname-override="$node" --node-ip="$node_ip" \
  --pod-infra-container-image=localhost/pause:k8s --v=1
node_ready() {
  [ "$("${kubectl[@]}" get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for kubelet 120 node_ready
# The token controller makes each namespace's default ServiceAccount; a pod
# made before it exists is refused.
wait_for "default service account" 60 "${kubectl[@]}" -n default get serviceaccount default
log "up: $(cd "$state/pids" && for f in *.pid; do printf '%s=%s ' "${f%.pid}" "$(cat "$f")"; done)"
echo "$state/admin.kubeconfig"
