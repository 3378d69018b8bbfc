//! Read-side types: filters, pages, and what the queries return.

/// A half-open time range `[from_ns, to_ns)`, nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ns: i64,
    pub to_ns: i64,
}

/// Filters of the traces table; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFilter {
    pub range: Option<TimeRange>,
    /// The root agent or workflow name (`gen_ai.agent.name` / workflow id).
    pub agent: Option<String>,
    /// Only traces with (`true`) or without (`false`) an error span.
    pub has_error: Option<bool>,
    pub tenant: Option<String>,
    pub model: Option<String>,
    /// Only traces with a span made under this API key (`glassbox.api_key_id`, the key's
    /// public id such as `key_1a2b3c4d5e6f`).
    pub api_key_id: Option<String>,
    pub min_duration_ns: Option<u64>,
    pub min_cost_nano_usd: Option<i64>,
    pub trace_id: Option<String>,
}

/// Where a page starts: after the trace with this start time and id (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub start_ns: i64,
    pub trace_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    /// At most 1000.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow.
    pub next: Option<Cursor>,
}

/// One row of the traces table.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub root_span_name: String,
    pub agent: String,
    pub tenant: String,
    pub has_error: bool,
    pub span_count: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano_usd: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageBy {
    Agent,
    Model,
    Tenant,
    /// UTC calendar day; the group key is `YYYY-MM-DD`.
    Day,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageGroup {
    pub key: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost_nano_usd: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyBy {
    Agent,
    Model,
}

/// Latency percentiles of the model calls (usage rows, failed calls included) of one group
/// in one time bucket. Every backend computes them identically:
/// - the p-quantile of the n latencies sorted ascending is the value at index
///   `min(n - 1, floor(p * n))`, with `p * n` computed in `f64` (ClickHouse's `quantileExact`;
///   no interpolation), then converted from nanoseconds to milliseconds (`ns as f64 / 1e6`);
/// - `bucket_start_ns = floor(timestamp_ns / bucket_ns) * bucket_ns` (floored, also before
///   1970), with `bucket_ns = bucket_secs * 1_000_000_000` and the call's start time;
/// - rows are ordered by key, then bucket start.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyRow {
    pub key: String,
    /// Start of the bucket, nanoseconds since the Unix epoch.
    pub bucket_start_ns: i64,
    pub calls: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// The API requests served in a range and the model calls made in it, per time bucket and in
/// total (the dashboard's overview). Every backend computes it identically:
/// - a *request* is a span of kind `Server` carrying [`REQUEST_ATTRIBUTE`] (the server's
///   request span of every API call: health checks, metrics and OpenAPI reads are not
///   requests); it belongs to the bucket of its start (`Timestamp`), its latency is its
///   `Duration`, it failed when its status is `Error` (the server answered 5xx), it was
///   refused when its `http.response.status_code` is 402 (budget) or 429 (rate limit), and
///   its tenant is its `glassbox.tenant` attribute (absent: the empty tenant);
/// - a *guardrail block* is a span carrying a non-empty `glassbox.tripwire.processor` (an
///   agent run ended by a guardrail), counted in the bucket of its start with its
///   `glassbox.tenant`;
/// - tokens and cost are the usage rows' (`UsageRow`), in the bucket of the call's start, of
///   the tenant's rows when a tenant is asked: what was spent in the range;
/// - `bucket_start_ns = floor(time / bucket_ns) * bucket_ns`; only buckets with a request, a
///   block or a usage row are returned, ordered by start;
/// - the latency percentiles are over every request of the range with `LatencyRow`'s rule
///   (`quantileExact`, no interpolation), in milliseconds.
///
/// Each figure depends on one row, never on a whole trace, so late spans and traces split
/// over batches need nothing and ClickHouse keeps it as a rollup per minute (`requests_minutely`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestStats {
    pub requests: u64,
    pub errors: u64,
    pub refused: u64,
    pub blocked: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano_usd: i64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub buckets: Vec<RequestBucket>,
}

/// The attribute that marks a `Server` span as an API request (see [`RequestStats`]); the
/// server's access check sets it to `true` on every API call, before the key is checked.
pub const REQUEST_ATTRIBUTE: &str = "glassbox.request";

/// One time bucket of [`RequestStats`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestBucket {
    pub bucket_start_ns: i64,
    pub requests: u64,
    pub errors: u64,
    pub refused: u64,
    pub blocked: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano_usd: i64,
}
