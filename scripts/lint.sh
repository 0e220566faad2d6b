#!/usr/bin/env bash
# Static checks for both languages. Installs staticcheck from the Go module proxy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
STATICCHECK_VERSION=v0.8.2
bin="$root/.cache/bin"
mkdir -p "$bin"
echo "== gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' | tr '\n' ' ') 2>/dev/null || true)"
if [[ -n "$unformatted" ]]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
if [[ ! -x "$bin/staticcheck" ]] || ! "$bin/staticcheck" -version 2>/dev/null | grep -q "$STATICCHECK_VERSION"; then
  (cd / && GOBIN="$bin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION")
fi
"$bin/staticcheck" ./...
echo "== ruff"
.venv/bin/ruff check python example
.venv/bin/ruff format --check python example
echo "== mypy"
(cd python && ../.venv/bin/mypy)
(cd example && ../.venv/bin/mypy)
