#!/usr/bin/env bash
# Provides a real Kubernetes API server for the chart's RBAC tests, from
# Debian bookworm's archive only (no other download, no image registry):
#   kube-apiserver  built from Debian's source package src:kubernetes
#                   (1.20.2, complete vendor/ tree, Go 1.19 from golang-go,
#                   GOPROXY=off: nothing is fetched by the build)
#   kubectl         Debian's kubernetes-client package, extracted, not
#                   installed (this image may have another /usr/bin/kubectl)
#   etcd            Debian's etcd-server package, extracted the same way
# into DIR/bin (default ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/kube).
#
# Usage: scripts/kube-build.sh [DIR]      prints DIR/bin
# Idempotent: a second run finds the binaries and returns at once. Cold, on
# 2 cores: about 4 minutes (the API server build, its code generators
# included); the 2.6 GB source tree and Go cache are deleted afterwards
# (KEEP_SRC=1 keeps them), leaving about 160 MB.
# Needs root on Debian for apt (golang-go, dpkg-dev; a deb-src entry for
# Debian's own mirror is added when there is none).
set -euo pipefail
dir=${1:-${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/kube}
mkdir -p "$dir/bin" "$dir/logs"
dir=$(cd "$dir" && pwd)
bin=$dir/bin
export DEBIAN_FRONTEND=noninteractive
log() { echo "kube-build: $*" >&2; }

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ]; then
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

if [ ! -x "$bin/kube-apiserver" ]; then
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
  mkdir -p "$src/.go/src/k8s.io"
  ln -sfn ../../.. "$src/.go/src/k8s.io/kubernetes"
  log "make WHAT=cmd/kube-apiserver (a few minutes; log: $dir/logs/build.log)"
  t=$(date +%s)
  if ! (cd "$src" && env GOPATH="$src/.go" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
    GO111MODULE=on HOME="$dir/home" make WHAT=cmd/kube-apiserver >"$dir/logs/build.log" 2>&1); then
    tail -30 "$dir/logs/build.log" >&2
    log "the build of kube-apiserver failed"
    exit 1
  fi
  install -m 0755 "$src/_output/local/bin/linux/amd64/kube-apiserver" "$bin/kube-apiserver"
  log "kube-apiserver built in $(($(date +%s) - t))s"
  [ "${KEEP_SRC:-0}" = 1 ] || rm -rf "$src" "$dir/home"
fi
echo "$bin"
