//! The store conformance suite: one set of scenarios, run against every backend.
//!
//! - `suite`: the scenarios, the seeded dataset, the reference answers and the
//!   `conformance_tests!` macro that turns them into tests for one backend.
//! - `sqlite`: the scenarios against SQLite (a temp file, and in memory), plus SQLite-only
//!   tests (migration locking and edits, reopening, concurrent use).
//! - `clickhouse`: the scenarios against ClickHouse.
//! - `keys`: the `KeyStore` scenarios (API keys, spend per tenant and key), on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod suite;
#[macro_use]
mod runs;

mod clickhouse;
mod keys;
mod evals;
mod sqlite;
