#!/usr/bin/env bash
# Runs django-conveyor's tests on each backend in turn, then the example project's tests.
#
#   python/run_tests.sh                     # sqlite postgres mysql example
#   python/run_tests.sh sqlite postgres     # a subset
#   python/run_tests.sh postgres -- -k notify -x   # extra pytest arguments after --
#
# PostgreSQL and MariaDB addresses come from CONVEYOR_TEST_PG_DSN / CONVEYOR_TEST_MYSQL_DSN;
# when unset they are read from `scripts/services.sh env`. With CI set, a backend whose
# DSN is still missing fails the run; outside CI it is skipped with a warning.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
PY="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"

suites=()
pytest_args=()
while (($#)); do
  case "$1" in
    --) shift; pytest_args=("$@"); break ;;
    sqlite|postgres|mysql|example) suites+=("$1"); shift ;;
    *) echo "run_tests.sh: unknown suite '$1' (use sqlite, postgres, mysql, example)" >&2; exit 2 ;;
  esac
done
((${#suites[@]})) || suites=(sqlite postgres mysql example)

if [[ -z "${CONVEYOR_TEST_PG_DSN:-}" || -z "${CONVEYOR_TEST_MYSQL_DSN:-}" ]] && [[ -x "$root/scripts/services.sh" ]]; then
  if env_lines="$("$root/scripts/services.sh" env 2>/dev/null)"; then
    eval "$env_lines"
  fi
fi

# The admin screenshot test drives Debian's chromium headless. Outside CI it is skipped when
# chromium is missing; in CI it must run, so install it here (needs root and apt).
if [[ -n "${CI:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "run_tests.sh: installing chromium for the admin screenshot test" >&2
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2; }
    apt_install || { apt-get update -qq >&2 && apt_install; } ||
      echo "run_tests.sh: apt-get install chromium failed; the screenshot test will fail" >&2
  else
    echo "run_tests.sh: cannot install chromium (not root, or no apt-get); the screenshot test will fail" >&2
  fi
fi

failed=()
skipped=()
run() { # name, directory, settings module, pytest args...
  local name="$1" dir="$2" settings="$3"
  shift 3
  echo "== pytest: $name"
  if (cd "$dir" && DJANGO_SETTINGS_MODULE="$settings" "$PY" -m pytest "$@" "${pytest_args[@]}"); then
    return 0
  fi
  failed+=("$name")
}

need_dsn() { # suite, variable
  if [[ -n "${!2:-}" ]]; then return 0; fi
  if [[ -n "${CI:-}" ]]; then
    echo "run_tests.sh: $2 is not set, so the $1 tests cannot run; in CI that is a failure." >&2
    echo "             Start the services first: scripts/services.sh up" >&2
    failed+=("$1 (no $2)")
  else
    echo "run_tests.sh: WARNING: $2 is not set; skipping the $1 tests (start them with scripts/services.sh up)" >&2
    skipped+=("$1")
  fi
  return 1
}

for suite in "${suites[@]}"; do
  case "$suite" in
    sqlite) run "sqlite" "$here" tests.settings_sqlite ;;
    postgres) need_dsn postgres CONVEYOR_TEST_PG_DSN && run "postgres" "$here" tests.settings_postgres ;;
    mysql) need_dsn mysql CONVEYOR_TEST_MYSQL_DSN && run "mysql (MariaDB)" "$here" tests.settings_mysql ;;
    example) run "example project" "$root/example" shop.settings ;;
  esac
done

((${#skipped[@]})) && echo "run_tests.sh: skipped: ${skipped[*]}"
if ((${#failed[@]})); then
  echo "run_tests.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run_tests.sh: all suites passed (${suites[*]})"
