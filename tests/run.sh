#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first.
#
#   ./tests/run.sh            every test of the workspace (unit, integration, end-to-end, doc)
#
# What it needs and installs when missing: cargo-nextest. Later suites add their own parts
# here (the ClickHouse fixture, Chromium), so this stays the one command.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "tests/run.sh: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

# Warnings are errors in CI: the workspace lints (no unwrap/expect/println on production
# paths) are part of the suite.
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
