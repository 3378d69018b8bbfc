#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first.
#
#   ./tests/run.sh              every test of the workspace (unit, integration, end-to-end, doc)
#   ./tests/run.sh --setup-only install what the tests need, run nothing
#
# What it needs and installs when missing: cargo-nextest, a Python venv with chDB (the
# ClickHouse fixture) and the Python clients of tests/python/ (the official `openai` SDK,
# `openapi-spec-validator`), Chromium and playwright-core (the dashboard's browser tests), and
# Debian's `prometheus` (promtool) and `docker-compose` (the compose file's validation),
# schemathesis (tests/schemathesis/), and cargo-fuzz (tests/fuzz.sh), so this stays the one
# command.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "tests/run.sh: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi
# oha: the load generator of the benchmark harness, whose smoke test is part of the suite.
if ! oha --version 2>/dev/null | grep -q '1\.16\.0'; then
  echo "tests/run.sh: installing oha" >&2
  cargo install oha --locked --version 1.16.0
fi

# The ClickHouse test fixture (tests/clickhouse/fixture.py, used by glassbox-testkit) runs
# the real ClickHouse engine through chDB in a Python venv. The venv is kept between runs at
# $GLASSBOX_VENV (default ~/.cache/glassbox/venv); pip runs only when the requirements
# changed (a stamp file holds their hash). `./tests/run.sh --setup-only` stops after this step.
GLASSBOX_VENV="${GLASSBOX_VENV:-$HOME/.cache/glassbox/venv}"
ch_requirements=tests/clickhouse/requirements.txt
ch_stamp="$GLASSBOX_VENV/.glassbox-requirements.sha256"
ch_hash="$(sha256sum "$ch_requirements" | cut -d' ' -f1)"
if [ ! -x "$GLASSBOX_VENV/bin/python" ] || ! "$GLASSBOX_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "tests/run.sh: creating the Python venv $GLASSBOX_VENV" >&2
  rm -rf "$GLASSBOX_VENV"
  mkdir -p "$(dirname "$GLASSBOX_VENV")"
  python3 -m venv "$GLASSBOX_VENV" || {
    echo "tests/run.sh: 'python3 -m venv' failed; on Debian: apt-get install -y python3-venv" >&2
    exit 1
  }
fi
if [ "$(cat "$ch_stamp" 2>/dev/null)" != "$ch_hash" ] \
  || ! "$GLASSBOX_VENV/bin/python" -c 'import chdb, lz4.block' >/dev/null 2>&1; then
  echo "tests/run.sh: installing $ch_requirements into $GLASSBOX_VENV (chDB is ~560 MB)" >&2
  rm -f "$ch_stamp"
  # --no-deps: chdb-core's session API needs none of its optional pandas/pyarrow.
  "$GLASSBOX_VENV/bin/python" -m pip install --disable-pip-version-check --no-input --no-deps \
    -r "$ch_requirements" >&2
  "$GLASSBOX_VENV/bin/python" -c 'import chdb, lz4.block'
  echo "$ch_hash" >"$ch_stamp"
else
  echo "tests/run.sh: using the Python venv $GLASSBOX_VENV (ClickHouse fixture up to date)" >&2
fi
# The Python clients the server tests drive (tests/python/): installed with their
# dependencies, again only when their requirements changed.
py_requirements=tests/python/requirements.txt
py_stamp="$GLASSBOX_VENV/.glassbox-clients.sha256"
py_hash="$(sha256sum "$py_requirements" | cut -d' ' -f1)"
if [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_hash" ] \
  || ! "$GLASSBOX_VENV/bin/python" -c 'import openai, openapi_spec_validator, yaml' >/dev/null 2>&1; then
  echo "tests/run.sh: installing $py_requirements into $GLASSBOX_VENV" >&2
  rm -f "$py_stamp"
  "$GLASSBOX_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -r "$py_requirements" >&2
  "$GLASSBOX_VENV/bin/python" -c 'import openai, openapi_spec_validator, yaml'
  echo "$py_hash" >"$py_stamp"
fi
# Schemathesis (tests/schemathesis/): property-based requests against the server's
# /openapi.json (crates/glassbox-server/tests/it/schemathesis.rs); same venv, own stamp.
st_requirements=tests/schemathesis/requirements.txt
st_stamp="$GLASSBOX_VENV/.glassbox-schemathesis.sha256"
st_hash="$(sha256sum "$st_requirements" | cut -d' ' -f1)"
if [ "$(cat "$st_stamp" 2>/dev/null)" != "$st_hash" ] \
  || ! "$GLASSBOX_VENV/bin/python" -c 'import schemathesis' >/dev/null 2>&1; then
  echo "tests/run.sh: installing $st_requirements into $GLASSBOX_VENV" >&2
  rm -f "$st_stamp"
  "$GLASSBOX_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -r "$st_requirements" >&2
  "$GLASSBOX_VENV/bin/python" -c 'import schemathesis'
  echo "$st_hash" >"$st_stamp"
fi
# The JUnit XML validator (tests/junit/: the `xmlschema` package and the JUnit schema) that
# the eval tests check `glassbox eval run --junit` output with; same venv.
if ! "$GLASSBOX_VENV/bin/python" -c 'import xmlschema' >/dev/null 2>&1; then
  echo "tests/run.sh: installing tests/junit/requirements.txt into $GLASSBOX_VENV" >&2
  "$GLASSBOX_VENV/bin/python" -m pip install --disable-pip-version-check --no-input --no-deps \
    -r tests/junit/requirements.txt >&2
  "$GLASSBOX_VENV/bin/python" -c 'import xmlschema'
fi
export GLASSBOX_PYTHON="$GLASSBOX_VENV/bin/python"

# The dashboard's browser tests (crates/glassbox-server/tests/it/dashboard/browser.rs) drive
# Debian's Chromium through playwright-core (tests/browser/package.json; no browser download).
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/run.sh: installing chromium" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "tests/run.sh: installing playwright-core into tests/browser" >&2
  npm ci --prefix tests/browser --no-audit --no-fund >&2
fi
# Debian packages: promtool checks /metrics and the Prometheus config; docker-compose
# validates docker-compose.yml (`config` needs no Docker engine).
missing_debs=()
command -v promtool >/dev/null 2>&1 || missing_debs+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing_debs+=(docker-compose)
if [ "${#missing_debs[@]}" -gt 0 ]; then
  echo "tests/run.sh: installing ${missing_debs[*]} (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >&2
fi
if [ "${1:-}" = "--setup-only" ]; then
  exit 0
fi

# Warnings are errors in CI: the workspace lints (no unwrap/expect/println on production
# paths) are part of the suite.
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --doc --locked
# The shipped eval suites, replayed from their recordings: no network, no API key.
cargo run --quiet --locked --bin glassbox -- eval run evals/ --no-store
# Bounded fuzzing (fuzz/, cargo-fuzz): every target for FUZZ_SECONDS (default 20) from its
# committed corpus; fails on any crash. Installs cargo-fuzz when missing.
./tests/fuzz.sh
