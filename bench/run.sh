#!/usr/bin/env bash
# make bench: the benchmark report (bench/README.md describes it; docs/benchmarks.md
# carries the latest results). Expects the services up and bin/conveyor built, which the
# Makefile's `bench: services build` takes care of.
#
# Environment:
#   BENCH_SIZE=full|small     full: the issue's sizes (1M events over 10k keys, ~15 min);
#                             small: a quick run that checks the harness (~3 min)
#   BENCH_ONLY=a,b            run only these sections: writecost,limits,relay,shapes,load,peers,profile
#   BENCH_QUIET_WAIT=SECONDS  first wait up to this long for the 1-minute load average to
#                             drop below BENCH_QUIET_LOAD (default 0.7); default 0: no wait
# Extra arguments go to the bench binary (`-h` lists them).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(scripts/services.sh env)"

# The django-outbox-pattern peer gets its own virtualenv: its Django and stomp.py pins
# must not touch the project's.
venv="$root/.cache/bench/peer-venv"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s bench/peers/requirements.txt "$venv/.requirements"; then
    echo "bench: creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r bench/peers/requirements.txt
    cp bench/peers/requirements.txt "$venv/.requirements"
fi

mkdir -p .cache/bench/bin
go build -o .cache/bench/bin/bench ./bench

wait_s="${BENCH_QUIET_WAIT:-0}"
limit="${BENCH_QUIET_LOAD:-0.7}"
t0=$SECONDS
while (( SECONDS - t0 < wait_s )); do
    load="$(cut -d' ' -f1 /proc/loadavg)"
    if awk -v l="$load" -v m="$limit" 'BEGIN { exit !(l < m) }'; then break; fi
    echo "bench: load average $load >= $limit; waiting for a quiet machine ($((SECONDS - t0))s of ${wait_s}s)"
    sleep 60
done

cmd="make bench"
[[ -n "${BENCH_SIZE:-}" ]] && cmd+=" BENCH_SIZE=$BENCH_SIZE"
[[ -n "${BENCH_ONLY:-}" ]] && cmd+=" BENCH_ONLY=$BENCH_ONLY"
[[ $# -gt 0 ]] && cmd+=" BENCH_ARGS='$*'"
export BENCH_COMMAND="${BENCH_COMMAND:-$cmd}"
exec .cache/bench/bin/bench "$@"
