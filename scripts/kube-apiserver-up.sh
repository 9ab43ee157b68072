#!/usr/bin/env bash
# Starts a real Kubernetes API server (etcd + kube-apiserver, TLS, RBAC) on
# loopback for the chart's RBAC tests, and prints the path of an admin
# kubeconfig; DIR/kubectl.path names a matching kubectl. No kubelet,
# controllers or scheduler: objects are stored and authorized, nothing runs.
#
# Usage: scripts/kube-apiserver-up.sh DIR     (stop: scripts/kube-apiserver-down.sh DIR)
# The same as scripts/kube-up.sh --api-only DIR (which see).
set -euo pipefail
exec bash "$(dirname "$0")/kube-up.sh" --api-only "${1:?usage: kube-apiserver-up.sh DIR}"
