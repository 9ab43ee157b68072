#!/usr/bin/env bash
# Starts a real Kubernetes API server (etcd + kube-apiserver, TLS, RBAC) on
# loopback for the chart's RBAC tests, and prints the path of an admin
# kubeconfig. No kubelet, controllers or scheduler: objects are stored and
# authorized, nothing runs.
#
# Usage: scripts/kube-apiserver-up.sh DIR     (stop: scripts/kube-apiserver-down.sh DIR)
# Binaries: scripts/kube-build.sh (Debian's kubernetes 1.20 and etcd 3.4),
# built or found in ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/kube.
# DIR gets the PKI, etcd's data, logs/ and pids/; ports are free ones the
# kernel picks, all on 127.0.0.1. Up in about 5 s.
set -euo pipefail
dir=${1:?usage: kube-apiserver-up.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(bash "$here/kube-build.sh" | tail -n 1)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if ls "$dir"/pids/*.pid >/dev/null 2>&1; then
  echo "kube-apiserver-up: $dir has PID files: run kube-apiserver-down.sh $dir first" >&2
  exit 1
fi
mkdir -p "$dir/pki" "$dir/logs" "$dir/pids" "$dir/etcd"
chmod 700 "$dir/etcd"
log() { echo "kube-apiserver-up: $*" >&2; }
trap 'rc=$?; [ $rc = 0 ] || log "failed (logs in $dir/logs); stop what started with kube-apiserver-down.sh $dir"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
etcd_port=$(free_port)
etcd_peer_port=$(free_port)
api_port=$(free_port)

# --- PKI: a CA, the API server's serving cert, an admin client cert, the
# service-account signing key. Valid for a day: a test fixture only.
p=$dir/pki
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 1 \
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
    -days 1 -sha256 -extfile "$p/$1.ext" -out "$p/$1.crt" 2>/dev/null
  rm -f "$p/$1.csr" "$p/$1.ext"
}
cert apiserver "/CN=kube-apiserver" serverAuth "IP:127.0.0.1,DNS:localhost"
cert admin "/CN=admin/O=system:masters" clientAuth
openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null

cat >"$dir/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $p/ca.crt
users:
- name: admin
  user:
    client-certificate: $p/admin.crt
    client-key: $p/admin.key
contexts:
- name: admin@test
  context: {cluster: test, user: admin}
current-context: admin@test
EOF
chmod 600 "$dir/admin.kubeconfig"

start() { # name command...: in the background, its own session, PID recorded
  local name=$1
  shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/$name.pid"
}
wait_for() { # what seconds command...
  local what=$1 secs=$2
  shift 2
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "$what did not come up in ${secs}s; its log:"
      tail -20 "$dir/logs/$what.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

start etcd "$bin/etcd" --name test --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "test=http://127.0.0.1:$etcd_peer_port" --initial-cluster-state new
wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$bin/kube-apiserver" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$api_port" --insecure-port=0 \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --client-ca-file="$p/ca.crt" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
  --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.96.0.0/24 \
  --authorization-mode=RBAC --profiling=false --v=1
wait_for kube-apiserver 90 curl -fsS --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
  "https://127.0.0.1:$api_port/readyz"
# RBAC's bootstrap roles (system:basic-user, cluster-admin, …) are written
# by a post-start hook; readyz covers it, this makes it explicit.
wait_for kube-apiserver 30 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get clusterrole system:basic-user
echo "$bin/kubectl" >"$dir/kubectl.path"
echo "$dir/admin.kubeconfig"
