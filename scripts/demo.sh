#!/usr/bin/env bash
# The main job on the embedded default (SQLite, local infrastructure): build
# Skydeck, start its API server in the background, launch a two-node task
# from examples/ and stream its output, look at the queue and the cluster,
# then tear the cluster down. The API server keeps running afterwards
# (`skydeck api stop` stops it), as SkyPilot's does.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skydeck-target}
if ! command -v cc >/dev/null && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential
fi
cargo build --release --locked -p skydeck
skydeck="$CARGO_TARGET_DIR/release/skydeck"
set -x
"$skydeck" api start
"$skydeck" api info
"$skydeck" check
"$skydeck" launch -y -c demo examples/two_node.yaml
"$skydeck" queue demo
"$skydeck" status
"$skydeck" down -y demo
"$skydeck" api status --all-status
