# shellcheck shell=bash
# RabbitMQ plugin for scripts/services.sh: a private node (conveyor@localhost) on
# 127.0.0.1:55672 with its own epmd port, data, logs and config under
# $CONVEYOR_STATE/rabbitmq. The Debian system service is never started.
#
# Test env: CONVEYOR_TEST_AMQP_URL (vhost "conveyor", user conveyor) and
# CONVEYOR_TEST_RABBITMQCTL, a wrapper that runs rabbitmqctl against this node (the
# outage and reconnect tests call stop_app/start_app and close_all_connections).
#
# Environment: CONVEYOR_AMQP_PORT (default 55672), CONVEYOR_AMQP_DIST_PORT (default
# 55673), CONVEYOR_EPMD_PORT (default 54369).

RMQ_PORT="${CONVEYOR_AMQP_PORT:-55672}"
RMQ_DIST_PORT="${CONVEYOR_AMQP_DIST_PORT:-55673}"
RMQ_EPMD_PORT="${CONVEYOR_EPMD_PORT:-54369}"
RMQ_ROOT="$CONVEYOR_STATE/rabbitmq"
RMQ_NODE="conveyor@localhost"
RMQ_VHOST="conveyor"
RMQ_LOG="$RMQ_ROOT/log/console.log"
RMQ_ENV="$RMQ_ROOT/env.sh"
RMQ_CTL="$RMQ_ROOT/rabbitmqctl"
RMQ_PIDFILE="$RMQ_ROOT/rabbitmq.pid"
# Messages above this size are refused (the broker closes the channel with
# PRECONDITION_FAILED); the too-large conformance test relies on it.
RMQ_MAX_MESSAGE=1048576

rabbitmq_ensure_installed() {
    if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server || ! -x /usr/lib/rabbitmq/bin/rabbitmqctl ]]; then
        apt_install rabbitmq-server
        [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || die "rabbitmq: installed rabbitmq-server but /usr/lib/rabbitmq/bin/rabbitmq-server is missing"
    fi
    ensure_system_user rabbitmq /var/lib/rabbitmq
}

# Write the node's environment, config and rabbitmqctl wrapper; print "changed" when the
# config differs from before (the node must then restart).
rabbitmq_write_config() {
    local env conf changed=""
    mkdir -p "$RMQ_ROOT/mnesia" "$RMQ_ROOT/log" "$RMQ_ROOT/home"
    chmod 0755 "$RMQ_ROOT"
    env="# Written by scripts/services.d/rabbitmq.sh on every 'up'; edits are overwritten.
export HOME='$RMQ_ROOT/home'
export RABBITMQ_NODENAME='$RMQ_NODE'
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$RMQ_PORT
export RABBITMQ_DIST_PORT=$RMQ_DIST_PORT
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=$RMQ_EPMD_PORT
export RABBITMQ_MNESIA_BASE='$RMQ_ROOT/mnesia'
export RABBITMQ_LOG_BASE='$RMQ_ROOT/log'
export RABBITMQ_CONFIG_FILE='$RMQ_ROOT/rabbitmq.conf'
export RABBITMQ_ADVANCED_CONFIG_FILE='$RMQ_ROOT/advanced.config'
export RABBITMQ_CONF_ENV_FILE='$RMQ_ROOT/rabbitmq-env.conf'
export RABBITMQ_ENABLED_PLUGINS_FILE='$RMQ_ROOT/enabled_plugins'
export RABBITMQ_PID_FILE='$RMQ_PIDFILE'
export RABBITMQ_LOGS='$RMQ_LOG'
# Erlang distribution on loopback only.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
"
    conf="# Written by scripts/services.d/rabbitmq.sh on every 'up'; edits are overwritten.
listeners.tcp.default = 127.0.0.1:$RMQ_PORT
loopback_users = none
max_message_size = $RMQ_MAX_MESSAGE
log.file.level = warning
log.console = false
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 50MB
"
    if [[ "$(cat "$RMQ_ENV" 2>/dev/null)" != "${env%$'\n'}" ]]; then
        printf '%s' "$env" >"$RMQ_ENV"
        changed=1
    fi
    if [[ "$(cat "$RMQ_ROOT/rabbitmq.conf" 2>/dev/null)" != "${conf%$'\n'}" ]]; then
        printf '%s' "$conf" >"$RMQ_ROOT/rabbitmq.conf"
        changed=1
    fi
    [[ -f "$RMQ_ROOT/advanced.config" ]] || printf '[].\n' >"$RMQ_ROOT/advanced.config"
    : >"$RMQ_ROOT/rabbitmq-env.conf"
    # No plugins: the management UI would listen on 15672 on every interface.
    printf '[].\n' >"$RMQ_ROOT/enabled_plugins"
    if [[ ! -s "$RMQ_ROOT/home/.erlang.cookie" ]]; then
        head -c 24 /dev/urandom | od -An -tx1 | tr -dc 0-9a-f >"$RMQ_ROOT/home/.erlang.cookie"
    fi
    chmod 0400 "$RMQ_ROOT/home/.erlang.cookie"
    printf '#!/bin/sh\n# rabbitmqctl for the private conveyor node (written by scripts/services.d/rabbitmq.sh)\n. %s\nexec runuser -u rabbitmq -- env HOME="$HOME" RABBITMQ_NODENAME="$RABBITMQ_NODENAME" ERL_EPMD_PORT="$ERL_EPMD_PORT" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"\n' \
        "$RMQ_ENV" >"$RMQ_CTL"
    chmod 0755 "$RMQ_CTL"
    chown -R rabbitmq:rabbitmq "$RMQ_ROOT"
    [[ -n "$changed" ]] && echo changed
    return 0
}

rabbitmq_ctl() { "$RMQ_CTL" "$@"; }

# Pid of the node's Erlang VM if it really runs (the pid file is written once booted).
rabbitmq_pid() {
    local pid
    [[ -f "$RMQ_PIDFILE" ]] || return 1
    pid="$(tr -dc 0-9 <"$RMQ_PIDFILE" 2>/dev/null)"
    pid_alive "$pid" || return 1
    grep -qa -- "-home.$RMQ_ROOT/home" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# Pids of beam processes of this node (for a node whose pid file is missing).
rabbitmq_node_pids() {
    local p
    for p in /proc/[0-9]*; do
        grep -qa -- "-home.$RMQ_ROOT/home" "$p/cmdline" 2>/dev/null && echo "${p#/proc/}"
    done
    return 0
}

rabbitmq_ready() { tcp_port_open "$RMQ_PORT" && rabbitmq_ctl -q -t 10 await_startup >/dev/null 2>&1; }

rabbitmq_start() {
    local orphans pid i
    mapfile -t orphans < <(rabbitmq_node_pids)
    if [[ "${#orphans[@]}" -gt 0 ]]; then
        warn "rabbitmq: stopping leftover process(es) of the node: ${orphans[*]}"
        kill_pids 20 "${orphans[@]}"
    fi
    rm -f "$RMQ_PIDFILE"
    if tcp_port_open "$RMQ_PORT"; then
        die "rabbitmq: 127.0.0.1:$RMQ_PORT is already in use by another process; stop it or set CONVEYOR_AMQP_PORT"
    fi
    if [[ -f "$RMQ_LOG" && $(stat -c %s "$RMQ_LOG") -gt 52428800 ]]; then
        mv -f "$RMQ_LOG" "$RMQ_LOG.old"
    fi
    log "rabbitmq: starting node $RMQ_NODE on 127.0.0.1:$RMQ_PORT (log $RMQ_ROOT/log)"
    # Detached from our session; must not inherit our lock fd (9), stdout or any pipe.
    (close_extra_fds && cd "$RMQ_ROOT" && . "$RMQ_ENV" && exec setsid runuser -u rabbitmq -- env \
        HOME="$HOME" RABBITMQ_NODENAME="$RABBITMQ_NODENAME" RABBITMQ_NODE_IP_ADDRESS="$RABBITMQ_NODE_IP_ADDRESS" \
        RABBITMQ_NODE_PORT="$RABBITMQ_NODE_PORT" RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT" \
        ERL_EPMD_ADDRESS="$ERL_EPMD_ADDRESS" ERL_EPMD_PORT="$ERL_EPMD_PORT" RABBITMQ_MNESIA_BASE="$RABBITMQ_MNESIA_BASE" \
        RABBITMQ_LOG_BASE="$RABBITMQ_LOG_BASE" RABBITMQ_CONFIG_FILE="$RABBITMQ_CONFIG_FILE" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$RABBITMQ_ADVANCED_CONFIG_FILE" RABBITMQ_CONF_ENV_FILE="$RABBITMQ_CONF_ENV_FILE" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_ENABLED_PLUGINS_FILE" RABBITMQ_PID_FILE="$RABBITMQ_PID_FILE" \
        RABBITMQ_LOGS="$RABBITMQ_LOGS" RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS" \
        /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >>"$RMQ_ROOT/log/startup.log" 2>&1) &
    pid=$!
    for ((i = 0; i < 120; i++)); do
        if rabbitmq_ready; then return 0; fi
        if ! pid_alive "$pid"; then
            show_log_tail "$RMQ_ROOT/log/startup.log"
            show_log_tail "$RMQ_LOG"
            die "rabbitmq: node exited during startup (see the logs above)"
        fi
        sleep 1
    done
    show_log_tail "$RMQ_ROOT/log/startup.log"
    die "rabbitmq: node did not start within 120s"
}

rabbitmq_ensure_user() {
    rabbitmq_ctl -q list_vhosts 2>/dev/null | grep -qx "$RMQ_VHOST" || rabbitmq_ctl -q add_vhost "$RMQ_VHOST" >/dev/null
    if ! rabbitmq_ctl -q list_users 2>/dev/null | awk '{print $1}' | grep -qx "$CONVEYOR_DB_USER"; then
        rabbitmq_ctl -q add_user "$CONVEYOR_DB_USER" "$CONVEYOR_DB_PASSWORD" >/dev/null
    else
        rabbitmq_ctl -q change_password "$CONVEYOR_DB_USER" "$CONVEYOR_DB_PASSWORD" >/dev/null
    fi
    rabbitmq_ctl -q set_user_tags "$CONVEYOR_DB_USER" administrator >/dev/null
    rabbitmq_ctl -q set_permissions -p "$RMQ_VHOST" "$CONVEYOR_DB_USER" '.*' '.*' '.*' >/dev/null
    # The default guest user only works over loopback, but it is not needed at all.
    rabbitmq_ctl -q delete_user guest >/dev/null 2>&1 || true
}

rabbitmq_up() {
    local t0=$SECONDS pid changed
    rabbitmq_ensure_installed
    changed="$(rabbitmq_write_config)"
    if pid="$(rabbitmq_pid)"; then
        if [[ -n "$changed" ]]; then
            log "rabbitmq: configuration changed, restarting (pid $pid)"
            rabbitmq_stop_node
            rabbitmq_start
        elif ! rabbitmq_ready; then
            # A test may have left the app stopped (stop_app); start it again.
            rabbitmq_ctl -q start_app >/dev/null 2>&1 || true
            rabbitmq_ready || die "rabbitmq: node is running (pid $pid) but does not accept AMQP connections on 127.0.0.1:$RMQ_PORT"
        fi
    else
        rabbitmq_start
    fi
    rabbitmq_ensure_user || die "rabbitmq: could not create vhost $RMQ_VHOST / user $CONVEYOR_DB_USER"
    log "rabbitmq: up on 127.0.0.1:$RMQ_PORT, node $RMQ_NODE, pid $(rabbitmq_pid || echo '?') ($((SECONDS - t0))s)"
}

rabbitmq_stop_node() {
    local pid orphans
    pid="$(rabbitmq_pid)" || pid=""
    if [[ -n "$pid" ]]; then
        log "rabbitmq: stopping (pid $pid)"
        rabbitmq_ctl -q -t 60 stop "$RMQ_PIDFILE" >/dev/null 2>&1 || kill_pids 30 "$pid"
    fi
    mapfile -t orphans < <(rabbitmq_node_pids)
    if [[ "${#orphans[@]}" -gt 0 ]]; then
        kill_pids 20 "${orphans[@]}"
    fi
    rm -f "$RMQ_PIDFILE"
}

rabbitmq_down() {
    if [[ ! -d "$RMQ_ROOT" ]]; then
        log "rabbitmq: not initialised, nothing to stop"
        return 0
    fi
    rabbitmq_stop_node
    # The node's private epmd (its own port) is only used by this node.
    local p
    for p in /proc/[0-9]*; do
        if grep -qa "epmd" "$p/cmdline" 2>/dev/null && tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "ERL_EPMD_PORT=$RMQ_EPMD_PORT"; then
            kill_pids 5 "${p#/proc/}"
        fi
    done
    log "rabbitmq: stopped"
}

rabbitmq_status() {
    local pid
    if pid="$(rabbitmq_pid)" && rabbitmq_ready; then
        echo "rabbitmq: running (pid $pid, 127.0.0.1:$RMQ_PORT, node $RMQ_NODE)"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        echo "rabbitmq: NOT READY (pid $pid, 127.0.0.1:$RMQ_PORT, log $RMQ_ROOT/log)"
    else
        echo "rabbitmq: stopped (data $RMQ_ROOT)"
    fi
    return 1
}

rabbitmq_env() {
    printf "export CONVEYOR_TEST_AMQP_URL='amqp://%s:%s@127.0.0.1:%s/%s'\n" "$CONVEYOR_DB_USER" "$CONVEYOR_DB_PASSWORD" "$RMQ_PORT" "$RMQ_VHOST"
    printf "export CONVEYOR_TEST_RABBITMQCTL='%s'\n" "$RMQ_CTL"
    printf "export CONVEYOR_TEST_AMQP_MAX_MESSAGE='%s'\n" "$RMQ_MAX_MESSAGE"
}

PLUGIN_SERVICES+=(rabbitmq)
