#!/bin/bash
# Instructions per request of a `glassbox` binary on the benchmark's config, counted by
# callgrind: deterministic where wall-clock CPU time on a shared 2-core machine varies by
# ±30% from one run to the next, so it can tell apart changes worth a few percent.
#
# usage: benchmarks/profiles/instructions.sh GLASSBOX_BINARY OUT_PREFIX [CONFIG] [REQUESTS]
#   CONFIG: default benchmarks/glassbox-bench.toml; REQUESTS: default 2000
# Prints the instructions per request (every thread: request path, telemetry writer, SQLite)
# and writes OUT_PREFIX.callgrind (the counts of the measured requests only) and
# OUT_PREFIX.top.txt (callgrind_annotate's inclusive top functions).
#
# The counters are zeroed after a warm-up and its telemetry flush, and dumped after the
# measured requests' telemetry has been written (the writer flushes every second), so the
# figure covers each request's whole cost: the store's share included.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=$1; out=$2; config=${3:-$root/benchmarks/glassbox-bench.toml}; requests=${4:-2000}
target=${CARGO_TARGET_DIR:-$root/target}
mockllm=$target/release/glassbox-mockllm
for tool in valgrind callgrind_control callgrind_annotate oha; do
  command -v "$tool" > /dev/null || { echo "instructions.sh: $tool is not installed" >&2; exit 2; }
done
[ -x "$mockllm" ] || { echo "instructions.sh: build $mockllm first (cargo build --release -p glassbox-mockllm)" >&2; exit 2; }

work=$(mktemp -d)
mock_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=gbx_bench_0123456789abcdef
cleanup() {
  kill "${server:-}" "${mock:-}" 2> /dev/null || true
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$mockllm" --listen "127.0.0.1:$mock_port" --latency-ms 0 > "$work/mock.log" 2>&1 &
mock=$!
BENCH_MOCK_URL="http://127.0.0.1:$mock_port/v1" BENCH_DATA_DIR="$work/data" BENCH_MOCK_API_KEY=bench \
  GLASSBOX_BENCH_KEY=$key \
  valgrind --tool=callgrind --callgrind-out-file="$out.callgrind" --dump-instr=no --dump-line=no \
  "$binary" serve --config "$config" --listen "127.0.0.1:$port" > "$work/glassbox.log" 2>&1 &
server=$!
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && break
  kill -0 "$server" 2> /dev/null || { cat "$work/glassbox.log" >&2; exit 1; }
  sleep 0.2
done
load() {
  oha --no-tui -n "$1" -c 8 -m POST -H 'content-type: application/json' -H "Authorization: Bearer $key" \
    -d '{"messages":"hello"}' "http://127.0.0.1:$port/api/agents/bench/generate" > "$work/oha-$1.txt"
  grep -qE "Success rate:[[:space:]]+100.00%" "$work/oha-$1.txt" || { cat "$work/oha-$1.txt" >&2; exit 1; }
}
load 300
sleep 3   # the warm-up's telemetry is written
callgrind_control -z "$server" > /dev/null 2>&1
load "$requests"
sleep 3   # the measured requests' telemetry is written
callgrind_control -d "$server" > /dev/null 2>&1
kill -INT "$server"; wait "$server" 2> /dev/null || true
# The dump (OUT.callgrind.1) holds the measured requests; the file callgrind writes at exit
# (OUT.callgrind) holds the shutdown.
measured=$out.callgrind.1
[ -f "$measured" ] || { echo "instructions.sh: callgrind wrote no dump at $measured" >&2; exit 1; }
callgrind_annotate --inclusive=yes "$measured" > "$out.annotate.txt" 2> /dev/null
head -80 "$out.annotate.txt" > "$out.top.txt"
total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$out.annotate.txt")
rm -f "$out.annotate.txt"
echo "instructions per request: $((total / requests)) ($total over $requests requests)"
