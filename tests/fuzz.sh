#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and runs each for a bounded time, starting from its
# committed corpus (fuzz/corpus/<target>/). Fails when any target finds a crash (a panic, a
# broken property, a timeout or an out-of-memory); the input that did it is kept under the
# scratch directory and its path is printed with the command that replays it.
#
#   ./tests/fuzz.sh                   every target, FUZZ_SECONDS (default 20) each
#   ./tests/fuzz.sh config            one target
#   FUZZ_SECONDS=600 ./tests/fuzz.sh  longer runs (new inputs stay in the scratch directory)
#
# Needs cargo-fuzz (installed when missing) and a nightly toolchain for libFuzzer's
# instrumentation; without `nightly`, the stable toolchain is used with RUSTC_BOOTSTRAP=1.
# The build goes to GLASSBOX_FUZZ_TARGET_DIR (default: $CARGO_TARGET_DIR/fuzz, else
# ~/.cache/glassbox/fuzz-target), outside the repository, so CI can keep it between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds="${FUZZ_SECONDS:-20}"
if [ -n "${GLASSBOX_FUZZ_TARGET_DIR:-}" ]; then
  target_dir="$GLASSBOX_FUZZ_TARGET_DIR"
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir="$CARGO_TARGET_DIR/fuzz"
else
  target_dir="$HOME/.cache/glassbox/fuzz-target"
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "tests/fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  cargo_cmd=(cargo +nightly)
else
  echo "tests/fuzz.sh: no nightly toolchain; building with stable and RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
  cargo_cmd=(cargo)
fi

# No AddressSanitizer: the workspace forbids unsafe code, so ASan would only slow the build
# and the runs; debug assertions (and with them overflow checks) stay on to catch more.
build_flags=(--sanitizer none --debug-assertions --target-dir "$target_dir")
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && "${cargo_cmd[@]}" fuzz list)
fi
build_started=$(date +%s)
if [ "$#" -gt 0 ]; then
  (cd fuzz && for target in "${targets[@]}"; do "${cargo_cmd[@]}" fuzz build "${build_flags[@]}" "$target"; done)
else
  (cd fuzz && "${cargo_cmd[@]}" fuzz build "${build_flags[@]}")
fi
echo "tests/fuzz.sh: built ${#targets[@]} targets in $(( $(date +%s) - build_started )) s" >&2

bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/glassbox-fuzz.XXXXXX")"
failed=()
for target in "${targets[@]}"; do
  seeds="fuzz/corpus/$target"
  if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
    echo "tests/fuzz.sh: $target has no seed corpus in $seeds" >&2
    failed+=("$target")
    continue
  fi
  mkdir -p "$scratch/$target/corpus" "$scratch/$target/artifacts"
  echo "tests/fuzz.sh: fuzzing $target for ${fuzz_seconds} s" >&2
  # New inputs go to the scratch corpus (the first directory); the committed seeds are only
  # read. -timeout: one input taking over 10 s is a finding too.
  if "$bin_dir/$target" "$scratch/$target/corpus" "$seeds" \
    -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$scratch/$target/artifacts/" >"$scratch/$target/log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$scratch/$target/log" \
      | sed "s/^/tests\/fuzz.sh: $target /" >&2 || true
  else
    tail -n 40 "$scratch/$target/log" >&2
    for artifact in "$scratch/$target/artifacts"/*; do
      [ -e "$artifact" ] || continue
      echo "tests/fuzz.sh: $target crashed on $artifact; replay: (cd fuzz && cargo +nightly fuzz run ${build_flags[*]} $target $artifact)" >&2
    done
    failed+=("$target")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "tests/fuzz.sh: FAILED: ${failed[*]} (logs and inputs in $scratch)" >&2
  exit 1
fi
rm -rf "$scratch"
echo "tests/fuzz.sh: ${#targets[@]} targets fuzzed for ${fuzz_seconds} s each, no crash" >&2
