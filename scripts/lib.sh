# shellcheck shell=bash disable=SC2034
# Shared helpers for scripts/services.sh. Source it; do not execute it.
#
# Everything here is non-interactive and safe to run repeatedly.

# Repository root, derived from this file's location (never hard-coded).
CONVEYOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

# Where the private service instances live. One tree, outside the repo, so a fresh
# clone (CI) reuses the services a previous run left behind.
CONVEYOR_STATE="${CONVEYOR_STATE:-/var/tmp/conveyor}"

# The one test credential. Distinctive on purpose: tests grep logs for it to prove
# that it is redacted. Never echo it from `up`/`status`; only `env` prints it.
CONVEYOR_DB_USER="conveyor"
CONVEYOR_DB_PASSWORD="conveyor-test-secret"

export DEBIAN_FRONTEND=noninteractive

_svc_prefix="[services]"

log() { printf '%s %s\n' "$_svc_prefix" "$*" >&2; }
warn() { printf '%s WARNING: %s\n' "$_svc_prefix" "$*" >&2; }
die() {
    printf '%s ERROR: %s\n' "$_svc_prefix" "$*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# Print the last lines of a log file to stderr (used before dying).
show_log_tail() {
    local file="$1" lines="${2:-40}"
    if [[ -f "$file" ]]; then
        printf '%s ---- last %s lines of %s ----\n' "$_svc_prefix" "$lines" "$file" >&2
        tail -n "$lines" "$file" >&2 || true
        printf '%s ---- end of %s ----\n' "$_svc_prefix" "$file" >&2
    else
        printf '%s (no log file at %s)\n' "$_svc_prefix" "$file" >&2
    fi
}

require_root() {
    [[ "$(id -u)" == 0 ]] || die "this script must run as root (it installs packages and runs services as the postgres/mysql users)"
}

# ---------------------------------------------------------------------------------
# apt

_apt_updated=0
_policy_rc_backup=""
_policy_rc_installed=0

apt_update_once() {
    if [[ "$_apt_updated" == 0 ]]; then
        log "apt-get update"
        mkdir -p "$CONVEYOR_STATE"
        if ! apt-get update -q -o DPkg::Lock::Timeout=300 >"$CONVEYOR_STATE/apt-update.log" 2>&1; then
            show_log_tail "$CONVEYOR_STATE/apt-update.log" 30
            die "apt-get update failed"
        fi
        _apt_updated=1
    fi
}

# policy-rc.d that refuses every service start, so apt does not launch the Debian
# system services (the default PostgreSQL cluster, the system mariadb) during install.
_policy_rc_block() {
    local f=/usr/sbin/policy-rc.d
    if [[ -e "$f" && "$_policy_rc_installed" == 0 ]]; then
        _policy_rc_backup="$(mktemp /tmp/conveyor-policy-rc.XXXXXX)"
        cp -p "$f" "$_policy_rc_backup"
    fi
    printf '#!/bin/sh\n# temporary: written by conveyor scripts/services.sh during apt-get install\nexit 101\n' >"$f"
    chmod 0755 "$f"
    _policy_rc_installed=1
}

_policy_rc_restore() {
    [[ "$_policy_rc_installed" == 1 ]] || return 0
    local f=/usr/sbin/policy-rc.d
    if [[ -n "$_policy_rc_backup" && -f "$_policy_rc_backup" ]]; then
        cp -p "$_policy_rc_backup" "$f"
        rm -f "$_policy_rc_backup"
    else
        rm -f "$f"
    fi
    _policy_rc_installed=0
    _policy_rc_backup=""
}

# Packages (from the given list) that are not installed.
apt_missing() {
    local p missing=()
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    printf '%s\n' "${missing[@]}"
}

# Install packages that are missing, with service starts blocked.
apt_install() {
    local missing
    mapfile -t missing < <(apt_missing "$@" | sed '/^$/d')
    [[ "${#missing[@]}" -gt 0 ]] || return 0
    require_root
    apt_update_once
    mkdir -p "$CONVEYOR_STATE"
    local aptlog="$CONVEYOR_STATE/apt.log" rc=0 t0=$SECONDS
    log "apt-get install ${missing[*]} (output in $aptlog)"
    _policy_rc_block
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >"$aptlog" 2>&1 || rc=$?
    _policy_rc_restore
    if [[ "$rc" != 0 ]]; then
        show_log_tail "$aptlog" 30
        die "apt-get install ${missing[*]} failed (exit $rc)"
    fi
    log "installed ${missing[*]} ($((SECONDS - t0))s)"
}

# ---------------------------------------------------------------------------------
# processes (via /proc only, so nothing beyond coreutils is needed)

# True if pid is alive (a zombie counts as dead: it is only waiting to be reaped).
pid_alive() {
    [[ -n "${1:-}" && -d "/proc/$1" ]] || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# Pids of processes whose working directory is $1 (postgres and mariadbd chdir to
# their data directory, so this finds exactly the processes of one instance).
pids_with_cwd() {
    local dir="$1" p cwd
    dir="$(readlink -f "$dir" 2>/dev/null || echo "$dir")"
    for p in /proc/[0-9]*; do
        cwd="$(readlink "$p/cwd" 2>/dev/null)" || continue
        [[ "$cwd" == "$dir" ]] && echo "${p#/proc/}"
    done
    return 0
}

# Terminate the given pids: SIGTERM, wait up to $timeout seconds, then SIGKILL.
kill_pids() {
    local timeout="$1"
    shift
    [[ $# -gt 0 ]] || return 0
    kill -TERM "$@" 2>/dev/null || true
    kill -CONT "$@" 2>/dev/null || true # a stopped process handles TERM only once resumed
    local i p alive
    for ((i = 0; i < timeout * 10; i++)); do
        alive=0
        for p in "$@"; do pid_alive "$p" && alive=1; done
        [[ "$alive" == 0 ]] && return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
    sleep 0.2
}

# Close every inherited file descriptor above 2 in the current (sub)shell, so a
# daemon started from it does not hold our lock file or a caller's pipe open.
close_extra_fds() {
    local path fd
    for path in /proc/"$BASHPID"/fd/*; do
        fd="${path##*/}"
        if [[ "$fd" -gt 2 && "$fd" -ne 255 ]]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# True if something accepts TCP connections on 127.0.0.1:$1.
tcp_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ensure_system_user() {
    local user="$1" home="$2"
    if ! id -u "$user" >/dev/null 2>&1; then
        log "creating system user $user"
        useradd --system --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user" ||
            die "could not create system user $user"
    fi
}

# Serialise concurrent invocations (two sessions running `up` at once).
take_lock() {
    mkdir -p "$CONVEYOR_STATE"
    chmod 0755 "$CONVEYOR_STATE"
    exec 9>"$CONVEYOR_STATE/.services.lock"
    if ! flock -w 300 9; then
        die "another scripts/services.sh has held $CONVEYOR_STATE/.services.lock for 300s"
    fi
}
