#!/bin/sh
# Turns a Debian bookworm base into Skydeck's runtime filesystem: the
# packages in runtime-packages.txt (beside this script) and the user the
# server runs as. The same script runs in deploy/Dockerfile (on
# debian:bookworm-slim) and in scripts/build-rootfs.sh (in a chroot on
# `debootstrap --variant=minbase bookworm`), so both build the same tree.
#
# The binary (/usr/local/bin/skydeck) and the runtime settings (ENV, USER,
# WORKDIR, CMD...) are added by the Dockerfile, which scripts/build-rootfs.sh
# reads them from. Run as root inside the target filesystem.
set -eu

here=$(dirname "$0")
user=skydeck
uid=1000
gid=1000
home=/home/skydeck

# Package names: comments and blank lines dropped.
packages=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/runtime-packages.txt")

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $packages
apt-get clean
rm -rf /var/lib/apt/lists/*

groupadd --gid "$gid" "$user"
useradd --uid "$uid" --gid "$gid" --home-dir "$home" --create-home \
  --shell /bin/bash "$user"
# The state directory (SKYDECK_HOME): made here, owned by the user, so a
# volume mounted on it starts with the right owner.
install -d -o "$uid" -g "$gid" -m 0700 "$home/.skydeck"
# Where credentials and keys are mounted (see charts/skydeck): made here so
# that the parents of nested mounts (~/.config/vastai, …) belong to the
# user rather than being created for root by the container runtime.
install -d -o "$uid" -g "$gid" -m 0700 "$home/.ssh"
install -d -o "$uid" -g "$gid" -m 0755 "$home/.config" "$home/.kube" "$home/.sky"
