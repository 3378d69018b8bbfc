#!/bin/bash
# Profiles a running `glassbox serve` (the benchmark's config) while oha drives it at a fixed
# rate: perf with DWARF call graphs for 10 s, then folded stacks and a summary.
# usage: benchmarks/profiles/server-profile.sh PID URL RATE OUT_PREFIX
#   PID: the glassbox process; URL: http://127.0.0.1:PORT/api/agents/bench/generate
#   (the request carries the benchmark key of benchmarks/glassbox-bench.toml's GLASSBOX_BENCH_KEY)
here=$(cd "$(dirname "$0")" && pwd)
pid=$1; url=$2; rate=$3; out=$4
key=${GLASSBOX_BENCH_KEY:-gbx_bench_0123456789abcdef}
load() {
  oha --no-tui -c 32 -z "$1" -q "$rate" --latency-correction -m POST -H 'content-type: application/json' \
    -H "Authorization: Bearer $key" -d '{"messages":"hello"}' "$url"
}
load 5s > /dev/null   # warm-up
perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$pid" -o "$out.perf.data" -- sleep 10 2> "$out.perf.err" &
sleep 0.2
load 11s > "$out.oha.txt"
wait
perf script --no-inline -i "$out.perf.data" 2>/dev/null | python3 "$here/collapse.py" > "$out.folded.full"
# The summary reads the full frame names (generic arguments carry the type names it looks for).
python3 "$here/summary.py" "$out.folded.full" --all-threads > "$out.summary.txt"
python3 "$here/shorten.py" < "$out.folded.full" \
  | awk '{ n = $NF; $NF = ""; sub(/ $/, ""); count[$0] += n } END { for (s in count) print s, count[s] }' | sort > "$out.folded"
rm -f "$out.perf.data" "$out.folded.full"
