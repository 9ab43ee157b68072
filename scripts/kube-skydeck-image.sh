#!/usr/bin/env bash
# Puts Skydeck's own image into the containerd of a node that
# scripts/kube-up.sh STATE started, so the chart can run there without a
# registry: the runtime filesystem of scripts/build-rootfs.sh (what
# deploy/Dockerfile's final stage makes) with BINARY as
# /usr/local/bin/skydeck, and the Dockerfile's ENV, USER, WORKDIR, EXPOSE,
# ENTRYPOINT and CMD as the image's config. Prints the image's name.
#
# Usage: scripts/kube-skydeck-image.sh STATE [BINARY] [REF]
#   BINARY  default: $CARGO_TARGET_DIR/debug/skydeck (cargo build -p skydeck)
#   REF     default: localhost/skydeck:test (the chart's apiService.image;
#           use imagePullPolicy Never or IfNotPresent)
# Needs root (build-rootfs.sh chroots). The rootfs base is cached by
# build-rootfs.sh; a rerun takes seconds plus the import.
set -euo pipefail
state=${1:?usage: kube-skydeck-image.sh STATE [BINARY] [REF]}
here=$(cd "$(dirname "$0")" && pwd)
binary=${2:-${CARGO_TARGET_DIR:-$HOME/.cache/skydeck-target}/debug/skydeck}
ref=${3:-localhost/skydeck:test}
state=$(cd "$state" && pwd)
sock=$state/containerd/containerd.sock
[ -S "$sock" ] || {
  echo "kube-skydeck-image: no containerd at $sock (scripts/kube-up.sh $state first)" >&2
  exit 1
}
[ -x "$binary" ] || {
  echo "kube-skydeck-image: $binary is not an executable (cargo build -p skydeck)" >&2
  exit 1
}

work=$(mktemp -d /var/tmp/skydeck-image.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
bash "$here/build-rootfs.sh" "$work/out" "$binary" >&2
# image.conf holds the Dockerfile's lines; the image config wants JSON.
config=$(python3 - "$work/out/image.conf" <<'PY'
import json, shlex, sys
config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
for line in open(sys.argv[1]):
    word, _, rest = line.strip().partition(" ")
    word = word.upper()
    if word == "ENV":
        config["Env"] += shlex.split(rest)
    elif word == "USER":
        config["User"] = rest
    elif word == "WORKDIR":
        config["WorkingDir"] = rest
    elif word == "EXPOSE":
        config["ExposedPorts"] = {p if "/" in p else p + "/tcp": {} for p in rest.split()}
    elif word in ("ENTRYPOINT", "CMD"):
        config["Entrypoint" if word == "ENTRYPOINT" else "Cmd"] = json.loads(rest)
print(json.dumps(config))
PY
)
bash "$here/kube-image.sh" "$ref" "$work/out/rootfs" "$work/image.tar" "$config"
/usr/bin/ctr --address "$sock" -n k8s.io images import "$work/image.tar" >/dev/null
echo "$ref"
