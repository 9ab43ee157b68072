#!/usr/bin/env bash
# Builds Skydeck's runtime filesystem without Docker: what the final stage of
# deploy/Dockerfile makes, on `debootstrap --variant=minbase bookworm`
# instead of debian:bookworm-slim, set up by the same deploy/runtime-setup.sh
# (packages from deploy/runtime-packages.txt, the skydeck user, uid 1000).
#
# Usage: scripts/build-rootfs.sh [--tar] OUTDIR [BINARY]
#
#   BINARY   the skydeck binary to put at /usr/local/bin/skydeck; default: a
#            release build (cargo build --release --locked -p skydeck)
#   --tar    also write OUTDIR/skydeck-rootfs.tar and OUTDIR/import.sh, which
#            loads it as an image: `bash OUTDIR/import.sh docker skydeck:rootfs`
#            (or podman). `import` cannot set a HEALTHCHECK: give
#            `--health-cmd 'skydeck api health'` to `docker run` instead.
#
# It writes:
#   OUTDIR/rootfs/       the root filesystem
#   OUTDIR/image.conf    the image's runtime settings (ENV, USER, WORKDIR,
#                        EXPOSE, HEALTHCHECK, ENTRYPOINT, CMD), copied from
#                        deploy/Dockerfile's final stage, one per line
#
# Run as root on Debian (debootstrap and chroot need it); it installs
# debootstrap when missing. The Debian mirror is the one apt uses here
# (/etc/apt/sources.list*), or SKYDECK_DEBIAN_MIRROR and
# SKYDECK_DEBIAN_SECURITY_MIRROR. The debootstrapped and set-up base is kept in
# ${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}/rootfs, keyed by a hash of the
# package list, the setup script, this script and the mirrors, so a rerun
# only copies it and adds the binary (seconds).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SKYDECK_CACHE:-$HOME/.cache/skydeck-ci}
suite=bookworm

log() { echo "build-rootfs: $*" >&2; }
die() {
  log "$*"
  exit 1
}

tar_out=false
args=()
for arg in "$@"; do
  case $arg in
    --tar) tar_out=true ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    -*) die "unknown option $arg (usage: build-rootfs.sh [--tar] OUTDIR [BINARY])" ;;
    *) args+=("$arg") ;;
  esac
done
[ ${#args[@]} -ge 1 ] && [ ${#args[@]} -le 2 ] ||
  die "usage: build-rootfs.sh [--tar] OUTDIR [BINARY]"
out=${args[0]}
binary=${args[1]:-}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"

# ---------------------------------------------------------------------------
# Mounts: everything this script mounts lies under a directory it made, and
# is unmounted before that directory is removed.

mounts_under() { # prints mount points under $1, deepest first
  local dir
  dir=$(realpath -m "$1")
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unmount_under() {
  local point
  for point in $(mounts_under "$1"); do
    umount -l "$point" || true
  done
  [ -z "$(mounts_under "$1")" ] || die "still mounted under $1; not removing it"
}

remove_tree() {
  [ -e "$1" ] || return 0
  unmount_under "$1"
  rm -rf --one-file-system "$1"
}

# ---------------------------------------------------------------------------
# The Debian mirror apt uses here, for a suite (bookworm, bookworm-security).

apt_uri_for_suite() {
  local want=$1 file
  {
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$file" ] || continue
      # deb [options] URI SUITE COMPONENTS...
      awk -v want="$want" '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == want) print $i
        }' "$file"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
      [ -f "$file" ] || continue
      # deb822 stanzas: Types, URIs, Suites, Enabled.
      awk -v want="$want" '
        BEGIN { RS = ""; FS = "\n" }
        {
          types = ""; uris = ""; suites = ""; enabled = "yes"
          for (i = 1; i <= NF; i++) {
            line = $i
            if (line ~ /^[[:space:]]*#/) continue
            key = tolower(line); sub(/:.*/, "", key)
            value = line; sub(/^[^:]*:[[:space:]]*/, "", value)
            if (key == "types") types = value
            else if (key == "uris") uris = value
            else if (key == "suites") suites = value
            else if (key == "enabled") enabled = tolower(value)
          }
          if (enabled == "no" || (" " types " ") !~ / deb /) next
          n = split(suites, s, /[[:space:]]+/)
          for (j = 1; j <= n; j++) if (s[j] == want) { split(uris, u, /[[:space:]]+/); print u[1]; break }
        }' "$file"
    done
  } | head -n 1
}

mirror=${SKYDECK_DEBIAN_MIRROR:-$(apt_uri_for_suite "$suite")}
mirror=${mirror:-http://deb.debian.org/debian}
security=${SKYDECK_DEBIAN_SECURITY_MIRROR:-$(apt_uri_for_suite "$suite-security")}
security=${security:-http://deb.debian.org/debian-security}
arch=$(dpkg --print-architecture)

# ---------------------------------------------------------------------------
# The base: debootstrap + deploy/runtime-setup.sh, cached.

packages_file=$repo/deploy/runtime-packages.txt
setup_script=$repo/deploy/runtime-setup.sh
[ -f "$packages_file" ] && [ -f "$setup_script" ] || die "deploy/runtime-* are missing under $repo"

key=$(
  {
    cat "$packages_file" "$setup_script" "$0"
    echo "$mirror $security $arch $suite"
  } | sha256sum | cut -c1-16
)
bases=$cache/rootfs
base=$bases/base-$key

build_base() {
  local tmp=$bases/tmp-$key-$$
  remove_tree "$tmp"
  trap 'remove_tree "'"$tmp"'"' EXIT
  mkdir -p "$tmp"

  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      debootstrap debian-archive-keyring >/dev/null
  fi

  log "debootstrap --variant=minbase $suite from $mirror (a minute or two, once)"
  debootstrap --variant=minbase --arch="$arch" "$suite" "$tmp" "$mirror" >"$bases/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $bases/debootstrap.log"

  # apt sources as debian:bookworm-slim has them (deb822, with updates and
  # security), from the mirrors used here.
  rm -f "$tmp/etc/apt/sources.list"
  cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

  # Slim, as debian:bookworm-slim is: no documentation, manual pages or
  # translations, neither from debootstrap nor from packages installed later.
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/skydeck-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  find "$tmp/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$tmp/usr/share/doc" -mindepth 1 -type d -empty -delete
  local dir
  for dir in groff info linda lintian/overrides locale man; do
    [ ! -d "$tmp/usr/share/$dir" ] || find "$tmp/usr/share/$dir" -mindepth 1 -delete
  done

  # Run deploy/runtime-setup.sh inside, as the Dockerfile's RUN does: with
  # /proc, name resolution, and no service starting in the chroot.
  rm -f "$tmp/etc/resolv.conf"
  cat /etc/resolv.conf >"$tmp/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/tmp/skydeck-runtime"
  cp "$packages_file" "$setup_script" "$tmp/tmp/skydeck-runtime/"
  mount -t proc proc "$tmp/proc"
  log "deploy/runtime-setup.sh in the chroot"
  chroot "$tmp" /bin/sh /tmp/skydeck-runtime/runtime-setup.sh >"$bases/setup.log" 2>&1 ||
    die "deploy/runtime-setup.sh failed in the chroot; see $bases/setup.log"
  unmount_under "$tmp"
  rm -rf "$tmp/tmp/skydeck-runtime" "$tmp/usr/sbin/policy-rc.d"

  # Nothing of this machine stays behind: the container runtime provides
  # these files at run time.
  : >"$tmp/etc/resolv.conf"
  echo localhost >"$tmp/etc/hostname"
  rm -rf "$tmp/var/cache/apt/"*.bin "$tmp/var/log/"*.log "$tmp/var/log/apt/"*

  mv "$tmp" "$base"
  trap - EXIT
  # Bases of older keys are never used again.
  local old
  for old in "$bases"/base-*; do
    [ "$old" = "$base" ] || remove_tree "$old"
  done
}

mkdir -p "$bases"
exec 9>"$bases/.lock"
flock 9
if [ -f "$base/usr/bin/tini" ]; then
  log "base $key from the cache"
else
  build_base
fi

# ---------------------------------------------------------------------------
# The binary.

if [ -z "$binary" ]; then
  command -v cargo >/dev/null || die "no BINARY given and cargo is not installed"
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skydeck-target}
  log "cargo build --release --locked -p skydeck"
  (cd "$repo" && cargo build --release --locked -p skydeck) >&2
  binary=$CARGO_TARGET_DIR/release/skydeck
fi
[ -f "$binary" ] && [ -x "$binary" ] || die "$binary is not an executable file"

# ---------------------------------------------------------------------------
# OUTDIR: only ever replaced when an earlier run of this script made it.

marker=$out/.skydeck-rootfs
if [ -e "$out" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$out")" ]; then
  die "$out exists and was not made by this script; give a new or empty directory"
fi
mkdir -p "$out"
remove_tree "$out/rootfs"
rm -f "$out/skydeck-rootfs.tar" "$out/import.sh" "$out/image.conf"
echo "$key" >"$marker"

root=$out/rootfs
cp -a --reflink=auto "$base" "$root"
install -m 0755 -o root -g root "$binary" "$root/usr/local/bin/skydeck"
# The binary runs on this filesystem's libraries.
chroot "$root" /usr/local/bin/skydeck --version >/dev/null ||
  die "$binary does not run inside the rootfs (built for another glibc?)"

# The runtime settings of deploy/Dockerfile's final stage, one instruction per
# line (continuation lines joined, comments dropped).
awk '
  /^[[:space:]]*#/ { next }
  {
    text = $0
    more = sub(/\\[[:space:]]*$/, "", text)
    joined = (joined == "" ? text : joined " " text)
    if (more) next
    if (joined !~ /^[[:space:]]*$/) print joined
    joined = ""
  }' "$repo/deploy/Dockerfile" |
  awk '
    toupper($1) == "FROM" { n = 0; delete keep; next }
    toupper($1) ~ /^(ENV|USER|WORKDIR|EXPOSE|HEALTHCHECK|ENTRYPOINT|CMD)$/ { keep[++n] = $0 }
    END { for (i = 1; i <= n; i++) print keep[i] }' >"$out/image.conf"
grep -q '^CMD ' "$out/image.conf" || die "found no CMD in deploy/Dockerfile's final stage"
if grep -q '[$]' "$out/image.conf"; then
  die "deploy/Dockerfile's runtime settings use variables, which this script cannot expand"
fi

if $tar_out; then
  log "writing $out/skydeck-rootfs.tar"
  tar --numeric-owner --xattrs -C "$root" -cf "$out/skydeck-rootfs.tar" .
  # `import --change` takes these instructions (not HEALTHCHECK).
  {
    cat <<'EOF'
#!/usr/bin/env bash
# Loads skydeck-rootfs.tar (beside this script) as a container image, with
# the runtime settings of deploy/Dockerfile. Written by build-rootfs.sh.
# Usage: bash import.sh [docker|podman] [NAME:TAG]
# `import` cannot set a HEALTHCHECK: run the image with
#   --health-cmd 'skydeck api health'
set -euo pipefail
tool=${1:-docker}
name=${2:-skydeck:rootfs}
changes=(
EOF
    while IFS= read -r line; do
      case $line in
        HEALTHCHECK*) ;;
        *"'"*) printf '  %q\n' "$line" ;;
        *) printf "  '%s'\n" "$line" ;;
      esac
    done <"$out/image.conf"
    cat <<'EOF'
)
args=()
for change in "${changes[@]}"; do
  args+=(--change "$change")
done
exec "$tool" import "${args[@]}" "$(dirname "$0")/skydeck-rootfs.tar" "$name"
EOF
  } >"$out/import.sh"
  chmod 0755 "$out/import.sh"
fi

log "done: $root ($(du -sh --one-file-system "$root" | cut -f1)), settings in $out/image.conf"
