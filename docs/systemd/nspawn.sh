#!/usr/bin/env bash
# nspawn.sh boots Debian 12 (systemd 252) as PID 1 of a systemd-nspawn
# container, so lancelot's unit files can be tried under a real systemd on a
# machine whose own PID 1 is not systemd. cmd/lancelot/realsystemd_test.go
# drives it; README.md beside it says how to run that test.
#
#   nspawn.sh rootfs               build (once) or reuse the cached root
#                                  filesystem; prints its path
#   nspawn.sh boot DIR             boot a throwaway container from DIR; prints
#                                  "NSPAWN_PID CONTAINER_PID1" once systemd
#                                  inside says running (or degraded)
#   nspawn.sh exec PID1 CMD...     run CMD inside the container (all of its
#                                  namespaces, a clean environment)
#   nspawn.sh stop NSPAWN_PID|all  power the container off (TERM, then KILL
#                                  after a bound) and remove its cgroups and
#                                  overlay; safe to repeat
#
# Needs root, debootstrap and systemd-container (whose systemd-nspawn must
# match the host's systemd version). Never touches the host's PID 1 or any
# cgroup outside the lancelot-nspawn-* subtrees it creates.
#
# Environment: LANCELOT_NSPAWN_CACHE (default /var/cache/lancelot-nspawn),
# LANCELOT_NSPAWN_STATE (default /run/lancelot-nspawn),
# LANCELOT_NSPAWN_MIRROR (default: the machine's apt source for bookworm).
set -euo pipefail

suite=bookworm
packages=systemd,systemd-sysv,dbus,procps,iproute2
cache=${LANCELOT_NSPAWN_CACHE:-/var/cache/lancelot-nspawn}
state=${LANCELOT_NSPAWN_STATE:-/run/lancelot-nspawn}
# The host mixes cgroup v1 and v2 and has no systemd to hand out a cgroup:
# each container gets a subtree of its own in both hierarchies systemd uses.
cgroot_v2=/sys/fs/cgroup/unified
cgroot_v1=/sys/fs/cgroup/systemd

die() {
  echo "nspawn.sh: $*" >&2
  exit 1
}

# mirror prints the Debian mirror the machine's apt already uses for $suite.
mirror() {
  if [ -n "${LANCELOT_NSPAWN_MIRROR:-}" ]; then
    echo "$LANCELOT_NSPAWN_MIRROR"
    return
  fi
  local m=""
  # deb822 *.sources: the first URI of a "Types: deb" stanza listing $suite.
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    m=$(awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
          if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
          if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
        }
        if (ok && deb && uri != "") { print uri; exit }
      }' /etc/apt/sources.list.d/*.sources)
  fi
  # One-line *.list: "deb [options] URI SUITE COMPONENTS".
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# cmd_rootfs builds the root filesystem once per package list; later calls
# (and concurrent ones, under a lock) reuse it.
cmd_rootfs() {
  local key dir log
  key=$(printf '%s minbase %s\n' "$suite" "$packages" | sha256sum | cut -c1-12)
  dir=$cache/$suite-$key
  if [ ! -e "$dir/.complete" ]; then
    command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap systemd-container)"
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    if [ ! -e "$dir/.complete" ]; then
      log=$cache/debootstrap.log
      rm -rf "$dir.partial"
      if ! debootstrap --variant=minbase --include="$packages" "$suite" "$dir.partial" "$(mirror)" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -rf "$dir.partial"
        die "debootstrap failed; full log in $log"
      fi
      echo lancelot-test >"$dir.partial/etc/hostname"
      # The .complete marker moves in with the tree, so a half-built tree
      # is never taken for a cached one.
      touch "$dir.partial/.complete"
      mv "$dir.partial" "$dir"
    fi
    exec 9>&-
  fi
  echo "$dir"
}

# cmd_boot boots a container on an overlay of DIR, in cgroup subtrees of its
# own, and waits for its systemd to finish booting.
cmd_boot() {
  local lower=${1:?usage: nspawn.sh boot DIR}
  [ -x "$lower/lib/systemd/systemd" ] || die "$lower: not a root filesystem with systemd (run nspawn.sh rootfs)"
  command -v systemd-nspawn >/dev/null || die "systemd-nspawn not found (apt-get install systemd-container)"
  [ -d "$cgroot_v2" ] && [ -d "$cgroot_v1" ] ||
    die "expects the hybrid cgroup layout (cgroup2 at $cgroot_v2, name=systemd at $cgroot_v1)"
  mkdir -p "$state"
  local st cg pid pid1="" deadline out
  st=$(mktemp -d "$state/XXXXXXXX")
  cg=lancelot-nspawn-${st##*/}
  echo "$cg" >"$st/cgroup"
  # Whatever fails from here on, the EXIT trap takes down what was set up.
  booting=$st
  # A throwaway overlay keeps the cached tree pristine; the upper layer lives
  # in the state directory and goes with it.
  mkdir "$st/upper" "$st/work" "$st/root"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$st/upper,workdir=$st/work" "$st/root"
  # container/ holds nspawn (it makes payload/ and supervisor/ below its own
  # cgroup); exec/ holds the commands nspawn.sh exec runs, so stop can kill
  # those too.
  mkdir -p "$cgroot_v2/$cg/container" "$cgroot_v2/$cg/exec" "$cgroot_v1/$cg/container"
  # setsid: the container lives until nspawn.sh stop, not until the caller's
  # terminal sends a signal. The subshell moves itself into the subtree and
  # becomes nspawn, so $! is nspawn's pid.
  (
    echo "$BASHPID" >"$cgroot_v2/$cg/container/cgroup.procs"
    echo "$BASHPID" >"$cgroot_v1/$cg/container/cgroup.procs"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec setsid systemd-nspawn -q -D "$st/root" \
      --register=no --keep-unit --private-network --console=pipe -b \
      </dev/null >"$st/console.log" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$st/nspawn.pid"
  # The container's PID 1 is nspawn's child whose pid in its own namespace is 1.
  deadline=$((SECONDS + 30))
  while [ -z "$pid1" ]; do
    alive "$pid" || { cat "$st/console.log" >&2; die "systemd-nspawn exited"; }
    [ "$SECONDS" -lt "$deadline" ] || die "no container PID 1 after 30s"
    for c in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do
      if grep -Eq '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$c/status" 2>/dev/null; then
        pid1=$c
      fi
    done
    [ -n "$pid1" ] || sleep 0.05
  done
  # is-system-running --wait blocks until boot is over, but fails while
  # systemd's private socket is not up yet: retry that, within a bound.
  deadline=$((SECONDS + 90))
  while :; do
    # (cmd_exec ends in exec: "|| true" must stay outside the $(...).)
    out=$(cmd_exec "$pid1" systemctl is-system-running --wait 2>/dev/null) || true
    case $out in
    running | degraded) break ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ] || [ ! -d "/proc/$pid1" ]; then
      tail -n 40 "$st/console.log" >&2
      die "container not booted after 90s (state: ${out:-none})"
    fi
    sleep 0.1
  done
  booting=""
  echo "$pid $pid1"
}

# cmd_exec runs a command in every namespace of the container whose PID 1 is
# given, from the container's exec/ cgroup, with a clean environment.
cmd_exec() {
  local pid1=${1:?usage: nspawn.sh exec PID1 CMD...} cg
  shift
  [ $# -gt 0 ] || die "usage: nspawn.sh exec PID1 CMD..."
  cg=$(awk -F: '$1 == "0" { split($3, p, "/"); print p[2] }' "/proc/$pid1/cgroup" 2>/dev/null || true)
  case $cg in
  lancelot-nspawn-*) ;;
  *) die "pid $pid1 is not the PID 1 of a container nspawn.sh booted" ;;
  esac
  echo "$BASHPID" >"$cgroot_v2/$cg/exec/cgroup.procs"
  exec nsenter -t "$pid1" -a -- /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# alive reports whether pid runs (a zombie does not count).
alive() {
  local s
  s=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$s" ] && [ "$s" != Z ]
}

# stop_state tears down one container from its state directory. Every step
# checks first, so a second run (or a run after a half-failed boot) is fine.
stop_state() {
  local st=$1 cg pid deadline
  cg=$(cat "$st/cgroup" 2>/dev/null || true)
  pid=$(cat "$st/nspawn.pid" 2>/dev/null || true)
  # Signal the pid only while it is still our nspawn: in our subtree, named
  # systemd-nspawn (a recycled pid is neither).
  if [ -n "$pid" ] && [ -n "$cg" ] && alive "$pid" &&
    grep -q "/$cg/" "/proc/$pid/cgroup" 2>/dev/null &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ]; then
    # TERM makes nspawn ask the container's systemd for a clean poweroff.
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
      echo "nspawn.sh: nspawn $pid still running after 20s; killing the container" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [ -n "$cg" ]; then
    # Anything left in the subtree (a hung container, an exec'd command)
    # is killed; cgroup.kill covers every descendant cgroup.
    if [ -e "$cgroot_v2/$cg/cgroup.kill" ]; then
      echo 1 >"$cgroot_v2/$cg/cgroup.kill" 2>/dev/null || true
    fi
    deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ] && [ -n "$(cgroup_pids "$cg")" ]; do sleep 0.1; done
    [ -z "$(cgroup_pids "$cg")" ] || echo "nspawn.sh: processes left in $cg: $(cgroup_pids "$cg")" >&2
    # Deepest first: a cgroup is removed only once its children are.
    for root in "$cgroot_v2" "$cgroot_v1"; do
      if [ -d "$root/$cg" ]; then
        find "$root/$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ ! -d "$root/$cg" ] || echo "nspawn.sh: could not remove $root/$cg" >&2
      fi
    done
  fi
  if mountpoint -q "$st/root"; then
    umount "$st/root" 2>/dev/null || umount -l "$st/root"
  fi
  rm -rf "$st"
}

# cgroup_pids lists the processes left in a subtree, in either hierarchy.
cgroup_pids() {
  local root
  for root in "$cgroot_v2" "$cgroot_v1"; do
    [ -d "$root/$1" ] && find "$root/$1" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u | tr '\n' ' ' | sed 's/ $//'
}

cmd_stop() {
  local which=${1:?usage: nspawn.sh stop NSPAWN_PID|all} st found=""
  [ -d "$state" ] || return 0
  for st in "$state"/*/; do
    st=${st%/}
    [ -d "$st" ] || continue
    if [ "$which" = all ] || [ "$(cat "$st/nspawn.pid" 2>/dev/null)" = "$which" ]; then
      stop_state "$st"
      found=1
    fi
  done
  # Stopping one that is already gone is not an error: cleanup is idempotent.
  [ -n "$found" ] || [ "$which" = all ] || echo "nspawn.sh: no container with nspawn pid $which (already stopped?)" >&2
}

# A boot that fails or is interrupted half-way leaves nothing behind.
booting=""
trap '[ -z "$booting" ] || stop_state "$booting" >&2' EXIT
trap 'exit 1' INT TERM HUP

[ "$(id -u)" = 0 ] || die "must run as root"
case ${1:-} in
rootfs) cmd_rootfs ;;
boot) cmd_boot "${2:-}" ;;
exec) shift && cmd_exec "$@" ;;
stop) cmd_stop "${2:-}" ;;
*) die "usage: nspawn.sh rootfs | boot DIR | exec PID1 CMD... | stop NSPAWN_PID|all" ;;
esac
