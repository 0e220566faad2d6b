#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded default, no services needed.
# Django (SQLite) writes orders and their events in one transaction each; the relay, with
# no config at all, publishes them to its in-process NATS JetStream server; we read the
# stream back and print a report. Exits non-zero if anything is missing or extra.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PY="$root/.venv/bin/python"
BIN="$root/bin/conveyor"
out="$root/build/demo"
count="${DEMO_ORDERS:-25}"
[[ -x "$PY" ]] || { echo "demo: $PY missing; run via 'make demo'" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "demo: $BIN missing; run via 'make demo'" >&2; exit 1; }

rm -rf "$out" && mkdir -p "$out"
cd "$root/example"
# A fresh database and stream each run, so the demo is repeatable.
rm -rf db.sqlite3 db.sqlite3-wal db.sqlite3-shm .conveyor

echo "== migrating the example's SQLite database"
"$PY" manage.py migrate --verbosity 0

echo "== starting the relay with no config (SQLite ./db.sqlite3 + embedded NATS JetStream)"
if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "demo: something already listens on 127.0.0.1:4222; stop it first (the embedded NATS server needs that port)" >&2
  exit 1
fi
"$BIN" run --help >/dev/null 2>&1
"$BIN" run >"$out/relay.log" 2>&1 &
relay=$!
cleanup() { kill -TERM "$relay" 2>/dev/null && wait "$relay" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q '"relay started"\|msg="relay started"' "$out/relay.log" && break
  kill -0 "$relay" 2>/dev/null || { echo "demo: the relay exited:" >&2; cat "$out/relay.log" >&2; exit 1; }
  sleep 0.1
done
grep -q 'relay started' "$out/relay.log" || { echo "demo: relay did not start in 10s" >&2; cat "$out/relay.log" >&2; exit 1; }

echo "== placing $count orders (each order + its order.placed event in one transaction.atomic()), and one that rolls back"
"$PY" manage.py place_orders --count "$count" --out "$out/orders.json"

echo "== waiting for the relay to drain"
for _ in $(seq 1 100); do
  pending="$("$BIN" status --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pending"])')"
  [[ "$pending" == "0" ]] && break
  sleep 0.1
done

echo "== reading the stream back"
"$BIN" tail --json --timeout 2s >"$out/received.jsonl"

echo
"$PY" manage.py demo_report --orders "$out/orders.json" --received "$out/received.jsonl"
