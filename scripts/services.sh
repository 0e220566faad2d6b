#!/usr/bin/env bash
# Conveyor test services: private PostgreSQL 15 and MariaDB instances bound to
# 127.0.0.1, plus the nats-server binary that the Go tests start themselves.
#
# Usage:
#   scripts/services.sh up     [postgres] [mariadb] [nats]   # no names = all three
#   scripts/services.sh down   [postgres] [mariadb] [nats]   # data is kept
#   scripts/services.sh reset  [postgres] [mariadb]          # down + delete the data dirs
#   scripts/services.sh status                               # exit 0 only if all are up
#   scripts/services.sh env                                  # export lines: eval "$(scripts/services.sh env)"
#   scripts/services.sh templates                            # (re)build migrated template DBs
#
# Environment:
#   CONVEYOR_PG_PORT     PostgreSQL TCP port (default 55432)
#   CONVEYOR_MYSQL_PORT  MariaDB TCP port (default 53306)
#   CONVEYOR_STATE       where instances live (default /var/tmp/conveyor)
#
# Safe to run repeatedly: installs what is missing, reuses running instances,
# recovers from a killed server (stale pid files, orphaned backends). Runs as root.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$CONVEYOR_ROOT"
CACHE="$ROOT/.cache"

# ---- PostgreSQL -----------------------------------------------------------------
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
PG_PORT="${CONVEYOR_PG_PORT:-55432}"
PG_ROOT="$CONVEYOR_STATE/pg$PG_MAJOR"
PG_DATA="$PG_ROOT/data"
PG_SOCK="$PG_ROOT/run"
PG_LOG="$PG_ROOT/log/postgresql.log"
PG_TEMPLATE="conveyor_template"
PG_DSN="postgres://$CONVEYOR_DB_USER:$CONVEYOR_DB_PASSWORD@127.0.0.1:$PG_PORT/postgres?sslmode=disable"

# ---- MariaDB --------------------------------------------------------------------
MY_PORT="${CONVEYOR_MYSQL_PORT:-53306}"
MY_ROOT="$CONVEYOR_STATE/mariadb"
MY_DATA="$MY_ROOT/data"
MY_RUN="$MY_ROOT/run"
MY_SOCK="$MY_RUN/mysqld.sock"
MY_PIDFILE="$MY_RUN/mysqld.pid"
MY_LOG="$MY_ROOT/log/error.log"
MY_CNF="$MY_ROOT/my.cnf"
MY_DB="conveyor_test"
MY_TEMPLATE="conveyor_template"
MY_DSN="mysql://$CONVEYOR_DB_USER:$CONVEYOR_DB_PASSWORD@127.0.0.1:$MY_PORT/$MY_DB"

# ---- NATS -----------------------------------------------------------------------
NATS_VERSION="${CONVEYOR_NATS_VERSION:-v2.15.2}"
NATS_BIN="$CACHE/bin/nats-server"

SQLITE_TEMPLATE="$CACHE/template.sqlite3"
VENV_PY="$ROOT/.venv/bin/python"

ALL_SERVICES=(postgres mariadb nats)

# =================================================================================
# PostgreSQL

as_postgres() { (cd "$PG_ROOT" && runuser -u postgres -- "$@"); }

pg_psql_admin() { # psql as the postgres superuser over the private unix socket (peer auth, root mapped)
    PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres "$@"
}

pg_psql_conveyor() { # psql as conveyor over TCP with the password (what tests do)
    PGOPTIONS="-c client_min_messages=warning" PGPASSWORD="$CONVEYOR_DB_PASSWORD" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$PG_PORT user=$CONVEYOR_DB_USER sslmode=disable connect_timeout=5 ${1:+dbname=$1}" "${@:2}"
}

pg_ensure_installed() {
    if [[ ! -x "$PG_BIN/pg_ctl" || ! -x "$PG_BIN/initdb" || ! -x "$PG_BIN/psql" ]]; then
        apt_install "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR"
        [[ -x "$PG_BIN/pg_ctl" ]] || die "postgresql-$PG_MAJOR installed but $PG_BIN/pg_ctl is missing"
    fi
    ensure_system_user postgres /var/lib/postgresql
}

# Pid of this cluster's postmaster if it is really running (not just a stale pid file
# whose pid was reused by some other process).
pg_pid() {
    local pid
    [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
    pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc 0-9)"
    pid_alive "$pid" || return 1
    [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$PG_DATA")" ]] || return 1
    echo "$pid"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -t 2; }

pg_wait_ready() {
    local timeout="$1" i
    for ((i = 0; i < timeout * 5; i++)); do
        pg_ready && return 0
        sleep 0.2
    done
    return 1
}

pg_init() {
    mkdir -p "$PG_ROOT" "$PG_SOCK" "$(dirname "$PG_LOG")"
    chown postgres:postgres "$PG_ROOT" "$PG_SOCK" "$(dirname "$PG_LOG")"
    chmod 0755 "$PG_ROOT" "$PG_SOCK" "$(dirname "$PG_LOG")"
    if [[ -f "$PG_ROOT/.initialized" && -f "$PG_DATA/PG_VERSION" ]]; then
        return 0
    fi
    # No marker: first run, or an initdb that was interrupted. Start clean.
    local orphans
    mapfile -t orphans < <(pids_with_cwd "$PG_DATA")
    kill_pids 10 "${orphans[@]}"
    rm -rf "$PG_DATA" "$PG_ROOT/.initialized"
    mkdir -p "$PG_DATA"
    chown postgres:postgres "$PG_DATA"
    chmod 0700 "$PG_DATA"
    log "postgres: initdb $PG_DATA"
    if ! as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --no-locale \
        --auth-local=peer --auth-host=scram-sha-256 >"$PG_ROOT/log/initdb.log" 2>&1; then
        show_log_tail "$PG_ROOT/log/initdb.log"
        die "postgres: initdb failed"
    fi
    printf "\n# Conveyor test settings (written by scripts/services.sh)\ninclude_if_exists = 'conveyor.conf'\n" \
        >>"$PG_DATA/postgresql.conf"
    touch "$PG_ROOT/.initialized"
}

# Write conveyor.conf and pg_hba.conf; print "changed" if either differs from before.
pg_write_config() {
    local conf hba ident changed=""
    conf="# Written by scripts/services.sh on every 'up'; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
cluster_name = 'conveyor'
max_connections = 200
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
fsync = on
max_parallel_workers_per_gather = 0
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
"
    hba="# Written by scripts/services.sh on every 'up'; edits are overwritten.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer map=conveyor
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
"
    # OS users root and postgres may connect as the postgres superuser over the socket.
    ident="# Written by scripts/services.sh on every 'up'; edits are overwritten.
# MAPNAME   SYSTEM-USERNAME  PG-USERNAME
conveyor    root             postgres
conveyor    postgres         postgres
"
    if [[ "$(cat "$PG_DATA/pg_ident.conf" 2>/dev/null)" != "${ident%$'\n'}" ]]; then
        printf '%s' "$ident" >"$PG_DATA/pg_ident.conf"
        changed=1
    fi
    if [[ "$(cat "$PG_DATA/conveyor.conf" 2>/dev/null)" != "${conf%$'\n'}" ]]; then
        printf '%s' "$conf" >"$PG_DATA/conveyor.conf"
        changed=1
    fi
    if [[ "$(cat "$PG_DATA/pg_hba.conf" 2>/dev/null)" != "${hba%$'\n'}" ]]; then
        printf '%s' "$hba" >"$PG_DATA/pg_hba.conf"
        changed=1
    fi
    chown postgres:postgres "$PG_DATA/conveyor.conf" "$PG_DATA/pg_hba.conf" "$PG_DATA/pg_ident.conf"
    chmod 0600 "$PG_DATA/conveyor.conf" "$PG_DATA/pg_hba.conf" "$PG_DATA/pg_ident.conf"
    [[ -n "$changed" ]] && echo changed
    return 0
}

pg_start() {
    local orphans
    # Anything still running in the data dir without a live postmaster is left over
    # from a killed server (backends outlive a kill -9'd postmaster). Clear it out.
    mapfile -t orphans < <(pids_with_cwd "$PG_DATA")
    if [[ "${#orphans[@]}" -gt 0 ]]; then
        warn "postgres: stopping ${#orphans[@]} orphaned process(es) of a killed server: ${orphans[*]}"
        kill_pids 10 "${orphans[@]}"
    fi
    if [[ -f "$PG_DATA/postmaster.pid" ]]; then
        warn "postgres: removing stale postmaster.pid"
        rm -f "$PG_DATA/postmaster.pid"
    fi
    rm -f "$PG_SOCK"/.s.PGSQL."$PG_PORT" "$PG_SOCK"/.s.PGSQL."$PG_PORT".lock
    if tcp_port_open "$PG_PORT"; then
        die "postgres: 127.0.0.1:$PG_PORT is already in use by another process (not Conveyor's cluster in $PG_DATA); stop it or set CONVEYOR_PG_PORT"
    fi
    # Rotate a large log so it does not grow forever.
    if [[ -f "$PG_LOG" && $(stat -c %s "$PG_LOG") -gt 52428800 ]]; then
        mv -f "$PG_LOG" "$PG_LOG.old"
    fi
    log "postgres: starting on 127.0.0.1:$PG_PORT (log $PG_LOG)"
    # The server must not inherit our lock fd (9) or any pipe of the caller.
    if ! (close_extra_fds && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 90 -s start); then
        show_log_tail "$PG_LOG"
        die "postgres: server did not start (see the log above)"
    fi
}

pg_ensure_role() {
    pg_psql_admin -d postgres <<SQL
\\set pw '$CONVEYOR_DB_PASSWORD'
SELECT format('CREATE ROLE %I', '$CONVEYOR_DB_USER')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$CONVEYOR_DB_USER') \\gexec
ALTER ROLE $CONVEYOR_DB_USER WITH LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION PASSWORD :'pw';
SQL
}

pg_up() {
    local t0=$SECONDS pid changed
    pg_ensure_installed
    pg_init
    changed="$(pg_write_config)"
    if pid="$(pg_pid)"; then
        if [[ -n "$changed" ]]; then
            log "postgres: configuration changed, restarting (pid $pid)"
            (close_extra_fds && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -m fast -w -t 90 -s restart) || {
                show_log_tail "$PG_LOG"
                die "postgres: restart failed"
            }
        elif ! pg_wait_ready 30; then
            show_log_tail "$PG_LOG"
            die "postgres: a server is running (pid $pid) but does not accept connections on $PG_SOCK port $PG_PORT"
        fi
    else
        pg_start
    fi
    if ! pg_wait_ready 60; then
        show_log_tail "$PG_LOG"
        die "postgres: not ready after 60s (pg_isready -h $PG_SOCK -p $PG_PORT)"
    fi
    pg_ensure_role >/dev/null || die "postgres: could not create/update role $CONVEYOR_DB_USER"
    if ! pg_psql_conveyor postgres -Atc 'SELECT 1' >/dev/null; then
        show_log_tail "$PG_LOG" 20
        die "postgres: role $CONVEYOR_DB_USER cannot log in over TCP 127.0.0.1:$PG_PORT"
    fi
    log "postgres: up on 127.0.0.1:$PG_PORT, pid $(pg_pid) ($((SECONDS - t0))s)"
}

pg_down() {
    local pid orphans
    if [[ ! -x "$PG_BIN/pg_ctl" || ! -d "$PG_DATA" ]]; then
        log "postgres: not installed/initialised, nothing to stop"
        return 0
    fi
    if pid="$(pg_pid)"; then
        log "postgres: stopping (pid $pid)"
        if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop; then
            warn "postgres: fast shutdown failed, trying immediate"
            as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 -s stop || true
        fi
    fi
    mapfile -t orphans < <(pids_with_cwd "$PG_DATA")
    if [[ "${#orphans[@]}" -gt 0 ]]; then
        warn "postgres: stopping leftover process(es) ${orphans[*]}"
        kill_pids 10 "${orphans[@]}"
    fi
    if pg_pid >/dev/null; then die "postgres: still running after stop"; fi
    log "postgres: stopped"
}

pg_status() {
    local pid
    if pid="$(pg_pid)" && pg_ready; then
        echo "postgres: running (pid $pid, 127.0.0.1:$PG_PORT, data $PG_DATA)"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        echo "postgres: NOT READY (pid $pid, 127.0.0.1:$PG_PORT, log $PG_LOG)"
    else
        echo "postgres: stopped (data $PG_DATA)"
    fi
    return 1
}

# =================================================================================
# MariaDB

my_find_bins() {
    MYSQLD="$(command -v mariadbd || command -v mysqld || true)"
    [[ -z "$MYSQLD" && -x /usr/sbin/mariadbd ]] && MYSQLD=/usr/sbin/mariadbd
    [[ -z "$MYSQLD" && -x /usr/sbin/mysqld ]] && MYSQLD=/usr/sbin/mysqld
    MY_INSTALL_DB="$(command -v mariadb-install-db || command -v mysql_install_db || true)"
    MY_CLIENT="$(command -v mariadb || command -v mysql || true)"
    MY_ADMIN="$(command -v mariadb-admin || command -v mysqladmin || true)"
}

my_ensure_installed() {
    my_find_bins
    if [[ -z "$MYSQLD" || -z "$MY_INSTALL_DB" || -z "$MY_CLIENT" || -z "$MY_ADMIN" ]]; then
        apt_install mariadb-server mariadb-client
        my_find_bins
        [[ -n "$MYSQLD" && -n "$MY_INSTALL_DB" && -n "$MY_CLIENT" && -n "$MY_ADMIN" ]] ||
            die "mariadb: installed mariadb-server but mariadbd/mariadb-install-db/mariadb/mariadb-admin are not all on PATH"
    fi
    # Build dependencies of Python's mysqlclient (the Django MySQL driver).
    apt_install default-libmysqlclient-dev pkg-config build-essential
    ensure_system_user mysql /nonexistent
}

my_client_root() { "$MY_CLIENT" --defaults-file="$MY_CNF" -uroot "$@"; }

my_pid() {
    local pid
    [[ -f "$MY_PIDFILE" ]] || return 1
    pid="$(tr -dc 0-9 <"$MY_PIDFILE" 2>/dev/null)"
    pid_alive "$pid" || return 1
    [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$MY_DATA")" ]] || return 1
    echo "$pid"
}

my_ready() { "$MY_ADMIN" --defaults-file="$MY_CNF" -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

my_write_config() {
    local cnf
    cnf="# Written by scripts/services.sh on every 'up'; edits are overwritten.
[mysqld]
user                    = mysql
datadir                 = $MY_DATA
socket                  = $MY_SOCK
pid-file                = $MY_PIDFILE
port                    = $MY_PORT
bind-address            = 127.0.0.1
log-error               = $MY_LOG
skip-name-resolve
character-set-server    = utf8mb4
collation-server        = utf8mb4_unicode_ci
max_connections         = 200
innodb_buffer_pool_size = 256M
innodb_flush_log_at_trx_commit = 2
default-time-zone       = '+00:00'

[client]
socket                  = $MY_SOCK
port                    = $MY_PORT
"
    mkdir -p "$MY_ROOT"
    chmod 0755 "$MY_ROOT"
    if [[ "$(cat "$MY_CNF" 2>/dev/null)" != "${cnf%$'\n'}" ]]; then
        printf '%s' "$cnf" >"$MY_CNF"
        chmod 0644 "$MY_CNF"
        echo changed
    fi
    return 0
}

my_init() {
    mkdir -p "$MY_RUN" "$(dirname "$MY_LOG")"
    chown mysql:mysql "$MY_RUN" "$(dirname "$MY_LOG")"
    chmod 0755 "$MY_RUN" "$(dirname "$MY_LOG")"
    if [[ -f "$MY_ROOT/.initialized" && -d "$MY_DATA/mysql" ]]; then
        return 0
    fi
    local orphans
    mapfile -t orphans < <(pids_with_cwd "$MY_DATA")
    kill_pids 10 "${orphans[@]}"
    rm -rf "$MY_DATA" "$MY_ROOT/.initialized"
    mkdir -p "$MY_DATA"
    chown mysql:mysql "$MY_DATA"
    chmod 0750 "$MY_DATA"
    log "mariadb: mariadb-install-db $MY_DATA"
    if ! (cd "$MY_ROOT" && "$MY_INSTALL_DB" --defaults-file="$MY_CNF" --user=mysql --skip-test-db \
        --auth-root-authentication-method=socket) >"$MY_ROOT/log/install-db.log" 2>&1; then
        show_log_tail "$MY_ROOT/log/install-db.log"
        die "mariadb: mariadb-install-db failed"
    fi
    touch "$MY_ROOT/.initialized"
}

my_wait_ready() {
    local timeout="$1" pid="${2:-}" i
    for ((i = 0; i < timeout * 5; i++)); do
        my_ready && return 0
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then return 1; fi
        sleep 0.2
    done
    return 1
}

my_start() {
    local orphans pid
    mapfile -t orphans < <(pids_with_cwd "$MY_DATA")
    if [[ "${#orphans[@]}" -gt 0 ]]; then
        warn "mariadb: stopping ${#orphans[@]} leftover process(es) without a valid pid file: ${orphans[*]}"
        kill_pids 30 "${orphans[@]}"
    fi
    if [[ -f "$MY_PIDFILE" ]]; then
        warn "mariadb: removing stale pid file"
        rm -f "$MY_PIDFILE"
    fi
    rm -f "$MY_SOCK" "$MY_SOCK.lock"
    if tcp_port_open "$MY_PORT"; then
        die "mariadb: 127.0.0.1:$MY_PORT is already in use by another process (not Conveyor's instance in $MY_DATA); stop it or set CONVEYOR_MYSQL_PORT"
    fi
    if [[ -f "$MY_LOG" && $(stat -c %s "$MY_LOG") -gt 52428800 ]]; then
        mv -f "$MY_LOG" "$MY_LOG.old"
    fi
    log "mariadb: starting on 127.0.0.1:$MY_PORT (log $MY_LOG)"
    # Detached from our session; must not inherit our lock fd (9), stdout or any pipe.
    (close_extra_fds && cd "$MY_ROOT" && exec setsid "$MYSQLD" --defaults-file="$MY_CNF" </dev/null >>"$MY_LOG" 2>&1) &
    pid=$!
    if ! my_wait_ready 90 "$pid"; then
        show_log_tail "$MY_LOG"
        if pid_alive "$pid"; then
            die "mariadb: server (pid $pid) did not accept connections within 90s"
        fi
        die "mariadb: server exited during startup (see the log above)"
    fi
}

my_ensure_user() {
    my_client_root --batch <<SQL
CREATE DATABASE IF NOT EXISTS \`$MY_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$CONVEYOR_DB_USER'@'127.0.0.1' IDENTIFIED BY '$CONVEYOR_DB_PASSWORD';
ALTER USER '$CONVEYOR_DB_USER'@'127.0.0.1' IDENTIFIED BY '$CONVEYOR_DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$CONVEYOR_DB_USER'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS '$CONVEYOR_DB_USER'@'localhost' IDENTIFIED BY '$CONVEYOR_DB_PASSWORD';
ALTER USER '$CONVEYOR_DB_USER'@'localhost' IDENTIFIED BY '$CONVEYOR_DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$CONVEYOR_DB_USER'@'localhost' WITH GRANT OPTION;
SQL
}

my_up() {
    local t0=$SECONDS pid changed
    my_ensure_installed
    changed="$(my_write_config)"
    my_init
    if pid="$(my_pid)"; then
        if [[ -n "$changed" ]]; then
            log "mariadb: configuration changed, restarting (pid $pid)"
            my_stop_server
            my_start
        elif ! my_wait_ready 30 "$pid"; then
            show_log_tail "$MY_LOG"
            die "mariadb: a server is running (pid $pid) but does not answer on $MY_SOCK"
        fi
    else
        my_start
    fi
    my_ensure_user || die "mariadb: could not create database $MY_DB / user $CONVEYOR_DB_USER"
    if ! MYSQL_PWD="$CONVEYOR_DB_PASSWORD" "$MY_CLIENT" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" \
        -u "$CONVEYOR_DB_USER" --connect-timeout=5 -e 'SELECT 1' "$MY_DB" >/dev/null; then
        show_log_tail "$MY_LOG" 20
        die "mariadb: user $CONVEYOR_DB_USER cannot log in over TCP 127.0.0.1:$MY_PORT"
    fi
    log "mariadb: up on 127.0.0.1:$MY_PORT, pid $(my_pid) ($((SECONDS - t0))s)"
}

my_stop_server() {
    local pid i
    pid="$(my_pid)" || return 0
    log "mariadb: stopping (pid $pid)"
    "$MY_ADMIN" --defaults-file="$MY_CNF" -uroot --connect-timeout=5 shutdown >/dev/null 2>&1 ||
        kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        warn "mariadb: pid $pid did not stop in 60s, killing it"
        kill_pids 5 "$pid"
    fi
}

my_down() {
    local orphans
    my_find_bins
    if [[ -z "$MYSQLD" || ! -d "$MY_DATA" ]]; then
        log "mariadb: not installed/initialised, nothing to stop"
        return 0
    fi
    my_stop_server
    mapfile -t orphans < <(pids_with_cwd "$MY_DATA")
    if [[ "${#orphans[@]}" -gt 0 ]]; then
        warn "mariadb: stopping leftover process(es) ${orphans[*]}"
        kill_pids 30 "${orphans[@]}"
    fi
    rm -f "$MY_PIDFILE"
    log "mariadb: stopped"
}

my_status() {
    local pid
    my_find_bins
    if pid="$(my_pid)" && [[ -n "$MY_ADMIN" ]] && my_ready; then
        echo "mariadb: running (pid $pid, 127.0.0.1:$MY_PORT, data $MY_DATA)"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        echo "mariadb: NOT READY (pid $pid, 127.0.0.1:$MY_PORT, log $MY_LOG)"
    else
        echo "mariadb: stopped (data $MY_DATA)"
    fi
    return 1
}

# =================================================================================
# NATS (binary only; tests start their own servers)

nats_installed_version() {
    [[ -x "$NATS_BIN" ]] || return 1
    "$NATS_BIN" --version 2>/dev/null | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+[^ ]*' | head -n1
}

find_go() {
    if have go; then command -v go; return 0; fi
    [[ -x /usr/local/go/bin/go ]] && { echo /usr/local/go/bin/go; return 0; }
    return 1
}

nats_up() {
    local t0=$SECONDS ver go
    ver="$(nats_installed_version || true)"
    if [[ "$ver" == "$NATS_VERSION" ]]; then
        log "nats: $NATS_BIN $ver present"
        return 0
    fi
    go="$(find_go)" || die "nats: the go toolchain is not installed (needed to build nats-server $NATS_VERSION); install Go first"
    log "nats: go install github.com/nats-io/nats-server/v2@$NATS_VERSION -> $CACHE/bin${ver:+ (had $ver)}"
    mkdir -p "$CACHE/bin"
    # Run outside the repo so the project's go.mod / go.work cannot interfere.
    if ! (cd / && env GOBIN="$CACHE/bin" GOFLAGS=-buildvcs=false GOWORK=off CGO_ENABLED=0 \
        HOME="${HOME:-/root}" "$go" install "github.com/nats-io/nats-server/v2@$NATS_VERSION") >&2; then
        die "nats: go install of nats-server $NATS_VERSION failed"
    fi
    ver="$(nats_installed_version || true)"
    [[ "$ver" == "$NATS_VERSION" ]] || die "nats: built $NATS_BIN but it reports version '${ver:-?}', expected $NATS_VERSION"
    log "nats: built $NATS_BIN $ver ($((SECONDS - t0))s)"
}

nats_status() {
    local ver
    if ver="$(nats_installed_version)" && [[ -n "$ver" ]]; then
        if [[ "$ver" == "$NATS_VERSION" ]]; then
            echo "nats: binary $NATS_BIN ($ver)"
            return 0
        fi
        echo "nats: binary $NATS_BIN is $ver, expected $NATS_VERSION (run: scripts/services.sh up nats)"
        return 1
    fi
    echo "nats: binary missing ($NATS_BIN)"
    return 1
}

# =================================================================================
# Templates: migrated databases that the Go tests clone

run_migrate() { # run_migrate URL
    PYTHONPATH="$ROOT/python/src${PYTHONPATH:+:$PYTHONPATH}" "$VENV_PY" "$ROOT/scripts/migrate_template.py" --database "$1"
}

templates() {
    local t0=$SECONDS build="${PG_TEMPLATE}_build"
    [[ -x "$VENV_PY" ]] || die "templates: $VENV_PY not found; create the project's virtualenv first (it needs Django and psycopg)"
    pg_up

    log "templates: building PostgreSQL database $PG_TEMPLATE"
    pg_psql_conveyor postgres >/dev/null <<SQL || die "templates: could not create database $build"
DROP DATABASE IF EXISTS $build WITH (FORCE);
CREATE DATABASE $build OWNER $CONVEYOR_DB_USER TEMPLATE template0 ENCODING 'UTF8';
SQL
    run_migrate "postgres://$CONVEYOR_DB_USER:$CONVEYOR_DB_PASSWORD@127.0.0.1:$PG_PORT/$build?sslmode=disable" ||
        die "templates: Django migrations failed on PostgreSQL"
    # Swap the freshly built database in. is_template must be cleared before DROP;
    # WITH (FORCE) ends any session still attached to the old template.
    pg_psql_conveyor postgres >/dev/null <<SQL || die "templates: could not install $PG_TEMPLATE"
SELECT format('ALTER DATABASE %I WITH is_template false', datname) FROM pg_database
 WHERE datname = '$PG_TEMPLATE' AND datistemplate \\gexec
DROP DATABASE IF EXISTS $PG_TEMPLATE WITH (FORCE);
ALTER DATABASE $build RENAME TO $PG_TEMPLATE;
ALTER DATABASE $PG_TEMPLATE WITH is_template true;
SQL

    my_up
    my_template

    log "templates: building SQLite file $SQLITE_TEMPLATE"
    mkdir -p "$CACHE"
    local tmp="$SQLITE_TEMPLATE.build.$$"
    rm -f "$tmp" "$tmp-journal" "$tmp-wal" "$tmp-shm"
    if ! run_migrate "sqlite:///$tmp"; then
        rm -f "$tmp" "$tmp-journal"
        die "templates: Django migrations failed on SQLite"
    fi
    rm -f "$SQLITE_TEMPLATE-journal" "$SQLITE_TEMPLATE-wal" "$SQLITE_TEMPLATE-shm"
    mv -f "$tmp" "$SQLITE_TEMPLATE"
    log "templates: done ($((SECONDS - t0))s): PostgreSQL $PG_TEMPLATE, MariaDB $MY_TEMPLATE, SQLite $SQLITE_TEMPLATE"
}

# The MariaDB template: migrated into a build database, whose tables then move into a
# fresh $MY_TEMPLATE (MariaDB has no RENAME DATABASE). Tests copy its tables with CREATE
# TABLE ... LIKE (internal/testdb), as there is no CREATE DATABASE ... TEMPLATE either.
my_template() {
    local build="${MY_TEMPLATE}_build" tables t sql
    log "templates: building MariaDB database $MY_TEMPLATE"
    my_client_root --batch -e "DROP DATABASE IF EXISTS \`$build\`;
CREATE DATABASE \`$build\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;" ||
        die "templates: could not create database $build"
    run_migrate "mysql://$CONVEYOR_DB_USER:$CONVEYOR_DB_PASSWORD@127.0.0.1:$MY_PORT/$build" ||
        die "templates: Django migrations failed on MariaDB"
    tables="$(my_client_root --batch --skip-column-names -e \
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$build'")" ||
        die "templates: could not list the tables of $build"
    [[ -n "$tables" ]] || die "templates: the migrations made no tables in $build"
    sql="DROP DATABASE IF EXISTS \`$MY_TEMPLATE\`;
CREATE DATABASE \`$MY_TEMPLATE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    for t in $tables; do
        sql+="
RENAME TABLE \`$build\`.\`$t\` TO \`$MY_TEMPLATE\`.\`$t\`;"
    done
    sql+="
DROP DATABASE \`$build\`;"
    my_client_root --batch -e "$sql" || die "templates: could not install $MY_TEMPLATE"
}

templates_status() {
    local t
    if pg_pid >/dev/null 2>&1 && pg_ready; then
        t="$(pg_psql_admin -d postgres -Atc "SELECT datistemplate FROM pg_database WHERE datname = '$PG_TEMPLATE'" 2>/dev/null || true)"
        case "$t" in
        t) echo "template: postgres $PG_TEMPLATE present" ;;
        f) echo "template: postgres $PG_TEMPLATE present but NOT marked is_template" ;;
        *) echo "template: postgres $PG_TEMPLATE missing (run: scripts/services.sh templates)" ;;
        esac
    fi
    if my_find_bins && [[ -n "$MY_CLIENT" ]] && my_pid >/dev/null 2>&1 && my_ready; then
        t="$(my_client_root --batch --skip-column-names -e \
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$MY_TEMPLATE' AND TABLE_NAME = 'conveyor_event'" 2>/dev/null || true)"
        if [[ "$t" == 1 ]]; then
            echo "template: mariadb $MY_TEMPLATE present"
        else
            echo "template: mariadb $MY_TEMPLATE missing (run: scripts/services.sh templates)"
        fi
    fi
    if [[ -f "$SQLITE_TEMPLATE" ]]; then
        echo "template: sqlite $SQLITE_TEMPLATE ($(date -r "$SQLITE_TEMPLATE" '+%F %T'))"
    else
        echo "template: sqlite $SQLITE_TEMPLATE missing (run: scripts/services.sh templates)"
    fi
}

# =================================================================================

# ---------------------------------------------------------------------------------
# Plugins: each scripts/services.d/NAME.sh defines NAME_up, NAME_down, NAME_status and
# NAME_env (export lines), and registers itself with PLUGIN_SERVICES+=(NAME). They can use
# everything in lib.sh and the variables above.
PLUGIN_SERVICES=()
for _plugin in "$(dirname "${BASH_SOURCE[0]}")"/services.d/*.sh; do
    [[ -e "$_plugin" ]] || continue
    # shellcheck source=/dev/null
    source "$_plugin"
done
ALL_SERVICES+=("${PLUGIN_SERVICES[@]}")

is_plugin() {
    local p
    for p in "${PLUGIN_SERVICES[@]}"; do [[ "$p" == "$1" ]] && return 0; done
    return 1
}

print_env() {
    # Single-quoted so that eval does not glob the '?' in the DSN.
    printf "export CONVEYOR_TEST_PG_DSN='%s'\n" "$PG_DSN"
    printf "export CONVEYOR_TEST_MYSQL_DSN='%s'\n" "$MY_DSN"
    printf "export CONVEYOR_TEST_NATS_SERVER='%s'\n" "$NATS_BIN"
    printf "export CONVEYOR_TEST_PG_TEMPLATE='%s'\n" "$PG_TEMPLATE"
    printf "export CONVEYOR_TEST_MYSQL_TEMPLATE='%s'\n" "$MY_TEMPLATE"
    printf "export CONVEYOR_TEST_SQLITE_TEMPLATE='%s'\n" "$SQLITE_TEMPLATE"
    local p
    for p in "${PLUGIN_SERVICES[@]}"; do "${p}_env"; done
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Validate service names; no names means all of them.
parse_services() {
    local s
    SERVICES=()
    [[ $# -gt 0 ]] || set -- "${ALL_SERVICES[@]}"
    for s in "$@"; do
        case "$s" in
        postgres | pg | postgresql) SERVICES+=(postgres) ;;
        mariadb | mysql) SERVICES+=(mariadb) ;;
        nats | nats-server) SERVICES+=(nats) ;;
        *)
            is_plugin "$s" || die "unknown service '$s' (expected: postgres, mariadb, nats${PLUGIN_SERVICES[*]:+, ${PLUGIN_SERVICES[*]}})"
            SERVICES+=("$s")
            ;;
        esac
    done
}

main() {
    local cmd="${1:-}" s rc=0
    [[ $# -gt 0 ]] && shift
    trap '_policy_rc_restore' EXIT
    case "$cmd" in
    up)
        parse_services "$@"
        require_root
        take_lock
        local t0=$SECONDS
        for s in "${SERVICES[@]}"; do
            case "$s" in
            postgres) pg_up ;;
            mariadb) my_up ;;
            nats) nats_up ;;
            *) "${s}_up" ;;
            esac
        done
        log "up: ${SERVICES[*]} ready in $((SECONDS - t0))s (for the test env: eval \"\$(scripts/services.sh env)\")"
        ;;
    down)
        parse_services "$@"
        require_root
        take_lock
        for s in "${SERVICES[@]}"; do
            case "$s" in
            postgres) pg_down ;;
            mariadb) my_down ;;
            nats) log "nats: no daemon to stop (tests run their own nats-server)" ;;
            *) "${s}_down" ;;
            esac
        done
        ;;
    reset)
        [[ $# -gt 0 ]] || set -- postgres mariadb
        parse_services "$@"
        require_root
        take_lock
        for s in "${SERVICES[@]}"; do
            case "$s" in
            postgres) pg_down && rm -rf "$PG_ROOT" && log "postgres: deleted $PG_ROOT" ;;
            mariadb) my_down && rm -rf "$MY_ROOT" && log "mariadb: deleted $MY_ROOT" ;;
            nats) rm -f "$NATS_BIN" && log "nats: deleted $NATS_BIN" ;;
            esac
        done
        ;;
    status)
        [[ $# -eq 0 ]] || die "status takes no arguments"
        pg_status || rc=1
        my_status || rc=1
        nats_status || rc=1
        for s in "${PLUGIN_SERVICES[@]}"; do "${s}_status" || rc=1; done
        templates_status
        return "$rc"
        ;;
    env)
        [[ $# -eq 0 ]] || die "env takes no arguments"
        print_env
        ;;
    templates)
        [[ $# -eq 0 ]] || die "templates takes no arguments"
        require_root
        take_lock
        templates
        ;;
    -h | --help | help) usage ;;
    *)
        [[ -z "$cmd" ]] || printf '%s unknown command: %s\n\n' "$_svc_prefix" "$cmd" >&2
        usage
        ;;
    esac
}

main "$@"
