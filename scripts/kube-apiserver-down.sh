#!/usr/bin/env bash
# Stops what scripts/kube-apiserver-up.sh DIR started, by the PIDs it
# recorded, and removes DIR: scripts/kube-down.sh DIR.
set -uo pipefail
exec bash "$(dirname "$0")/kube-down.sh" "${1:?usage: kube-apiserver-down.sh DIR}"
