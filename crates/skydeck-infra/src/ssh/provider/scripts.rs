//! The shell scripts the SSH provider runs on pool hosts. Each takes the
//! cluster's name (a `ClusterName`: one plain path component) as `$1` and
//! finds the cluster's directory from it, under the login's home: no
//! stored path ever aims a removal or a kill.

/// Every script starts here: `d` is the cluster's directory on this host,
/// refused where the home is unknown or the directory is a link.
const PRELUDE: &str = r#"set -u
case "${HOME:-}" in ''|/) echo "the login has no home directory" >&2; exit 90;; esac
d="$HOME/.skydeck/clusters/$1"
if [ -L "$d" ]; then echo "$d is a symbolic link, not a cluster directory; refusing to touch it" >&2; exit 91; fi
"#;

/// Whether pid `$1` is a live (not zombie) process.
const LIVE: &str = r#"live() {
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  case "$s" in Z*|X*) return 1;; esac
  return 0
}
"#;

/// Whether the cluster's agent daemon runs: its recorded pid is a live
/// `… agent daemon --cluster-dir $d`.
const AGENT_ALIVE: &str = r#"agent_pid() {
  pid=$(cat "$d/agent/daemon.pid" 2>/dev/null) || return 1
  case "$pid" in ''|*[!0-9]*) return 1;; esac
  live "$pid" || return 1
  args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  printf '%s\n' "$args" | grep -qxF daemon || return 1
  printf '%s\n' "$args" | grep -qxF "$d" || return 1
  echo "$pid"
}
"#;

fn script(body: &str) -> String {
    format!("{PRELUDE}{LIVE}{AGENT_ALIVE}{body}")
}

/// Prints, one per line: home, `$SSH_CONNECTION` (so the address this host
/// was reached at), user, CPUs, memory in kB. Makes `$d/nodes/$2/sky_workdir`.
pub fn prepare_node() -> String {
    script(
        r#"mkdir -p "$d/nodes/$2/sky_workdir" || exit 92
printf '%s\n' "$HOME" "${SSH_CONNECTION:-}" "$(id -un)" "$(nproc 2>/dev/null || echo 1)" \
  "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
"#,
    )
}

/// Writes stdin to `$d/$2` (mode 0600, made beside and renamed, so a
/// reader never sees half a file), making its directory.
pub fn write_file() -> String {
    script(
        r#"umask 077
f="$d/$2"
mkdir -p "$(dirname "$f")" || exit 92
cat >"$f.partial" && mv -f "$f.partial" "$f"
"#,
    )
}

/// Exit code of [`link_agent`] when the agent is not installed there.
pub const NOT_INSTALLED: i32 = 95;

/// Points `$d/bin/skydeck` at the installed agent `$2` (relative to home);
/// exits [`NOT_INSTALLED`] when that build is not there.
pub fn link_agent() -> String {
    script(
        r#"[ -x "$HOME/$2" ] || exit 95
mkdir -p "$d/bin" && ln -sfn "$HOME/$2" "$d/bin/skydeck"
"#,
    )
}

/// Starts the agent daemon unless it runs, detached from the SSH session
/// (its own session, no terminal, output to its log) so that it outlives
/// the connection; waits until it records its pid. `$2`: "start" clears an
/// autostop the agent left. `$3` onwards: `NAME=VALUE` settings for the
/// agent's environment (see `agent_env`), which no SSH session carries.
pub fn start_agent() -> String {
    script(
        r#"[ -f "$d/cluster.json" ] || { echo "$d/cluster.json is missing: launch the cluster again" >&2; exit 93; }
mkdir -p "$d/agent"
if [ "${2:-}" = start ]; then rm -f "$d/agent/autostop.json"; fi
agent_pid >/dev/null && exit 0
cd "$d" || exit 92
if [ $# -gt 2 ]; then shift 2; else set --; fi
for setting in "$@"; do export "$setting"; done
setsid "$d/bin/skydeck" agent daemon --cluster-dir "$d" </dev/null >>"$d/agent/daemon.log" 2>&1 &
i=0
while [ $i -lt 300 ]; do
  agent_pid >/dev/null && exit 0
  sleep 0.05
  i=$((i + 1))
done
echo "the cluster's agent did not start within 15s; its log ($d/agent/daemon.log) ends with:" >&2
tail -n 5 "$d/agent/daemon.log" >&2
exit 1
"#,
    )
}

/// What the head holds: `gone`, `running`, `autostop`, `autodown` or
/// `agentdown`.
pub fn agent_state() -> String {
    script(
        r#"[ -f "$d/cluster.json" ] || { echo gone; exit 0; }
agent_pid >/dev/null && { echo running; exit 0; }
if [ -f "$d/agent/autostop.json" ]; then
  if grep -q '"action": *"down"' "$d/agent/autostop.json"; then echo autodown; else echo autostop; fi
  exit 0
fi
echo agentdown
"#,
    )
}

/// Stops the agent (SIGTERM: it stops its jobs), SIGKILL after 15 s.
pub fn stop_agent() -> String {
    script(
        r#"pid=$(agent_pid) || exit 0
kill -TERM "$pid" 2>/dev/null
i=0
while [ $i -lt 300 ]; do
  live "$pid" || exit 0
  sleep 0.05
  i=$((i + 1))
done
echo "the agent ignored SIGTERM; killing it" >&2
kill -KILL "$pid" 2>/dev/null
exit 0
"#,
    )
}

/// Kills every process of the cluster on this host: those whose command
/// line names the cluster's directory (its agent), whose environment marks
/// them as one of its jobs, or whose home is one of its nodes. SIGTERM,
/// then SIGKILL for those still there after 5 s.
pub fn reap() -> String {
    script(
        r#"me=$$
found=""
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$me" ] && continue
  if tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qF -e "SKYDECK_AGENT_JOB=$d#" -e "HOME=$d/nodes/"; then
    found="$found $pid"
  elif tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -e "$d" -e "$d/bin/skydeck"; then
    found="$found $pid"
  fi
done
[ -n "$found" ] || exit 0
kill -TERM $found 2>/dev/null
i=0
while [ $i -lt 100 ]; do
  left=""
  for pid in $found; do live "$pid" && left="$left $pid"; done
  [ -n "$left" ] || exit 0
  sleep 0.05
  i=$((i + 1))
done
kill -KILL $left 2>/dev/null
exit 0
"#,
    )
}

/// Removes the cluster's directory (and `~/.skydeck/clusters` once empty).
pub fn remove() -> String {
    script(
        r#"rm -rf -- "$d" || exit 94
rmdir "$HOME/.skydeck/clusters" 2>/dev/null
exit 0
"#,
    )
}

/// Prints those of the ports `$2…` that a program on this host listens on
/// (at any address), unless the cluster's agent runs there already (its
/// jobs hold them then).
pub fn ports_in_use() -> String {
    script(
        r#"agent_pid >/dev/null && exit 0
shift 1
for port in "$@"; do
  hex=$(printf ':%04X' "$port")
  if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h="$hex" '$4 == "0A" && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }'; then
    echo "$port"
  fi
done
exit 0
"#,
    )
}
