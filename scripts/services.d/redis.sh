# shellcheck shell=bash
# Redis plugin for scripts/services.sh: a private redis-server on 127.0.0.1:56379 with its
# own config, data, log and pid file under $CONVEYOR_STATE/redis, protected by the test
# password. The Debian system service is never started.
#
# Test env: CONVEYOR_TEST_REDIS_URL (redis://:PASSWORD@127.0.0.1:56379/0) and
# CONVEYOR_TEST_REDIS_SERVER, the redis-server binary the Go conformance suite runs
# itself (on free ports) so it can stop and restart it.
#
# Environment: CONVEYOR_REDIS_PORT (default 56379).

REDIS_PORT="${CONVEYOR_REDIS_PORT:-56379}"
REDIS_ROOT="$CONVEYOR_STATE/redis"
REDIS_CONF="$REDIS_ROOT/redis.conf"
REDIS_PIDFILE="$REDIS_ROOT/redis.pid"
REDIS_LOG="$REDIS_ROOT/redis.log"
# Bulk strings above this are refused (with a protocol error that closes the connection);
# 1mb is the lowest Redis accepts. The too-large tests rely on it.
REDIS_MAX_BULK=1mb

redis_find_bins() {
    REDIS_SERVER="$(command -v redis-server || true)"
    if [[ -z "$REDIS_SERVER" && -x /usr/bin/redis-server ]]; then REDIS_SERVER=/usr/bin/redis-server; fi
    REDIS_CLI="$(command -v redis-cli || true)"
    if [[ -z "$REDIS_CLI" && -x /usr/bin/redis-cli ]]; then REDIS_CLI=/usr/bin/redis-cli; fi
    return 0
}

redis_ensure_installed() {
    redis_find_bins
    if [[ -z "$REDIS_SERVER" || -z "$REDIS_CLI" ]]; then
        apt_install redis-server redis-tools
        redis_find_bins
        [[ -n "$REDIS_SERVER" && -n "$REDIS_CLI" ]] || die "redis: installed redis-server but redis-server/redis-cli are not on PATH"
    fi
}

# redis-cli against our server; the password goes through the environment, never argv.
redis_cli() { REDISCLI_AUTH="$CONVEYOR_DB_PASSWORD" "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

redis_ready() { [[ "$(redis_cli ping 2>/dev/null)" == PONG ]]; }

redis_write_config() {
    local conf
    mkdir -p "$REDIS_ROOT"
    chmod 0700 "$REDIS_ROOT" # the config holds the password
    conf="# Written by scripts/services.d/redis.sh on every 'up'; edits are overwritten.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $REDIS_PIDFILE
logfile $REDIS_LOG
dir $REDIS_ROOT
requirepass $CONVEYOR_DB_PASSWORD
proto-max-bulk-len $REDIS_MAX_BULK
appendonly yes
appendfsync everysec
save ''
databases 16
maxmemory 256mb
maxmemory-policy noeviction
"
    if [[ "$(cat "$REDIS_CONF" 2>/dev/null)" != "${conf%$'\n'}" ]]; then
        printf '%s' "$conf" >"$REDIS_CONF"
        chmod 0600 "$REDIS_CONF"
        echo changed
    fi
    return 0
}

redis_pid() {
    local pid
    [[ -f "$REDIS_PIDFILE" ]] || return 1
    pid="$(tr -dc 0-9 <"$REDIS_PIDFILE" 2>/dev/null)"
    pid_alive "$pid" || return 1
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == *redis* ]] || return 1
    echo "$pid"
}

redis_start() {
    local i
    rm -f "$REDIS_PIDFILE"
    if tcp_port_open "$REDIS_PORT"; then
        die "redis: 127.0.0.1:$REDIS_PORT is already in use by another process; stop it or set CONVEYOR_REDIS_PORT"
    fi
    if [[ -f "$REDIS_LOG" && $(stat -c %s "$REDIS_LOG") -gt 52428800 ]]; then
        mv -f "$REDIS_LOG" "$REDIS_LOG.old"
    fi
    log "redis: starting on 127.0.0.1:$REDIS_PORT (log $REDIS_LOG)"
    (close_extra_fds && cd "$REDIS_ROOT" && "$REDIS_SERVER" "$REDIS_CONF" </dev/null >/dev/null 2>&1) ||
        { show_log_tail "$REDIS_LOG"; die "redis: redis-server failed to start"; }
    for ((i = 0; i < 150; i++)); do
        redis_ready && return 0
        sleep 0.2
    done
    show_log_tail "$REDIS_LOG"
    die "redis: server did not answer PING on 127.0.0.1:$REDIS_PORT within 30s"
}

redis_up() {
    local t0=$SECONDS pid changed
    redis_ensure_installed
    changed="$(redis_write_config)"
    if pid="$(redis_pid)"; then
        if [[ -z "$changed" ]] && redis_ready; then
            log "redis: running (pid $pid, 127.0.0.1:$REDIS_PORT)"
            return 0
        fi
        log "redis: configuration changed or not answering, restarting (pid $pid)"
        redis_down
    fi
    redis_start
    log "redis: up on 127.0.0.1:$REDIS_PORT, pid $(redis_pid) ($((SECONDS - t0))s)"
}

redis_down() {
    local pid
    redis_find_bins
    if pid="$(redis_pid)"; then
        log "redis: stopping (pid $pid)"
        kill_pids 30 "$pid"
    else
        log "redis: not running"
    fi
    rm -f "$REDIS_PIDFILE"
}

redis_status() {
    local pid
    redis_find_bins
    if pid="$(redis_pid)" && [[ -n "$REDIS_CLI" ]] && redis_ready; then
        echo "redis: running (pid $pid, 127.0.0.1:$REDIS_PORT, $("$REDIS_SERVER" --version | grep -oE 'v=[0-9.]+'))"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        echo "redis: NOT READY (pid $pid, 127.0.0.1:$REDIS_PORT, log $REDIS_LOG)"
    else
        echo "redis: stopped (dir $REDIS_ROOT)"
    fi
    return 1
}

redis_env() {
    redis_find_bins
    printf "export CONVEYOR_TEST_REDIS_URL='redis://:%s@127.0.0.1:%s/0'\n" "$CONVEYOR_DB_PASSWORD" "$REDIS_PORT"
    printf "export CONVEYOR_TEST_REDIS_SERVER='%s'\n" "${REDIS_SERVER:-/usr/bin/redis-server}"
}

PLUGIN_SERVICES+=(redis)
