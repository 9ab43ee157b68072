#!/usr/bin/env bash
# Runs every test of the workspace. Installs and starts what the tests need
# (a C compiler, PostgreSQL, the official `sky` client, SSH test hosts, a
# single-node Kubernetes, Chromium and ChromeDriver) and stops it again.
# Usage: scripts/test.sh        (as root on Debian, or with those installed)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skydeck-target}
export SKYDECK_CACHE=${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}
mkdir -p "$SKYDECK_CACHE"

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo not found; install Rust 1.89 or newer (rustup) first" >&2
  exit 1
fi
missing=()
command -v cc >/dev/null || missing+=(build-essential)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# htpasswd: the auth tests import the files it writes.
command -v htpasswd >/dev/null || missing+=(apache2-utils)
# The dashboard's browser test: Debian's Chromium, driven through ChromeDriver.
command -v chromedriver >/dev/null || missing+=(chromium chromium-driver)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "== installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== PostgreSQL" >&2
pg_dir=$(mktemp -d /tmp/skydeck-pg.XXXXXX)
# Outside /tmp and /root: each test host mounts its own over those.
ssh_dir=$(mktemp -d /var/tmp/skydeck-ssh-hosts.XXXXXX)
# Short: containerd's unix socket lives in it.
kube_dir=$(mktemp -d /var/tmp/skydeck-kube.XXXXXX)
trap 'scripts/pg-down.sh "$pg_dir"; scripts/ssh-hosts-down.sh "$ssh_dir"; bash scripts/kube-down.sh "$kube_dir"' EXIT
SKYDECK_TEST_POSTGRES_URL=$(scripts/pg-up.sh "$pg_dir")
export SKYDECK_TEST_POSTGRES_URL

echo "== SSH test hosts (sshd in network, UTS, mount and PID namespaces)" >&2
if [ "$(id -u)" = 0 ]; then
  SKYDECK_TEST_SSH_HOSTS=$(bash scripts/ssh-hosts-up.sh "$ssh_dir" | tail -n 1)
  export SKYDECK_TEST_SSH_HOSTS
else
  echo "test.sh: not root, so no SSH test hosts: their tests skip (and fail under CI)" >&2
fi

echo "== Kubernetes 1.20 (etcd, API server, controllers, scheduler, containerd, kubelet)" >&2
if [ "$(id -u)" = 0 ]; then
  # Built from Debian's archive once, cached in $SKYDECK_CACHE/kube.
  SKYDECK_TEST_KUBECONFIG=$(bash scripts/kube-up.sh "$kube_dir" | tail -n 1)
  export SKYDECK_TEST_KUBECONFIG
  export SKYDECK_TEST_KUBE_IMAGE=localhost/debian:bookworm
else
  echo "test.sh: not root, so no Kubernetes: its tests skip (and fail under CI)" >&2
fi

if command -v chromedriver >/dev/null; then
  SKYDECK_TEST_CHROMEDRIVER=$(command -v chromedriver)
  export SKYDECK_TEST_CHROMEDRIVER
else
  echo "test.sh: no chromedriver (not root?), so the browser test skips (and fails under CI)" >&2
fi

echo "== official sky client (skypilot 0.14.1)" >&2
SKYDECK_TEST_SKY=$(bash scripts/sky-venv.sh | tail -n 1)
export SKYDECK_TEST_SKY

echo "== Helm chart (charts/skydeck)" >&2
bash scripts/chart-test.sh

echo "== container image and VM deployment test tools (hadolint, shellcheck, debootstrap, systemd-analyze)" >&2
SKYDECK_TEST_DEPLOY_TOOLS=$(bash scripts/image-test.sh | tail -n 1)
export SKYDECK_TEST_DEPLOY_TOOLS

if [ -n "${SKYDECK_TEST_KUBECONFIG:-}" ]; then
  echo "== the server's image in the test Kubernetes (for the chart, live)" >&2
  cargo build --locked -p skydeck
  SKYDECK_TEST_SKYDECK_IMAGE=$(bash scripts/kube-skydeck-image.sh "$kube_dir" "$CARGO_TARGET_DIR/debug/skydeck" | tail -n 1)
  export SKYDECK_TEST_SKYDECK_IMAGE
  # Fetched and checked by scripts/chart-test.sh above.
  export SKYDECK_TEST_HELM=$SKYDECK_CACHE/chart-tools/helm3/helm
fi

echo "== format and lints" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
