//! Shell scripts run in a cluster's pods through exec, beside the SSH
//! provider's (which this provider shares: a pod is a host whose login is
//! the container's user). Each takes the cluster's name as `$1`, a
//! `ClusterName`, so no stored path aims anything.

/// Prints `uname -m`, then `glibc`, `musl` or `unknown`: whether the
/// server's own binary can run here.
pub const PLATFORM: &str = r#"uname -m
if getconf GNU_LIBC_VERSION >/dev/null 2>&1; then echo glibc
elif ls /lib/ld-musl-* >/dev/null 2>&1; then echo musl
else echo unknown; fi
"#;

/// Installs stdin as `$HOME/$1/$3` (dir `$1`, expected sha256 `$2`),
/// checked then renamed, so a half copy never sits at the
/// content-addressed path (the SSH provider's install, in a pod).
pub const INSTALL: &str = r#"set -e
cd "$HOME"
mkdir -p "$1"
part="$1/.partial.$$"
trap 'rm -f "$part"' EXIT
cat >"$part"
if command -v sha256sum >/dev/null 2>&1; then
  sum=$(sha256sum "$part" | cut -d' ' -f1)
  if [ "$sum" != "$2" ]; then echo "the copy's sha256 is $sum, not $2" >&2; exit 5; fi
fi
chmod 755 "$part"
mv -f "$part" "$1/$3"
"#;

/// Starts the worker's `node-serve` on port `$2` unless it already
/// listens there, detached from the exec session; waits until it listens.
pub const START_NODE_SERVE: &str = r#"set -u
case "${HOME:-}" in ''|/) echo "the container's user has no home directory" >&2; exit 90;; esac
d="$HOME/.skydeck/clusters/$1"
port=$(printf '%04X' "$2")
listening() {
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    while read -r _ local _ state _; do
      [ "$state" = 0A ] && [ "${local##*:}" = "$port" ] && return 0
    done <"$f"
  done
  return 1
}
listening && exit 0
mkdir -p "$d/agent"
cd "$d" || exit 92
setsid "$d/bin/skydeck" agent node-serve --listen "0.0.0.0:$2" --secret-file "$d/node.secret" \
  </dev/null >>"$d/agent/node-serve.log" 2>&1 &
i=0
while [ $i -lt 300 ]; do
  listening && exit 0
  sleep 0.05
  i=$((i + 1))
done
echo "the worker's agent did not listen within 15s; its log ends with:" >&2
tail -n 5 "$d/agent/node-serve.log" >&2
exit 1
"#;
