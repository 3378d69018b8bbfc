//! The telemetry store: what a request leaves behind (spans and usage rows), how it gets to
//! the database without being lost, and the read queries the dashboard and budgets use.
//!
//! One trait family, two backends: ClickHouse (production) and SQLite (the embedded default).
//! The [`writer`] batches rows by size and time, retries with backoff, and spills batches to
//! an append-only on-disk [`spool`] when the database is down or slow; spooled batches are
//! replayed on recovery and on the next start, with the same deduplication token, so a retry
//! never doubles a row.

pub mod backend;
pub mod clickhouse;
pub mod keys;
pub mod evals;
mod json_out;
pub mod migrate;
pub mod pricing;
pub mod query;
pub mod rows;
pub mod runs;
pub mod spool;
pub mod sqlite;
pub mod writer;

pub use keys::{KeyStore, KeyUsage, StoredKey};
pub use backend::{Backend, MigrationReport, StoreError, TraceReader};
pub use evals::{EvalCaseRow, EvalResultRow, EvalRunRow, EvalScoreRow, EvalScorerTally, EvalStore, OnlineScoreSummary};
pub use query::{
    LatencyBy, LatencyRow, Page, PageRequest, REQUEST_ATTRIBUTE, RequestBucket, RequestStats, TimeRange, TraceFilter,
    TraceSummary, UsageBy, UsageGroup,
};
pub use rows::{AttributeKey, AttributeText, Attributes, SpanEvent, SpanLink, SpanRow, StatusCode, UsageRow};
pub use runs::{RunFilter, RunRecord, RunStore, RunTrace};
