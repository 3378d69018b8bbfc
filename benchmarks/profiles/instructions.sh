#!/bin/bash
# Instructions per request of a `glassbox` binary on the benchmark's config, counted by
# callgrind: deterministic where wall-clock CPU time on a shared 2-core machine varies by
# ±30% from one run to the next, so it can tell apart changes worth a few percent.
#
# usage: benchmarks/profiles/instructions.sh GLASSBOX_BINARY OUT_PREFIX [CONFIG] [REQUESTS]
#   CONFIG: default benchmarks/glassbox-bench.toml; REQUESTS: default 2000
# Prints the instructions per request (every thread: request path, telemetry writer, SQLite)
# and writes OUT_PREFIX.callgrind.1 (callgrind's dump of the measured requests only),
# OUT_PREFIX.callgrind (the shutdown, written at exit) and OUT_PREFIX.top.txt
# (callgrind_annotate's inclusive top functions of the measured requests).
#
# The counters are zeroed after a warm-up once its telemetry is written, and dumped once the
# measured requests' telemetry is written (read from /metrics: the queue empty, the rows
# written no longer growing), so
# the figure covers each request's whole cost: the store's share included. User-space instructions only: the kernel's work is not counted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=$1; out=$2; config=${3:-$root/benchmarks/glassbox-bench.toml}; requests=${4:-2000}
target=${CARGO_TARGET_DIR:-$root/target}
mockllm=$target/release/glassbox-mockllm
for tool in valgrind callgrind_control callgrind_annotate oha curl python3; do
  command -v "$tool" > /dev/null || { echo "instructions.sh: $tool is not installed" >&2; exit 2; }
done
[ -x "$mockllm" ] || { echo "instructions.sh: build $mockllm first (cargo build --release -p glassbox-mockllm)" >&2; exit 2; }

mkdir -p "$(dirname "$out")"
rm -f "$out".callgrind "$out".callgrind.* "$out".top.txt
work=$(mktemp -d)
read -r mock_port port < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
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
  valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$out.callgrind" --dump-instr=no --dump-line=no \
  "$binary" serve --config "$config" --listen "127.0.0.1:$port" > "$work/glassbox.log" 2>&1 &
server=$!
ready=0
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && { ready=1; break; }
  kill -0 "$server" 2> /dev/null || { cat "$work/glassbox.log" >&2; exit 1; }
  sleep 0.2
done
[ "$ready" = 1 ] || { echo "instructions.sh: glassbox was not ready after 120 s" >&2; tail "$work/glassbox.log" >&2; exit 1; }
# Waits until every telemetry row handed over so far is written: the telemetry queue is
# empty and the written-rows counter grew by no more than the polls' own rows (a poll is a
# request with a span of its own) over the last 2 s, twice the flush interval, so a batch
# still being inserted is waited for.
settled() {
  local last=-1000000 text queued written
  for _ in $(seq 60); do
    sleep 2
    text=$(curl -fsS "http://127.0.0.1:$port/metrics") || { echo "instructions.sh: GET /metrics failed" >&2; exit 1; }
    queued=$(awk '$1 == "glassbox_telemetry_queue_rows" { print $2 }' <<< "$text")
    written=$(awk '$1 == "glassbox_telemetry_written_rows_total" { print $2 }' <<< "$text")
    [ "$queued" = 0 ] && [ $((written - last)) -le 5 ] && return 0
    last=$written
  done
  echo "instructions.sh: the telemetry writer did not settle in 120 s" >&2
  exit 1
}
control() {
  callgrind_control "$1" "$server" > "$work/control.log" 2>&1 || { cat "$work/control.log" >&2; exit 1; }
}
load() {
  oha --no-tui -n "$1" -c 8 -m POST -H 'content-type: application/json' -H "Authorization: Bearer $key" \
    -d '{"messages":"hello"}' "http://127.0.0.1:$port/api/agents/bench/generate" > "$work/oha-$1.txt"
  grep -qE "Success rate:[[:space:]]+100.00%" "$work/oha-$1.txt" || { cat "$work/oha-$1.txt" >&2; exit 1; }
}
load 300
settled
control -z
load "$requests"
settled
control -d
kill -INT "$server"; wait "$server" 2> /dev/null || true
# The dump (OUT.callgrind.1) holds the measured requests; the file callgrind writes at exit
# (OUT.callgrind) holds the shutdown.
measured=$out.callgrind.1
[ -f "$measured" ] || { echo "instructions.sh: callgrind wrote no dump at $measured" >&2; exit 1; }
callgrind_annotate --inclusive=yes "$measured" > "$out.annotate.txt" 2> /dev/null
# The first 100 lines; async wrappers that recurse count over 100% and are left out.
awk '{
  if (match($0, /\([0-9.]+%\)/) && substr($0, RSTART + 1, RLENGTH - 3) + 0 > 100.05) next
  if (n++ < 100) print
}' "$out.annotate.txt" > "$out.top.txt"
total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$out.annotate.txt")
rm -f "$out.annotate.txt"
echo "instructions per request: $((total / requests)) ($total over $requests requests)"
