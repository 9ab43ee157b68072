#!/usr/bin/env bash
# Writes a container image as a docker-archive tar (what `docker save`
# writes, what `ctr images import` reads) from a root filesystem, without
# Docker or a registry: one uncompressed layer, a config with the image's
# settings, a manifest naming it REF.
#
# Usage: scripts/kube-image.sh REF ROOTFS OUT.tar [CONFIG_JSON]
#   REF          the image's name, e.g. localhost/debian:bookworm
#   ROOTFS       a directory (its contents become the layer) or a tar of one
#   CONFIG_JSON  the image config's "config" object (Env, Cmd, Entrypoint,
#                User, WorkingDir, ExposedPorts …); default: a PATH and
#                Cmd ["/bin/bash"]
set -euo pipefail
[ $# -ge 3 ] && [ $# -le 4 ] || {
  echo "usage: kube-image.sh REF ROOTFS OUT.tar [CONFIG_JSON]" >&2
  exit 2
}
ref=$1 rootfs=$2 out=$3
config=${4:-'{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/bash"]}'}
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)

tmp=$(mktemp -d "$(dirname "$out")/.kube-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ -d "$rootfs" ]; then
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$tmp/layer.tar" .
else
  cp "$rootfs" "$tmp/layer.tar"
fi
diff=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
mkdir "$tmp/$diff"
mv "$tmp/layer.tar" "$tmp/$diff/layer.tar"
cfg=$(printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/kube-image.sh"}]}' \
  "$arch" "$config" "$diff")
cfg_sha=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
printf '%s' "$cfg" >"$tmp/$cfg_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
  "$cfg_sha" "$ref" "$diff" >"$tmp/manifest.json"
tar -C "$tmp" -cf "$out.part" manifest.json "$cfg_sha.json" "$diff"
mv "$out.part" "$out"
