#!/usr/bin/env bash
# Provides the official SkyPilot client (`sky`, skypilot==0.14.1) for the
# compatibility tests, in a virtual environment outside the clone, and prints
# the absolute path to its `sky` executable as the last line of stdout.
#
# Usage: SKYDECK_TEST_SKY=$(scripts/sky-venv.sh | tail -n 1)
#
# The venv lives in ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/sky-venv and is
# re-used when its `sky --version` already reports the pinned version, so the
# script is cheap to run on every CI job. Everything but the final path goes
# to stderr. Installs python3-venv from Debian if `python3 -m venv` is missing.
#
# Run the client with SKYPILOT_DISABLE_USAGE_COLLECTION=1 DO_NOT_TRACK=1 and a
# HOME of its own, and never point it at 127.0.0.1:46580 (it would try to
# start a Python API server there).
set -euo pipefail

version=0.14.1
cache=${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}
venv=$cache/sky-venv
sky=$venv/bin/sky

log() { echo "sky-venv: $*" >&2; }

# The client must never send usage data anywhere, not even `--version`.
export SKYPILOT_DISABLE_USAGE_COLLECTION=1 DO_NOT_TRACK=1

installed_version() {
  [ -x "$sky" ] || return 1
  # Its own HOME, so probing the version leaves no state in the caller's.
  local home
  home=$(mktemp -d)
  local out
  out=$(HOME=$home "$sky" --version 2>/dev/null </dev/null) || { rm -rf "$home"; return 1; }
  rm -rf "$home"
  # "skypilot, version 0.14.1"
  printf '%s\n' "$out" | sed -n 's/.*version \([^ ]*\).*/\1/p' | head -n 1
}

if [ "$(installed_version || true)" = "$version" ]; then
  log "re-using $venv (skypilot $version)"
else
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends python3-venv >&2
  fi
  if [ -d "$venv" ]; then
    log "replacing $venv (it does not hold skypilot $version)"
    rm -rf "$venv"
  fi
  mkdir -p "$cache"
  log "creating $venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "skypilot==$version" >&2
  got=$(installed_version || true)
  if [ "$got" != "$version" ]; then
    log "error: $sky reports version '${got}', expected $version"
    exit 1
  fi
fi

# An absolute path even when SKYDECK_CACHE or HOME is relative.
(cd "$(dirname "$sky")" && printf '%s/sky\n' "$(pwd -P)")
