#!/usr/bin/env bash
# Runs the test suites against the services started by `scripts/services.sh up`.
# Usage: scripts/test.sh [go] [python] [e2e] [guarantees] [bench]   (default: all)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(scripts/services.sh env)"
export CONVEYOR_BIN="$root/bin/conveyor"
export CONVEYOR_REPO="$root"
export CONVEYOR_PYTHON="$root/.venv/bin/python"
what=("$@")
[[ ${#what[@]} -eq 0 ]] && what=(go python e2e guarantees bench)
for w in "${what[@]}"; do
  case "$w" in
    go)
      echo "== go test -race ./..."
      go test -race -count=1 -timeout 15m ./...
      ;;
    python)
      echo "== pytest (sqlite, postgres, mysql)"
      python/run_tests.sh
      ;;
    e2e)
      echo "== end to end: Django publish -> bin/conveyor -> nats-server -> consumer"
      (cd e2e && "$CONVEYOR_PYTHON" -m pytest -q)
      ;;
    guarantees)
      # Runs alone: it restarts the shared PostgreSQL. CONVEYOR_SOAK=1 for the long version.
      echo "== guarantees (G1-G6 under faults; CONVEYOR_SOAK=${CONVEYOR_SOAK:-} )"
      mkdir -p build
      rc=0
      CONVEYOR_GUARANTEES_OUT="$root/build/guarantees.md" \
        go test -tags guarantees -count=1 -p 1 -timeout 60m -v ./guarantees/ >build/guarantees.log 2>&1 || rc=$?
      grep -E '^(--- |PASS|FAIL|ok |GUARANTEE)' build/guarantees.log || true
      if [[ $rc -ne 0 ]]; then echo "guarantees failed; last lines of build/guarantees.log:"; tail -80 build/guarantees.log; exit "$rc"; fi
      cat build/guarantees.md
      ;;
    bench)
      # make bench-quick as a smoke check: every section ran and produced numbers. It
      # asserts no speed (the machine is shared; speed is make bench's job).
      echo "== bench-quick (smoke: every section produces numbers)"
      rm -rf build/bench
      rc=0
      BENCH_SIZE=small bench/run.sh -results build/bench >build/bench-quick.log 2>&1 || rc=$?
      if [[ $rc -ne 0 ]]; then echo "bench-quick failed; last lines of build/bench-quick.log:"; tail -40 build/bench-quick.log; exit "$rc"; fi
      "$CONVEYOR_PYTHON" bench/check_report.py build/bench/latest.json
      ;;
    *) echo "unknown suite $w" >&2; exit 2 ;;
  esac
done
