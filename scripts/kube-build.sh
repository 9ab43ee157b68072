#!/usr/bin/env bash
# Provides a real single-node Kubernetes (1.20) for the tests, from Debian
# bookworm's archive only (no other download, no image registry):
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
#                   built from Debian's source package src:kubernetes
#                   (1.20.2, complete vendor/ tree, Go 1.19 from golang-go,
#                   GOPROXY=off: nothing is fetched by the build)
#   kubectl         Debian's kubernetes-client package, extracted, not
#                   installed (this image may have another /usr/bin/kubectl)
#   etcd            Debian's etcd-server package, extracted the same way
#   images/pause.tar            localhost/pause:k8s, a static C program
#   images/debian-bookworm.tar  localhost/debian:bookworm, debootstrap
#                               --variant=minbase (bash, coreutils, perl-base)
# into DIR (default ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/kube): binaries
# in DIR/bin, docker-archive tars in DIR/images (scripts/kube-image.sh).
#
# Usage: scripts/kube-build.sh [--api-only] [DIR]      prints DIR/bin
#   --api-only   only etcd, kube-apiserver and kubectl (the chart's RBAC
#                tests need no node)
# Idempotent: what is already in DIR is kept; a second run returns at once.
# Cold, on 2 cores: the API server about 4 minutes (code generators
# included), the other three binaries together about 2 more, the images
# under a minute. The 2.6 GB source tree and Go cache are deleted afterwards
# (KEEP_SRC=1 keeps them), leaving about 500 MB.
# Needs root on Debian for apt (golang-go, dpkg-dev, gcc, debootstrap; a
# deb-src entry for Debian's own mirror is added when there is none).
set -euo pipefail
api_only=false
if [ "${1:-}" = --api-only ]; then
  api_only=true
  shift
fi
dir=${1:-${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/kube}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/bin" "$dir/logs" "$dir/images"
dir=$(cd "$dir" && pwd)
bin=$dir/bin
export DEBIAN_FRONTEND=noninteractive
log() { echo "kube-build: $*" >&2; }

if $api_only; then
  binaries=(kube-apiserver)
else
  binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
fi
images_ready() { $api_only || { [ -s "$dir/images/pause.tar" ] && [ -s "$dir/images/debian-bookworm.tar" ]; }; }
all_ready=true
for b in "${binaries[@]}" kubectl etcd; do [ -x "$bin/$b" ] || all_ready=false; done
if $all_ready && images_ready; then
  echo "$bin"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  log "needs Debian's apt (the binaries come from Debian bookworm's archive)"
  exit 1
fi

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

# extract_deb PACKAGE PATH-IN-PACKAGE: puts that file of the package into $bin.
extract_deb() {
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download "$1" >/dev/null 2>&1) || {
    apt-get update -qq
    (cd "$tmp" && apt-get download "$1" >/dev/null)
  }
  dpkg-deb -x "$tmp"/"$1"_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/$2" "$bin/$(basename "$2")"
  rm -rf "$tmp"
  log "$(basename "$2") from Debian's $1"
}
[ -x "$bin/kubectl" ] || extract_deb kubernetes-client usr/bin/kubectl
[ -x "$bin/etcd" ] || extract_deb etcd-server usr/bin/etcd

missing=()
for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  need_pkgs golang-go rsync dpkg-dev ca-certificates
  src=$dir/src
  if [ ! -f "$src/go.mod" ]; then
    if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding /etc/apt/sources.list.d/debian-src.sources (deb-src of Debian's own entries)"
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        >/etc/apt/sources.list.d/debian-src.sources
      apt-get update -qq
    fi
    rm -rf "$dir/dl" "$src"
    mkdir -p "$dir/dl"
    (cd "$dir/dl" && apt-get source --download-only kubernetes >/dev/null 2>&1) || {
      apt-get update -qq
      (cd "$dir/dl" && apt-get source --download-only kubernetes >/dev/null)
    }
    (cd "$dir/dl" && dpkg-source -x ./kubernetes_*.dsc "$src" >"$dir/logs/dpkg-source.log" 2>&1)
    # dpkg-source leaves a copy of the orig tarball next to the tree.
    rm -rf "$dir/dl" "$dir"/kubernetes_*.orig.tar.*
  fi
  # The Makefile wants the tree inside a GOPATH (as debian/rules does), and
  # generates zz_generated.openapi.go, which a bare `go build` would lack.
  # One make for all: the code generators run once.
  mkdir -p "$src/.go/src/k8s.io"
  ln -sfn ../../.. "$src/.go/src/k8s.io/kubernetes"
  what=$(printf 'cmd/%s ' "${missing[@]}")
  log "make WHAT='${what% }' (a few minutes; log: $dir/logs/build.log)"
  t=$(date +%s)
  if ! (cd "$src" && env GOPATH="$src/.go" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
    GO111MODULE=on HOME="$dir/home" make WHAT="${what% }" >"$dir/logs/build.log" 2>&1); then
    tail -30 "$dir/logs/build.log" >&2
    log "the build of ${missing[*]} failed"
    exit 1
  fi
  for b in "${missing[@]}"; do
    install -m 0755 "$src/_output/local/bin/linux/amd64/$b" "$bin/$b"
  done
  log "${missing[*]} built in $(($(date +%s) - t))s"
  [ "${KEEP_SRC:-0}" = 1 ] || rm -rf "$src" "${dir:?}/home"
fi

if ! $api_only && [ ! -s "$dir/images/pause.tar" ]; then
  # The pod sandbox's process: waits for SIGTERM, reaps orphans.
  need_pkgs gcc libc6-dev
  tmp=$(mktemp -d)
  cat >"$tmp/pause.c" <<'EOF'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void term(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction a = {0};
  a.sa_handler = term; sigaction(SIGINT, &a, 0); sigaction(SIGTERM, &a, 0);
  a.sa_handler = reap; a.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &a, 0);
  for (;;) pause();
}
EOF
  mkdir "$tmp/root"
  gcc -static -Os -s -o "$tmp/root/pause" "$tmp/pause.c"
  bash "$here/kube-image.sh" localhost/pause:k8s "$tmp/root" "$dir/images/pause.tar" '{"Cmd":["/pause"]}'
  rm -rf "$tmp"
  log "image localhost/pause:k8s"
fi

if ! $api_only && [ ! -s "$dir/images/debian-bookworm.tar" ]; then
  need_pkgs debootstrap
  mirror=${SKYDECK_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$dir/images/rootfs.tmp
  rm -rf --one-file-system "$rootfs"
  t=$(date +%s)
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$dir/logs/debootstrap.log" 2>&1 || {
    tail -20 "$dir/logs/debootstrap.log" >&2
    log "debootstrap failed"
    exit 1
  }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  bash "$here/kube-image.sh" localhost/debian:bookworm "$rootfs" "$dir/images/debian-bookworm.tar"
  rm -rf --one-file-system "$rootfs"
  log "image localhost/debian:bookworm in $(($(date +%s) - t))s"
fi
echo "$bin"
