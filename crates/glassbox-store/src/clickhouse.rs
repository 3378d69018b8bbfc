//! The production store: ClickHouse over HTTP through the `clickhouse` crate.
//!
//! Tables (numbered files in `migrations/clickhouse/`, embedded in [`MIGRATIONS`]):
//! - `spans`: the OpenTelemetry Collector ClickHouse exporter's `otel_traces` layout, so
//!   Grafana's trace view and spans from a Collector share it;
//! - `usage`: one row per model call, cost as `Decimal(18, 9)`;
//! - `trace_index`: an AggregatingMergeTree filled from `spans` by a materialized view, one
//!   (merged) row per trace for the traces list;
//! - `usage_daily` (SummingMergeTree) and `latency_minute` (AggregatingMergeTree with
//!   `quantilesState`): dashboard rollups filled from `usage` by materialized views;
//! - `usage_hourly` (SummingMergeTree) and `latency_hourly` (AggregatingMergeTree with exact
//!   `quantilesExact` states): the hourly rollups `usage_by` and `latency` read for the whole
//!   hours of a range (migrations 8 and 9);
//! - `api_keys`: keys made by `glassbox keys create` (their SHA-256, never the key);
//! - `glassbox_migrations`: what has been applied, with checksums.
//!
//! Idempotent writes: every insert carries `insert_deduplication_token`, and every table has
//! `non_replicated_deduplication_window` (Replicated tables deduplicate natively), so a batch
//! retried with the same token is written once; the materialized views skip a deduplicated
//! block too, so the index and rollups never count it twice.
//!
//! Reads finish every aggregation at query time (`GROUP BY` with `-Merge` combinators), so
//! they are right whether or not the background merges have run. Filters go in as bound
//! values (`Query::bind`), never spliced into the SQL text.

mod error;
mod keys;
mod evals;
mod migrations;
mod read;
mod rows;
mod runs;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clickhouse::Client;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::backend::{Backend, MigrationReport, StoreError, TraceReader};
use crate::query::{
    LatencyBy, LatencyRow, Page, PageRequest, TimeRange, RequestStats, TraceFilter, TraceSummary, UsageBy, UsageGroup,
};
use crate::rows::{SpanRow, UsageRow};
use crate::runs::{RunFilter, RunRecord, RunStore, RunTrace, check_run_ids};

pub use migrations::{MIGRATIONS, MIGRATIONS_TABLE_SQL, render_sql};

use error::{Operation, from_clickhouse, timed_out};

/// Longest span retention [`ClickHouseSettings::span_ttl_days`] accepts: `toDateTime` (used by
/// the exporter's TTL expression) ends in 2106.
pub const MAX_SPAN_TTL_DAYS: u32 = 20_000;

/// The tables Glassbox reads and writes; the only table names that reach SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Spans,
    Usage,
    TraceIndex,
    UsageDaily,
    LatencyMinute,
    Migrations,
    WorkflowRuns,
    ApiKeys,
    EvalRuns,
    EvalResults,
    EvalScores,
    EvalCases,
}

impl Table {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::Usage => "usage",
            Self::TraceIndex => "trace_index",
            Self::UsageDaily => "usage_daily",
            Self::LatencyMinute => "latency_minute",
            Self::Migrations => "glassbox_migrations",
            Self::WorkflowRuns => "workflow_runs",
            Self::ApiKeys => "api_keys",
            Self::EvalRuns => "eval_runs",
            Self::EvalResults => "eval_results",
            Self::EvalScores => "eval_scores",
            Self::EvalCases => "eval_cases",
        }
    }
}

/// Where and how to reach ClickHouse.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseSettings {
    /// The HTTP interface, `http://host:8123` or `https://host:8443`.
    pub url: String,
    /// Created by [`Backend::migrate`] when missing. Letters, digits and `_` only.
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// When set, DDL runs `ON CLUSTER '<cluster>'` with `Replicated*` engines (one shard,
    /// any number of replicas; the server's `{shard}` and `{replica}` macros must be defined).
    pub cluster: Option<String>,
    /// Retention of `spans` and `trace_index`, in days (default 30). Applied when the tables
    /// are created; changing it later needs an `ALTER TABLE ... MODIFY TTL`.
    pub span_ttl_days: u32,
    /// Upper bound on one round trip (a query, or one insert from start to end).
    pub request_timeout: Duration,
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        Self {
            url: "http://localhost:8123".to_owned(),
            database: "glassbox".to_owned(),
            user: None,
            password: None,
            cluster: None,
            span_ttl_days: 30,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for ClickHouseSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClickHouseSettings")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("cluster", &self.cluster)
            .field("span_ttl_days", &self.span_ttl_days)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl ClickHouseSettings {
    fn validate(&self) -> Result<(), StoreError> {
        let invalid = |message: String| Err(StoreError::InvalidQuery { message });
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return invalid(format!("ClickHouse url {:?} must start with http:// or https://", self.url));
        }
        if !is_identifier(&self.database) {
            return invalid(format!(
                "ClickHouse database {:?} must be letters, digits and _ (not starting with a digit)",
                self.database
            ));
        }
        if let Some(cluster) = &self.cluster {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
            if cluster.is_empty() || !cluster.chars().all(allowed) {
                return invalid(format!("ClickHouse cluster {cluster:?} must be letters, digits, _, - and ."));
            }
        }
        if self.span_ttl_days == 0 || self.span_ttl_days > MAX_SPAN_TTL_DAYS {
            return invalid(format!(
                "span_ttl_days must be between 1 and {MAX_SPAN_TTL_DAYS}, not {}",
                self.span_ttl_days
            ));
        }
        if self.request_timeout.is_zero() {
            return invalid("the ClickHouse request timeout must not be zero".to_owned());
        }
        Ok(())
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The ClickHouse backend. Cheap to clone: clones share the HTTP connection pool.
#[derive(Clone)]
pub struct ClickHouseBackend {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClickHouseSettings,
    /// Requests in `settings.database`.
    client: Client,
    /// Requests without a current database: `CREATE DATABASE`, `ping`.
    server: Client,
}

impl fmt::Debug for ClickHouseBackend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("ClickHouseBackend").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl ClickHouseBackend {
    /// Checks the settings and sets up the HTTP client; connects lazily, so this succeeds
    /// with the server down. Call [`Backend::migrate`] before writing.
    pub fn new(settings: ClickHouseSettings) -> Result<Self, StoreError> {
        settings.validate()?;
        let base = if settings.url.starts_with("https://") {
            // The crate's own client: rustls with the webpki roots.
            Client::default()
        } else {
            let mut connector = HttpConnector::new();
            // Small requests otherwise wait out Nagle + delayed ACK (~40 ms each).
            connector.set_nodelay(true);
            connector.set_keepalive(Some(Duration::from_secs(60)));
            connector.set_connect_timeout(Some(settings.request_timeout));
            let http = HyperClient::builder(TokioExecutor::new())
                // Below ClickHouse's keep-alive timeout (3 s before 23.11, 10 s after).
                .pool_idle_timeout(Duration::from_secs(2))
                .build(connector);
            Client::with_http_client(http)
        };
        let mut base = base.with_url(settings.url.clone());
        if let Some(user) = &settings.user {
            base = base.with_user(user.clone());
        }
        if let Some(password) = &settings.password {
            base = base.with_password(password.clone());
        }
        let client = base.clone().with_database(settings.database.clone());
        Ok(Self { inner: Arc::new(Inner { settings, client, server: base }) })
    }

    pub fn settings(&self) -> &ClickHouseSettings {
        &self.inner.settings
    }

    /// Runs `work` under the request timeout; a timeout is [`StoreError::Unavailable`].
    async fn timed<T, F>(&self, operation: Operation, work: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, clickhouse::error::Error>>,
    {
        let limit = self.inner.settings.request_timeout;
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result.map_err(|source| from_clickhouse(operation, source)),
            Err(_) => Err(timed_out(operation, limit)),
        }
    }
}

#[async_trait]
impl Backend for ClickHouseBackend {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        migrations::migrate(self).await
    }

    async fn insert_spans(&self, rows: &[SpanRow], dedup_token: &str) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let limit = self.inner.settings.request_timeout;
        self.timed(Operation::InsertSpans, async {
            let mut insert = self
                .inner
                .client
                .insert::<rows::SpanInsert<'_>>(Table::Spans.name())
                .await?
                .with_setting("insert_deduplication_token", dedup_token)
                .with_timeouts(Some(limit), Some(limit));
            for row in rows {
                insert.write(&rows::SpanInsert::from_row(row)).await?;
            }
            insert.end().await
        })
        .await
    }

    async fn insert_usage(&self, rows: &[UsageRow], dedup_token: &str) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let limit = self.inner.settings.request_timeout;
        self.timed(Operation::InsertUsage, async {
            let mut insert = self
                .inner
                .client
                .insert::<rows::UsageInsert<'_>>(Table::Usage.name())
                .await?
                .with_setting("insert_deduplication_token", dedup_token)
                .with_timeouts(Some(limit), Some(limit));
            for row in rows {
                insert.write(&rows::UsageInsert::from_row(row)).await?;
            }
            insert.end().await
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(Operation::Ping, self.inner.server.query("SELECT 1").fetch_one::<u8>()).await.map(drop)
    }
}

#[async_trait]
impl TraceReader for ClickHouseBackend {
    async fn list_traces(&self, filter: &TraceFilter, page: &PageRequest) -> Result<Page<TraceSummary>, StoreError> {
        read::list_traces(self, filter, page).await
    }

    async fn trace_spans(&self, trace_id: &str) -> Result<Vec<SpanRow>, StoreError> {
        read::trace_spans(self, trace_id).await
    }

    async fn trace_usage(&self, trace_id: &str) -> Result<Vec<UsageRow>, StoreError> {
        read::trace_usage(self, trace_id).await
    }

    async fn usage_by_tenant(
        &self,
        by: UsageBy,
        range: &TimeRange,
        tenant: Option<&str>,
    ) -> Result<Vec<UsageGroup>, StoreError> {
        read::usage_by(self, by, range, tenant).await
    }

    async fn latency_of_tenant(
        &self,
        by: LatencyBy,
        range: &TimeRange,
        bucket_secs: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<LatencyRow>, StoreError> {
        read::latency(self, by, range, bucket_secs, tenant).await
    }

    async fn request_stats_of_tenant(
        &self,
        range: &TimeRange,
        bucket_secs: u32,
        tenant: Option<&str>,
    ) -> Result<RequestStats, StoreError> {
        read::request_stats(self, range, bucket_secs, tenant).await
    }
}

#[async_trait]
impl RunStore for ClickHouseBackend {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        runs::save(self, run).await
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        runs::get(self, run_id).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        filter.check()?;
        runs::list(self, filter).await
    }

    async fn run_traces(&self, run_ids: &[String], since_ns: i64) -> Result<Vec<RunTrace>, StoreError> {
        check_run_ids(run_ids)?;
        runs::traces(self, run_ids, since_ns).await
    }
}
