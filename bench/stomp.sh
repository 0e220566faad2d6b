#!/usr/bin/env bash
# Enable or disable RabbitMQ's STOMP plugin on the private node of
# scripts/services.d/rabbitmq.sh, for the django-outbox-pattern peer of make bench.
#
#   bench/stomp.sh enable PORT   # STOMP on 127.0.0.1:PORT only
#   bench/stomp.sh disable
#
# The listener address is set in the node's environment before the plugin starts (the
# plugin's default is every interface on 61613). Enabling writes the node's
# enabled_plugins file; `scripts/services.sh up` rewrites it to none, and `disable`
# restores it, so the node is left as it was.
set -euo pipefail
state="${CONVEYOR_STATE:-/var/tmp/conveyor}"
root="$state/rabbitmq"
[[ -f "$root/env.sh" && -x "$root/rabbitmqctl" ]] || { echo "stomp.sh: no RabbitMQ node under $root (scripts/services.sh up rabbitmq)" >&2; exit 1; }
# shellcheck source=/dev/null
. "$root/env.sh"
plugins() {
    runuser -u rabbitmq -- env HOME="$HOME" RABBITMQ_NODENAME="$RABBITMQ_NODENAME" ERL_EPMD_PORT="$ERL_EPMD_PORT" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_ENABLED_PLUGINS_FILE" /usr/lib/rabbitmq/bin/rabbitmq-plugins -q "$@"
}
case "${1:-}" in
enable)
    port="${2:?port}"
    "$root/rabbitmqctl" -q eval "application:load(rabbitmq_stomp), application:set_env(rabbitmq_stomp, tcp_listeners, [{\"127.0.0.1\", $port}])." >/dev/null
    plugins enable rabbitmq_stomp >/dev/null
    for _ in $(seq 50); do
        if ss -Hltn "sport = :$port" | grep -q .; then break; fi
        sleep 0.2
    done
    listen="$(ss -Hltn "sport = :$port" | awk '{print $4}')"
    if [[ "$listen" != "127.0.0.1:$port" ]]; then
        plugins disable rabbitmq_stomp >/dev/null || true
        echo "stomp.sh: STOMP listens on '${listen:-nothing}', not 127.0.0.1:$port; disabled it again" >&2
        exit 1
    fi
    ;;
disable)
    plugins disable rabbitmq_stomp >/dev/null
    ;;
*)
    echo "usage: bench/stomp.sh enable PORT | disable" >&2
    exit 2
    ;;
esac
