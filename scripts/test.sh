#!/usr/bin/env bash
# Runs the test suites against the services started by `scripts/services.sh up`.
# Usage: scripts/test.sh [go] [python] [e2e]   (default: all)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(scripts/services.sh env)"
export CONVEYOR_BIN="$root/bin/conveyor"
export CONVEYOR_PYTHON="$root/.venv/bin/python"
what=("$@")
[[ ${#what[@]} -eq 0 ]] && what=(go python e2e)
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
    *) echo "unknown suite $w" >&2; exit 2 ;;
  esac
done
