#!/bin/bash
# Profiles the Glassbox phase of the generate benchmark (the floor runs first and is skipped).
# usage: benchmarks/profiles/profile.sh BENCH_BINARY OUT_DIR [VAR=value ...]
#   BENCH_BINARY: target/release/deps/generate-<hash> (`cargo bench -p glassbox-server --bench generate --no-run`)
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; out=$2; shift 2
mkdir -p "$out"
env BENCH_SECONDS=12 "$@" "$bin" --bench > "$out/bench.txt" 2> "$out/bench.err" &
pid=$!
sleep 15.5   # floor: 1 s warm-up + 12 s; Glassbox's warm-up
perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p $pid -o "$out/perf.data" -- sleep 8 2> "$out/perf.err"
wait $pid
perf script --no-inline -i "$out/perf.data" 2>/dev/null | python3 "$here/collapse.py" > "$out/folded.full"
python3 "$here/shorten.py" < "$out/folded.full" > "$out/folded"
python3 "$here/summary.py" "$out/folded.full" > "$out/summary.txt"
tail -12 "$out/bench.txt"
