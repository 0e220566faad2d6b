# shellcheck shell=bash
# Apache Kafka plugin for scripts/services.sh: a private single-node KRaft broker
# (broker + controller in one JVM) run from the Apache jars on Maven Central, under
# $CONVEYOR_STATE/kafka. No Kafka distribution tarball, no system service.
#
# Listeners (all on 127.0.0.1):
#   59092 PLAINTEXT        the one tests use by default
#   59093 CONTROLLER       KRaft quorum, not for clients
#   59094 SASL_PLAINTEXT   PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, user conveyor
#
# Test env: CONVEYOR_TEST_KAFKA_BROKERS, CONVEYOR_TEST_KAFKA_SASL_BROKERS,
# CONVEYOR_TEST_KAFKA_USER, CONVEYOR_TEST_KAFKA_PASSWORD, and CONVEYOR_TEST_KAFKA_LIBS (the
# jar directory; the Go outage test runs its own broker from it so it can kill it).
#
# Environment: CONVEYOR_KAFKA_VERSION (default 4.4.0), CONVEYOR_KAFKA_PORT (default 59092;
# the controller and SASL listeners take the next two ports).

KAFKA_VERSION="${CONVEYOR_KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${CONVEYOR_KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
KAFKA_SASL_PORT=$((KAFKA_PORT + 2))
KAFKA_ROOT="$CONVEYOR_STATE/kafka"
KAFKA_LIBS="$KAFKA_ROOT/libs"
KAFKA_DATA="$KAFKA_ROOT/data"
KAFKA_LOG="$KAFKA_ROOT/log/server.log"
KAFKA_PIDFILE="$KAFKA_ROOT/kafka.pid"
KAFKA_PROPS="$KAFKA_ROOT/server.properties"
KAFKA_LOG4J="$KAFKA_ROOT/log4j2.properties"
# The broker's message.max.bytes (Kafka's default); the too-large test sends more.
KAFKA_MAX_MESSAGE=1048588
# Versions of the logging jars added next to Kafka's own (log4j2 is Kafka 4's backend).
KAFKA_LOG4J_VERSION=2.26.1
KAFKA_SLF4J_VERSION=2.0.17

kafka_java() {
    local j
    j="$(command -v java || true)"
    [[ -n "$j" ]] || return 1
    echo "$j"
}

# Major version of the java on PATH (17 for "17.0.15").
kafka_java_major() {
    "$1" -version 2>&1 | sed -nE 's/.*version "([0-9]+)(\.[^"]*)?".*/\1/p' | head -n1
}

kafka_ensure_installed() {
    local java major
    java="$(kafka_java || true)"
    if [[ -z "$java" ]] || ! have mvn; then
        apt_install openjdk-17-jre-headless maven
        java="$(kafka_java)" || die "kafka: installed openjdk-17-jre-headless but java is not on PATH"
        have mvn || die "kafka: installed maven but mvn is not on PATH"
    fi
    major="$(kafka_java_major "$java")"
    [[ -n "$major" && "$major" -ge 17 ]] || die "kafka: Kafka $KAFKA_VERSION needs Java 17 or newer; $java is version '${major:-?}'"
}

# Fetch org.apache.kafka:kafka_2.13 and its runtime closure, plus a log4j2 binding, into
# $KAFKA_LIBS with Maven. Cached: a stamp names the version the directory holds.
kafka_fetch_jars() {
    local t0=$SECONDS build="$KAFKA_ROOT/build" tmp="$KAFKA_ROOT/libs.tmp" mlog
    if [[ -f "$KAFKA_LIBS/.version" && "$(cat "$KAFKA_LIBS/.version")" == "$KAFKA_VERSION" ]]; then
        return 0
    fi
    mkdir -p "$build"
    mlog="$build/mvn.log"
    cat >"$build/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/services.d/kafka.sh: the jars of a Kafka $KAFKA_VERSION broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.conveyor.test</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$KAFKA_SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    log "kafka: fetching kafka_2.13:$KAFKA_VERSION and its dependencies from Maven Central (mvn log $mlog)"
    rm -rf "$tmp"
    if ! (cd "$build" && mvn -B -ntp dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp") >"$mlog" 2>&1; then
        # Say exactly what Maven said: the lines naming the unresolved artifact.
        printf '%s ---- Maven errors (%s) ----\n' "$_svc_prefix" "$mlog" >&2
        grep -E '^\[ERROR\]' "$mlog" | head -n 20 >&2 || tail -n 30 "$mlog" >&2
        die "kafka: could not resolve the Kafka $KAFKA_VERSION jars from Maven Central (see the Maven errors above)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka: Maven succeeded but $tmp has no kafka_2.13-$KAFKA_VERSION.jar"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    echo "$KAFKA_VERSION" >"$KAFKA_LIBS/.version"
    log "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS ($((SECONDS - t0))s)"
}

kafka_write_config() {
    local props log4j changed=""
    mkdir -p "$KAFKA_ROOT/log"
    props="# Written by scripts/services.d/kafka.sh on every 'up'; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$CONVEYOR_DB_USER=\"$CONVEYOR_DB_PASSWORD\";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
broker.session.timeout.ms=2000
broker.heartbeat.interval.ms=500
message.max.bytes=$KAFKA_MAX_MESSAGE
log.retention.hours=24
log.segment.bytes=16777216
num.network.threads=2
num.io.threads=2
background.threads=2
"
    log4j="# Written by scripts/services.d/kafka.sh on every 'up'; edits are overwritten.
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=out
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
"
    if [[ "$(cat "$KAFKA_PROPS" 2>/dev/null)" != "${props%$'\n'}" ]]; then
        printf '%s' "$props" >"$KAFKA_PROPS"
        chmod 0600 "$KAFKA_PROPS" # it holds the PLAIN password
        changed=1
    fi
    if [[ "$(cat "$KAFKA_LOG4J" 2>/dev/null)" != "${log4j%$'\n'}" ]]; then
        printf '%s' "$log4j" >"$KAFKA_LOG4J"
        changed=1
    fi
    [[ -n "$changed" ]] && echo changed
    return 0
}

# Run a Kafka main class with the broker's jars and logging.
kafka_run_class() {
    local java
    java="$(kafka_java)"
    "$java" -Xmx512m -Xms128m -XX:+UseSerialGC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*" "$@"
}

# Format the storage directory once (KRaft needs a cluster id and, for SCRAM, the users).
kafka_format() {
    local cid flog="$KAFKA_ROOT/log/format.log"
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    rm -rf "$KAFKA_DATA"
    cid="$(kafka_run_class kafka.tools.StorageTool random-uuid 2>>"$flog" | tail -n1)"
    [[ -n "$cid" ]] || { show_log_tail "$flog"; die "kafka: StorageTool random-uuid printed nothing"; }
    log "kafka: formatting $KAFKA_DATA (cluster id $cid)"
    if ! kafka_run_class kafka.tools.StorageTool format --config "$KAFKA_PROPS" --cluster-id "$cid" \
        --add-scram "SCRAM-SHA-256=[name=$CONVEYOR_DB_USER,password=$CONVEYOR_DB_PASSWORD]" \
        --add-scram "SCRAM-SHA-512=[name=$CONVEYOR_DB_USER,password=$CONVEYOR_DB_PASSWORD]" \
        >>"$flog" 2>&1; then
        show_log_tail "$flog"
        die "kafka: formatting the storage directory failed"
    fi
}

# Pid of our broker if it is really running (the pid file's pid, still a java process
# with our server.properties on its command line).
kafka_is_ours() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF "kafka.Kafka $KAFKA_PROPS"; }

kafka_pid() {
    local pid p
    if [[ -f "$KAFKA_PIDFILE" ]]; then
        pid="$(tr -dc 0-9 <"$KAFKA_PIDFILE" 2>/dev/null)"
        if pid_alive "$pid" && kafka_is_ours "$pid"; then
            echo "$pid"
            return 0
        fi
    fi
    # No valid pid file (deleted, or a crash between start and writing it): look for our
    # broker by its command line, so it is never started twice.
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        if kafka_is_ours "$p" && pid_alive "$p"; then
            echo "$p" >"$KAFKA_PIDFILE"
            echo "$p"
            return 0
        fi
    done
    return 1
}

kafka_start() {
    local pid i
    if tcp_port_open "$KAFKA_PORT"; then
        die "kafka: 127.0.0.1:$KAFKA_PORT is already in use by another process; stop it or set CONVEYOR_KAFKA_PORT"
    fi
    if [[ -f "$KAFKA_LOG" && $(stat -c %s "$KAFKA_LOG") -gt 52428800 ]]; then
        mv -f "$KAFKA_LOG" "$KAFKA_LOG.old"
    fi
    log "kafka: starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (SASL $KAFKA_SASL_PORT; log $KAFKA_LOG)"
    # Detached from our session; must not inherit our lock fd (9), stdout or any pipe.
    (close_extra_fds && cd "$KAFKA_ROOT" && exec setsid "$(kafka_java)" -Xmx512m -Xms128m -XX:+UseSerialGC \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*" \
        kafka.Kafka "$KAFKA_PROPS" </dev/null >>"$KAFKA_LOG" 2>&1) &
    pid=$!
    echo "$pid" >"$KAFKA_PIDFILE"
    for ((i = 0; i < 600; i++)); do
        if ! pid_alive "$pid"; then
            show_log_tail "$KAFKA_LOG"
            die "kafka: broker exited during startup (see the log above)"
        fi
        if tcp_port_open "$KAFKA_PORT" && tcp_port_open "$KAFKA_SASL_PORT"; then
            return 0
        fi
        sleep 0.2
    done
    show_log_tail "$KAFKA_LOG"
    die "kafka: broker (pid $pid) did not listen on 127.0.0.1:$KAFKA_PORT within 120s"
}

kafka_up() {
    local t0=$SECONDS pid changed
    kafka_ensure_installed
    kafka_fetch_jars
    changed="$(kafka_write_config)"
    if pid="$(kafka_pid)"; then
        if [[ -z "$changed" ]] && tcp_port_open "$KAFKA_PORT"; then
            log "kafka: running (pid $pid, 127.0.0.1:$KAFKA_PORT)"
            return 0
        fi
        log "kafka: configuration changed or port closed, restarting (pid $pid)"
        kafka_down
    fi
    kafka_format
    kafka_start
    log "kafka: up on 127.0.0.1:$KAFKA_PORT, pid $(kafka_pid) ($((SECONDS - t0))s)"
}

kafka_down() {
    local pid
    if pid="$(kafka_pid)"; then
        log "kafka: stopping (pid $pid)"
        kill_pids 30 "$pid"
    else
        log "kafka: not running"
    fi
    rm -f "$KAFKA_PIDFILE"
}

kafka_status() {
    local pid
    if pid="$(kafka_pid)" && tcp_port_open "$KAFKA_PORT"; then
        echo "kafka: running (pid $pid, 127.0.0.1:$KAFKA_PORT, SASL 127.0.0.1:$KAFKA_SASL_PORT, data $KAFKA_DATA)"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        echo "kafka: NOT READY (pid $pid, 127.0.0.1:$KAFKA_PORT, log $KAFKA_LOG)"
    else
        echo "kafka: stopped (data $KAFKA_DATA)"
    fi
    return 1
}

kafka_env() {
    printf "export CONVEYOR_TEST_KAFKA_BROKERS='127.0.0.1:%s'\n" "$KAFKA_PORT"
    printf "export CONVEYOR_TEST_KAFKA_SASL_BROKERS='127.0.0.1:%s'\n" "$KAFKA_SASL_PORT"
    printf "export CONVEYOR_TEST_KAFKA_USER='%s'\n" "$CONVEYOR_DB_USER"
    printf "export CONVEYOR_TEST_KAFKA_PASSWORD='%s'\n" "$CONVEYOR_DB_PASSWORD"
    printf "export CONVEYOR_TEST_KAFKA_LIBS='%s'\n" "$KAFKA_LIBS"
}

PLUGIN_SERVICES+=(kafka)
