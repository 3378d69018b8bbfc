//! The traits every store backend implements: writing rows (idempotently, keyed by a
//! deduplication token), applying migrations, and the read queries.

use std::sync::Arc;

use async_trait::async_trait;

use crate::query::{LatencyBy, LatencyRow, Page, PageRequest, TimeRange, RequestStats, TraceFilter, TraceSummary, UsageBy, UsageGroup};
use crate::rows::{SpanRow, UsageRow};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or timed out: worth retrying, then spooling.
    #[error("store unavailable")]
    Unavailable {
        #[source]
        source: BoxError,
    },
    /// The database answered with an error (bad SQL, schema mismatch): retrying won't help.
    #[error("store rejected the request: {message}")]
    Rejected {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("migration {version} ({name}) was edited after it was applied: checksum {applied} in the database, {current} in this binary")]
    MigrationEdited { version: u32, name: String, applied: String, current: String },
    #[error("migration {version} ({name}) failed")]
    MigrationFailed {
        version: u32,
        name: String,
        #[source]
        source: BoxError,
    },
    #[error("spool I/O failed at {path}")]
    Spool {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid query: {message}")]
    InvalidQuery { message: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order.
    pub applied: Vec<u32>,
    /// Versions found already applied (with a matching checksum).
    pub already_applied: Vec<u32>,
}

/// The write side of a store backend.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `clickhouse` or `sqlite`.
    fn name(&self) -> &'static str;
    /// The rows per insert that suit this store, which a `TelemetryWriter` uses unless its
    /// `WriterConfig::batch_rows` (the server's `store.batch_rows`) is set. 1,000 unless the
    /// backend says otherwise: ClickHouse makes a part of every insert, so fewer and larger ones.
    fn batch_rows(&self) -> usize {
        1000
    }
    /// Applies the embedded migrations in order; safe when two servers run it at once.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;
    /// Inserts a batch. Calling it again with the same `dedup_token` and rows writes nothing
    /// twice.
    async fn insert_spans(&self, rows: &[SpanRow], dedup_token: &str) -> Result<(), StoreError>;
    async fn insert_usage(&self, rows: &[UsageRow], dedup_token: &str) -> Result<(), StoreError>;
    /// [`Backend::insert_spans`] for a batch the writer keeps for its retries and the spool: a
    /// backend that works on another thread (SQLite's blocking pool) takes the `Arc` instead
    /// of copying every row.
    async fn insert_spans_shared(&self, rows: Arc<Vec<SpanRow>>, dedup_token: &str) -> Result<(), StoreError> {
        self.insert_spans(&rows, dedup_token).await
    }
    /// [`Backend::insert_usage`] for a shared batch, as [`Backend::insert_spans_shared`].
    async fn insert_usage_shared(&self, rows: Arc<Vec<UsageRow>>, dedup_token: &str) -> Result<(), StoreError> {
        self.insert_usage(&rows, dedup_token).await
    }
    /// A cheap round trip, for readiness and for deciding when to replay the spool.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The read queries of the dashboard and budgets; every backend answers them identically.
#[async_trait]
pub trait TraceReader: Send + Sync + 'static {
    /// Traces newest first, filtered, one page at a time.
    async fn list_traces(&self, filter: &TraceFilter, page: &PageRequest) -> Result<Page<TraceSummary>, StoreError>;
    /// Every span of one trace, ordered by start time.
    async fn trace_spans(&self, trace_id: &str) -> Result<Vec<SpanRow>, StoreError>;
    /// Every usage row of one trace, ordered by time.
    async fn trace_usage(&self, trace_id: &str) -> Result<Vec<UsageRow>, StoreError>;
    /// Usage and cost summed per group over `range`, largest cost first.
    async fn usage_by(&self, by: UsageBy, range: &TimeRange) -> Result<Vec<UsageGroup>, StoreError> {
        self.usage_by_tenant(by, range, None).await
    }
    /// Latency percentiles of model calls per group and time bucket.
    async fn latency(&self, by: LatencyBy, range: &TimeRange, bucket_secs: u32) -> Result<Vec<LatencyRow>, StoreError> {
        self.latency_of_tenant(by, range, bucket_secs, None).await
    }
    /// API requests served in `range` (counts, errors, refusals, guardrail blocks, latency
    /// percentiles) and the tokens and cost of its model calls, in total and per bucket of
    /// `bucket_secs` (see [`RequestStats`]). A bucket of 0 is `InvalidQuery`.
    async fn request_stats(&self, range: &TimeRange, bucket_secs: u32) -> Result<RequestStats, StoreError> {
        self.request_stats_of_tenant(range, bucket_secs, None).await
    }
    /// [`usage_by`](Self::usage_by) over the usage rows of one tenant only (`UsageRow::tenant`),
    /// or of every tenant with `None`.
    async fn usage_by_tenant(
        &self,
        by: UsageBy,
        range: &TimeRange,
        tenant: Option<&str>,
    ) -> Result<Vec<UsageGroup>, StoreError>;
    /// [`latency`](Self::latency) over the usage rows of one tenant only, or of every tenant.
    async fn latency_of_tenant(
        &self,
        by: LatencyBy,
        range: &TimeRange,
        bucket_secs: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<LatencyRow>, StoreError>;
    /// [`request_stats`](Self::request_stats) over one tenant's requests, blocks and usage
    /// rows only, or of every tenant.
    async fn request_stats_of_tenant(
        &self,
        range: &TimeRange,
        bucket_secs: u32,
        tenant: Option<&str>,
    ) -> Result<RequestStats, StoreError>;
}
