#!/usr/bin/env bash
# The benchmark harness: one command (see BENCHMARKS.md).
#
#   ./benchmarks/run.sh                  full run: floor, Glassbox, LiteLLM, Mastra; ~8 minutes
#   ./benchmarks/run.sh --smoke          floor and Glassbox only, 2 s runs (checks the harness)
#   ./benchmarks/run.sh --no-peers       floor and Glassbox only, full-length runs
#   ./benchmarks/run.sh --clickhouse     also Glassbox with ClickHouse (the chDB test fixture) as store
#   ./benchmarks/run.sh -- ARGS...       extra arguments for `glassbox-bench run` (see --help)
#
# Builds the release binaries (glassbox, glassbox-mockllm, glassbox-bench) and installs what is
# missing: oha (`cargo install`), LiteLLM's proxy into a venv at $BENCH_VENV
# (default ~/.cache/glassbox/bench-venv) and the Mastra server of benchmarks/peers/mastra at
# $BENCH_MASTRA_DIR (default ~/.cache/glassbox/bench-mastra). Results: benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

OHA_VERSION=1.16.0
BENCH_VENV="${BENCH_VENV:-$HOME/.cache/glassbox/bench-venv}"
BENCH_MASTRA_DIR="${BENCH_MASTRA_DIR:-$HOME/.cache/glassbox/bench-mastra}"
export BENCH_MASTRA_DIR BENCH_LITELLM="$BENCH_VENV/bin/litellm"

smoke=0 peers=1 clickhouse=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; peers=0 ;;
    --no-peers) peers=0 ;;
    --clickhouse) clickhouse=1 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "benchmarks/run.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --locked -p glassbox-server -p glassbox-mockllm -p glassbox-bench --bin glassbox --bin glassbox-mockllm --bin glassbox-bench >&2

export PATH="$HOME/.cargo/bin:$PATH"
if ! oha --version 2>/dev/null | grep -q "$OHA_VERSION"; then
  echo "benchmarks/run.sh: installing oha $OHA_VERSION" >&2
  cargo install oha --locked --version "$OHA_VERSION" >&2
fi

if [ "$peers" = 1 ]; then
  # LiteLLM: reinstalled when benchmarks/peers/litellm/requirements.txt changed.
  req=benchmarks/peers/litellm/requirements.txt
  stamp="$BENCH_VENV/.glassbox-bench.sha256"
  hash="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ] || [ ! -x "$BENCH_VENV/bin/litellm" ]; then
    echo "benchmarks/run.sh: installing LiteLLM's proxy into $BENCH_VENV" >&2
    [ -x "$BENCH_VENV/bin/python" ] || python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install --disable-pip-version-check --no-input -q -r "$req" >&2
    echo "$hash" >"$stamp"
  fi
  # Mastra: rebuilt when benchmarks/peers/mastra changed.
  src=benchmarks/peers/mastra
  hash="$(cat "$src/package.json" "$src/cluster.mjs" "$src/tsconfig.json" "$src/src/mastra/index.ts" | sha256sum | cut -d' ' -f1)"
  stamp="$BENCH_MASTRA_DIR/.glassbox-bench.sha256"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ] || [ ! -f "$BENCH_MASTRA_DIR/.mastra/output/index.mjs" ]; then
    echo "benchmarks/run.sh: installing and building the Mastra server in $BENCH_MASTRA_DIR" >&2
    mkdir -p "$BENCH_MASTRA_DIR"
    cp -r "$src/package.json" "$src/cluster.mjs" "$src/tsconfig.json" "$src/src" "$BENCH_MASTRA_DIR/"
    (cd "$BENCH_MASTRA_DIR" && npm install --no-audit --no-fund --loglevel=error >&2 \
      && MASTRA_TELEMETRY_DISABLED=1 npx mastra build >&2)
    echo "$hash" >"$stamp"
  fi
fi

args=(run)
[ "$smoke" = 1 ] && args+=(--smoke)
[ "$peers" = 0 ] && [ "$smoke" = 0 ] && args+=(--targets floor)
fixture_pid=""
cleanup() { [ -n "$fixture_pid" ] && kill "$fixture_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ "$clickhouse" = 1 ]; then
  # The chDB fixture of the test suite (tests/run.sh --setup-only installs its venv). It is a
  # correctness fixture (one query at a time), so this measures Glassbox's side of the writes
  # (batching, the spool when the store lags), not ClickHouse.
  python="${GLASSBOX_PYTHON:-$HOME/.cache/glassbox/venv/bin/python}"
  fixture_dir="$(mktemp -d)"
  "$python" tests/clickhouse/fixture.py --data-dir "$fixture_dir/data" --port 0 >"$fixture_dir/out" 2>"$fixture_dir/err" &
  fixture_pid=$!
  for _ in $(seq 300); do grep -q '^READY ' "$fixture_dir/out" && break; sleep 0.2; done
  grep -q '^READY ' "$fixture_dir/out" || { echo "benchmarks/run.sh: the chDB fixture did not start: $(tail -5 "$fixture_dir/err")" >&2; exit 1; }
  port_file="$fixture_dir/port"
  awk '/^READY /{print $2; exit}' "$fixture_dir/out" >"$port_file"
  args+=(--clickhouse-url "http://127.0.0.1:$(cat "$port_file")")
fi
exec_status=0
target/release/glassbox-bench "${args[@]}" "${extra[@]}" || exec_status=$?
exit "$exec_status"
