# shellcheck shell=bash
# Mosquitto plugin for scripts/services.sh: a private broker on 127.0.0.1:51883 with
# password authentication (conveyor / the test secret), persistence and a 1 MiB
# max_packet_size, its config, data and log under $CONVEYOR_STATE/mosquitto. The Debian
# system service is never started.
#
# Test env: CONVEYOR_TEST_MQTT_URL, and CONVEYOR_TEST_MOSQUITTO (the broker binary: the
# outage tests run their own broker on a free port, to stop and start it).
#
# Environment: CONVEYOR_MQTT_PORT (default 51883).

MQ_PORT="${CONVEYOR_MQTT_PORT:-51883}"
MQ_ROOT="$CONVEYOR_STATE/mosquitto"
MQ_CONF="$MQ_ROOT/mosquitto.conf"
MQ_PASSWD="$MQ_ROOT/passwd"
MQ_PIDFILE="$MQ_ROOT/run/mosquitto.pid"
MQ_LOG="$MQ_ROOT/log/mosquitto.log"
MQ_BIN=/usr/sbin/mosquitto
MQ_MAX_PACKET=1048576

mosquitto_ensure_installed() {
    if [[ ! -x "$MQ_BIN" ]] || ! have mosquitto_passwd || ! have mosquitto_pub; then
        apt_install mosquitto mosquitto-clients
        [[ -x "$MQ_BIN" ]] || die "mosquitto: installed mosquitto but $MQ_BIN is missing"
    fi
    ensure_system_user mosquitto /var/lib/mosquitto
}

# Write the config and password file; print "changed" if the config differs from before.
mosquitto_write_config() {
    local conf
    mkdir -p "$MQ_ROOT/data" "$MQ_ROOT/log" "$MQ_ROOT/run"
    chmod 0755 "$MQ_ROOT"
    conf="# Written by scripts/services.d/mosquitto.sh on every 'up'; edits are overwritten.
user mosquitto
pid_file $MQ_PIDFILE
persistence true
persistence_location $MQ_ROOT/data/
log_dest file $MQ_LOG
log_type error
log_type warning
log_type notice
listener $MQ_PORT 127.0.0.1
allow_anonymous false
password_file $MQ_PASSWD
max_packet_size $MQ_MAX_PACKET
"
    # The password file is rewritten on every 'up' (hash salts differ each time), so it
    # does not count as a change; the password itself is fixed, so a running broker keeps
    # accepting it without a reload.
    mosquitto_passwd -b -c "$MQ_PASSWD.new" "$CONVEYOR_DB_USER" "$CONVEYOR_DB_PASSWORD" >/dev/null 2>&1 ||
        die "mosquitto: mosquitto_passwd failed"
    chmod 0600 "$MQ_PASSWD.new"
    chown mosquitto:mosquitto "$MQ_PASSWD.new"
    mv -f "$MQ_PASSWD.new" "$MQ_PASSWD"
    chown -R mosquitto:mosquitto "$MQ_ROOT/data" "$MQ_ROOT/log" "$MQ_ROOT/run"
    if [[ "$(cat "$MQ_CONF" 2>/dev/null)" != "${conf%$'\n'}" ]]; then
        printf '%s' "$conf" >"$MQ_CONF"
        chmod 0644 "$MQ_CONF"
        echo changed
    fi
    return 0
}

# Pid of the broker if it really runs with our config (not a stale, reused pid).
mosquitto_pid() {
    local pid
    [[ -f "$MQ_PIDFILE" ]] || return 1
    pid="$(tr -dc 0-9 <"$MQ_PIDFILE" 2>/dev/null)"
    pid_alive "$pid" || return 1
    grep -qa -- "$MQ_CONF" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

mosquitto_ready() {
    tcp_port_open "$MQ_PORT" || return 1
    have mosquitto_pub || return 0
    # mosquitto_pub takes the password only as -P; it is the public test secret.
    mosquitto_pub -h 127.0.0.1 -p "$MQ_PORT" -u "$CONVEYOR_DB_USER" -P "$CONVEYOR_DB_PASSWORD" \
        -t conveyor/healthcheck -m ok -q 1 -V mqttv5 >/dev/null 2>&1
}

mosquitto_start() {
    local i
    rm -f "$MQ_PIDFILE"
    if tcp_port_open "$MQ_PORT"; then
        die "mosquitto: 127.0.0.1:$MQ_PORT is already in use by another process; stop it or set CONVEYOR_MQTT_PORT"
    fi
    if [[ -f "$MQ_LOG" && $(stat -c %s "$MQ_LOG") -gt 52428800 ]]; then
        mv -f "$MQ_LOG" "$MQ_LOG.old"
    fi
    log "mosquitto: starting on 127.0.0.1:$MQ_PORT (log $MQ_LOG)"
    if ! (close_extra_fds && cd "$MQ_ROOT" && "$MQ_BIN" -c "$MQ_CONF" -d </dev/null >>"$MQ_ROOT/log/startup.log" 2>&1); then
        show_log_tail "$MQ_ROOT/log/startup.log"
        show_log_tail "$MQ_LOG"
        die "mosquitto: broker did not start"
    fi
    for ((i = 0; i < 100; i++)); do
        mosquitto_ready && return 0
        sleep 0.1
    done
    show_log_tail "$MQ_LOG"
    die "mosquitto: broker does not accept connections on 127.0.0.1:$MQ_PORT after 10s"
}

mosquitto_up() {
    local t0=$SECONDS pid changed
    mosquitto_ensure_installed
    changed="$(mosquitto_write_config)"
    if pid="$(mosquitto_pid)"; then
        if [[ -n "$changed" ]]; then
            log "mosquitto: configuration changed, restarting (pid $pid)"
            mosquitto_stop_broker
            mosquitto_start
        else
            # The credentials never change, so a running broker needs no reload (a SIGHUP
            # reload under load was seen to take it down). Wait for it to answer.
            local i
            for ((i = 0; i < 100; i++)); do
                mosquitto_ready && break
                sleep 0.1
            done
            mosquitto_ready || die "mosquitto: broker is running (pid $pid) but does not accept connections on 127.0.0.1:$MQ_PORT"
        fi
    else
        mosquitto_start
    fi
    log "mosquitto: up on 127.0.0.1:$MQ_PORT, pid $(mosquitto_pid || echo '?') ($((SECONDS - t0))s)"
}

mosquitto_stop_broker() {
    local pid
    pid="$(mosquitto_pid)" || return 0
    log "mosquitto: stopping (pid $pid)"
    kill_pids 10 "$pid"
    rm -f "$MQ_PIDFILE"
}

mosquitto_down() {
    if [[ ! -d "$MQ_ROOT" ]]; then
        log "mosquitto: not initialised, nothing to stop"
        return 0
    fi
    mosquitto_stop_broker
    log "mosquitto: stopped"
}

mosquitto_status() {
    local pid
    if pid="$(mosquitto_pid)" && mosquitto_ready; then
        echo "mosquitto: running (pid $pid, 127.0.0.1:$MQ_PORT, data $MQ_ROOT)"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        echo "mosquitto: NOT READY (pid $pid, 127.0.0.1:$MQ_PORT, log $MQ_LOG)"
    else
        echo "mosquitto: stopped (data $MQ_ROOT)"
    fi
    return 1
}

mosquitto_env() {
    printf "export CONVEYOR_TEST_MQTT_URL='mqtt://%s:%s@127.0.0.1:%s'\n" "$CONVEYOR_DB_USER" "$CONVEYOR_DB_PASSWORD" "$MQ_PORT"
    printf "export CONVEYOR_TEST_MOSQUITTO='%s'\n" "$MQ_BIN"
    printf "export CONVEYOR_TEST_MQTT_MAX_PACKET='%s'\n" "$MQ_MAX_PACKET"
}

PLUGIN_SERVICES+=(mosquitto)
