//! The read queries. Every aggregate is finished here (`GROUP BY` with `-Merge` combinators
//! or plain sums), so the answers do not depend on whether background merges have run.
//!
//! Listing traces in a time range: `trace_index` is ordered by `TraceId` and partitioned by
//! day of `Start`, and one trace may still have several partial rows (one per insert until
//! merges combine them, possibly in different day partitions). So the query first picks the
//! ids of partial rows whose `Start` is in the range (partition pruning), then aggregates
//! every partial row of those ids (primary-key lookups) and filters the finished rows. That
//! is exact: the partial row holding a trace's earliest start satisfies every condition on
//! the trace's start, so no trace is missed, and the final `HAVING` drops the extras.

use clickhouse::Row;
use serde::Deserialize;

use crate::backend::StoreError;
use crate::query::{
    Cursor, LatencyBy, LatencyRow, Page, PageRequest, RequestBucket, RequestStats, TimeRange, TraceFilter, TraceSummary,
    UsageBy, UsageGroup,
};
use crate::rows::{SpanRow, UsageRow};

use super::ClickHouseBackend;
use super::error::Operation;
use super::rows::{SpanFetch, UsageFetch};
use super::sql::{Sql, Value};

/// The largest page `list_traces` serves.
pub(super) const MAX_PAGE_SIZE: u32 = 1000;


#[derive(Row, Deserialize)]
struct TraceSummaryFetch {
    trace_id: String,
    start_ns: i64,
    end_ns: i64,
    root_span_name: String,
    agent: String,
    tenant: String,
    has_error: bool,
    span_count: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_nano_usd: i64,
}

impl TraceSummaryFetch {
    fn into_summary(self) -> TraceSummary {
        TraceSummary {
            trace_id: self.trace_id,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            root_span_name: self.root_span_name,
            agent: self.agent,
            tenant: self.tenant,
            has_error: self.has_error,
            span_count: self.span_count,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_nano_usd: self.cost_nano_usd,
        }
    }
}

const LIST_TRACES_SELECT: &str = "SELECT
    TraceId AS trace_id,
    toUnixTimestamp64Nano(min(Start)) AS start_ns,
    toUnixTimestamp64Nano(max(End)) AS end_ns,
    argMinMerge(RootSpanName) AS root_span_name,
    argMinMerge(Agent) AS agent,
    argMinMerge(Tenant) AS tenant,
    max(HasError) AS has_error,
    sum(SpanCount) AS span_count,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostNanoUsd) AS cost_nano_usd
FROM trace_index
WHERE 1";

/// The first time window `list_traces` tries, counted back from the end of the range.
const FIRST_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;
/// How much wider each next window is.
const WINDOW_GROWTH: i64 = 8;
/// Wider windows than this are the whole range.
const MAX_WINDOW_NS: i64 = 366 * 86_400 * 1_000_000_000;

/// Newest first, so with a time range the newest page usually lies in a short window at its
/// end: the query runs on windows `[end - w, to)` of growing width `w` (15 min, 2 h, 16 h,
/// ..., at most 7 queries) and stops at the first that fills the page plus one, or that
/// reaches the range's start. Exact: a trace outside a window starts before every trace
/// inside it. On dense data this reads minutes instead of the whole range; on sparse filters
/// it costs at most ~15% more than one query over the whole range.
pub(super) async fn list_traces(
    backend: &ClickHouseBackend,
    filter: &TraceFilter,
    page: &PageRequest,
) -> Result<Page<TraceSummary>, StoreError> {
    let Some(range) = filter.range else {
        return list_traces_once(backend, filter, page).await;
    };
    let end = match &page.after {
        Some(after) => range.to_ns.min(after.start_ns.saturating_add(1)),
        None => range.to_ns,
    };
    let mut width = FIRST_WINDOW_NS;
    loop {
        // Past a year the window is the whole range (also ends the loop for huge ranges).
        let from_ns =
            if width > MAX_WINDOW_NS { range.from_ns } else { end.saturating_sub(width).max(range.from_ns) };
        let window = TraceFilter { range: Some(TimeRange { from_ns, to_ns: range.to_ns }), ..filter.clone() };
        let found = list_traces_once(backend, &window, page).await?;
        if from_ns <= range.from_ns || found.next.is_some() {
            return Ok(found);
        }
        width = width.saturating_mul(WINDOW_GROWTH);
    }
}

/// The API key filter, a condition on `trace_index`'s rows (`WHERE`, so the primary key serves
/// it): the traces `trace_api_keys` (migration 12) has for the key. A key's rows of a trace
/// start no earlier than the trace, so those before the range are skipped: a superset of the
/// traces that start in it, which the range condition then keeps.
fn push_api_key(sql: &mut Sql, filter: &TraceFilter) {
    let Some(api_key_id) = &filter.api_key_id else { return };
    sql.bind(" AND TraceId IN (SELECT TraceId FROM trace_api_keys WHERE ApiKeyId = ?", [api_key_id.as_str().into()]);
    if let Some(range) = &filter.range {
        sql.bind(" AND Start >= fromUnixTimestamp64Nano(toInt64(?))", [range.from_ns.into()]);
    }
    sql.push(")");
}

/// `GROUP BY TraceId HAVING` the filters, over the finished per-trace columns (`start_ns`,
/// `end_ns`, `agent`, `tenant`, `has_error`, `cost_nano_usd`, `trace_id`).
fn push_having(sql: &mut Sql, filter: &TraceFilter, page: &PageRequest) {
    sql.push(" GROUP BY TraceId HAVING 1");
    if let Some(range) = &filter.range {
        sql.bind(" AND start_ns >= ? AND start_ns < ?", [range.from_ns.into(), range.to_ns.into()]);
    }
    if let Some(agent) = &filter.agent {
        sql.bind(" AND agent = ?", [agent.as_str().into()]);
    }
    if let Some(has_error) = filter.has_error {
        sql.bind(" AND has_error = ?", [Value::U64(u64::from(has_error))]);
    }
    if let Some(tenant) = &filter.tenant {
        sql.bind(" AND tenant = ?", [tenant.as_str().into()]);
    }
    if let Some(model) = &filter.model {
        sql.bind(" AND has(groupUniqArrayArray(Models), ?)", [model.as_str().into()]);
    }
    if let Some(min_duration) = filter.min_duration_ns {
        sql.bind(" AND end_ns - start_ns >= ?", [min_duration.into()]);
    }
    if let Some(min_cost) = filter.min_cost_nano_usd {
        sql.bind(" AND cost_nano_usd >= ?", [min_cost.into()]);
    }
    if let Some(after) = &page.after {
        sql.bind(
            " AND (start_ns < ? OR (start_ns = ? AND trace_id < ?))",
            [after.start_ns.into(), after.start_ns.into(), after.trace_id.as_str().into()],
        );
    }
}

/// Phase one of a page: which traces, from the cheap columns only (the `argMin` states of the
/// agent, tenant and model set are merged only when a filter needs them).
#[derive(Row, Deserialize)]
struct TracePick {
    trace_id: String,
    start_ns: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Partial rows that start in the range only; needs the caller's check of true starts.
    Quick,
    /// Candidates from the range, then every partial row of each.
    Exact,
}

/// Phase one: the ids (and starts) of the page's traces, newest first, one more than `limit`.
async fn pick(
    backend: &ClickHouseBackend,
    filter: &TraceFilter,
    page: &PageRequest,
    limit: u32,
    how: Pick,
) -> Result<Vec<TracePick>, StoreError> {
    let mut sql = Sql::new(
        "SELECT trace_id, start_ns FROM (SELECT TraceId AS trace_id, toUnixTimestamp64Nano(min(Start)) AS start_ns,
    toUnixTimestamp64Nano(max(End)) AS end_ns, max(HasError) AS has_error, sum(CostNanoUsd) AS cost_nano_usd",
    );
    if filter.agent.is_some() {
        sql.push(", argMinMerge(Agent) AS agent");
    }
    if filter.tenant.is_some() {
        sql.push(", argMinMerge(Tenant) AS tenant");
    }
    sql.push(" FROM trace_index WHERE 1");
    match (how, &filter.range) {
        (Pick::Quick, Some(range)) => {
            sql.bind(" AND Start >= fromUnixTimestamp64Nano(toInt64(?))", [range.from_ns.into()]);
        }
        _ if filter.range.is_some() || page.after.is_some() => {
            // Candidates: a partial row whose Start meets every condition on the trace's start.
            sql.push(" AND TraceId IN (SELECT TraceId FROM trace_index WHERE 1");
            if let Some(range) = &filter.range {
                sql.bind(
                    " AND Start >= fromUnixTimestamp64Nano(toInt64(?)) AND Start < fromUnixTimestamp64Nano(toInt64(?))",
                    [range.from_ns.into(), range.to_ns.into()],
                );
            }
            if let Some(after) = &page.after {
                sql.bind(" AND Start <= fromUnixTimestamp64Nano(toInt64(?))", [after.start_ns.into()]);
            }
            sql.push(")");
        }
        _ => {}
    }
    push_api_key(&mut sql, filter);
    push_having(&mut sql, filter, page);
    // One more than asked: whether another page follows.
    sql.bind(" ORDER BY start_ns DESC, trace_id DESC LIMIT ?", [u64::from(limit + 1).into()]);
    sql.push(") ORDER BY start_ns DESC, trace_id DESC");
    backend.timed(Operation::ListTraces, sql.query(&backend.inner.client).fetch_all::<TracePick>()).await
}

async fn list_traces_once(
    backend: &ClickHouseBackend,
    filter: &TraceFilter,
    page: &PageRequest,
) -> Result<Page<TraceSummary>, StoreError> {
    if page.limit == 0 {
        return Err(StoreError::InvalidQuery { message: "a page of traces needs a limit of at least 1".into() });
    }
    // Larger pages are served as pages of MAX_PAGE_SIZE.
    let limit = page.limit.min(MAX_PAGE_SIZE);
    let client = &backend.inner.client;
    if let Some(trace_id) = &filter.trace_id {
        // One trace: its partial rows are a primary-key lookup, so one query finishes it.
        let mut sql = Sql::new(LIST_TRACES_SELECT);
        sql.bind(" AND TraceId = ?", [trace_id.as_str().into()]);
        push_api_key(&mut sql, filter);
        push_having(&mut sql, filter, page);
        sql.bind(" ORDER BY start_ns DESC, trace_id DESC LIMIT ?", [u64::from(limit + 1).into()]);
        let fetched = backend.timed(Operation::ListTraces, sql.query(client).fetch_all::<TraceSummaryFetch>());
        let mut items: Vec<TraceSummary> = fetched.await?.into_iter().map(TraceSummaryFetch::into_summary).collect();
        let next = (items.len() > limit as usize).then(|| {
            items.truncate(limit as usize);
            items.last().map(|last| Cursor { start_ns: last.start_ns, trace_id: last.trace_id.clone() })
        });
        return Ok(Page { items, next: next.flatten() });
    }
    // Two phases: pick the page's ids with the filters, from cheap per-trace aggregates; then
    // finish every column (root span name, agent, tenant: `argMin` states, the costly part)
    // for those ids only.
    //
    // The quick pick reads only partial rows that start in the range (partition pruning):
    // every partial row of a trace that starts in the range does, so those traces are finished
    // exactly. A trace that started before the range but has a later partial row in it would
    // be picked with a wrong start; the picked ids' true starts are then checked (a cheap
    // query on two columns), and on any difference the page is picked again the exact way
    // (candidates from the range, then every partial row of each).
    let mut picked = pick(backend, filter, page, limit, Pick::Quick).await?;
    if filter.range.is_some() && !picked.is_empty() {
        let ids: Vec<String> = picked.iter().map(|pick| pick.trace_id.clone()).collect();
        let mut sql = Sql::new(
            "SELECT TraceId AS trace_id, toUnixTimestamp64Nano(min(Start)) AS start_ns FROM trace_index",
        );
        sql.bind(" WHERE TraceId IN ? GROUP BY TraceId", [Value::StrList(ids)]);
        let starts = backend.timed(Operation::ListTraces, sql.query(client).fetch_all::<TracePick>()).await?;
        let starts: std::collections::HashMap<String, i64> =
            starts.into_iter().map(|pick| (pick.trace_id, pick.start_ns)).collect();
        if picked.iter().any(|pick| starts.get(&pick.trace_id) != Some(&pick.start_ns)) {
            picked = pick(backend, filter, page, limit, Pick::Exact).await?;
        }
    }
    if picked.is_empty() {
        return Ok(Page { items: Vec::new(), next: None });
    }

    let ids: Vec<String> = picked.iter().map(|pick| pick.trace_id.clone()).collect();
    // Every partial row of a trace starts at or after the trace: older partitions are skipped.
    let earliest = picked.iter().map(|pick| pick.start_ns).min().unwrap_or(i64::MIN);
    let mut sql = Sql::new(LIST_TRACES_SELECT);
    sql.bind(
        " AND TraceId IN ? AND Start >= fromUnixTimestamp64Nano(toInt64(?))",
        [Value::StrList(ids), earliest.into()],
    );
    sql.push(" GROUP BY TraceId");
    let fetched = backend.timed(Operation::ListTraces, sql.query(client).fetch_all::<TraceSummaryFetch>()).await?;
    let mut by_id: std::collections::HashMap<String, TraceSummary> =
        fetched.into_iter().map(|row| (row.trace_id.clone(), row.into_summary())).collect();
    // Phase one's order; a trace is missing only if it vanished in between (TTL).
    let mut items: Vec<TraceSummary> = picked.iter().filter_map(|pick| by_id.remove(&pick.trace_id)).collect();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = if picked.len() > limit {
        items.truncate(limit);
        picked.get(limit - 1).map(|last| Cursor { start_ns: last.start_ns, trace_id: last.trace_id.clone() })
    } else {
        None
    };
    Ok(Page { items, next })
}

const TRACE_BOUNDS_SQL: &str = "SELECT count(), toUnixTimestamp64Nano(min(Start)), toUnixTimestamp64Nano(max(End))
FROM trace_index
WHERE TraceId = ?";

/// `idx_trace_id` (bloom filter) skips granules without the trace; the time bounds from the
/// index prune whole day partitions first.
const TRACE_SPANS_SQL: &str = "SELECT ?fields FROM spans
WHERE TraceId = ?
    AND Timestamp >= fromUnixTimestamp64Nano(toInt64(?))
    AND Timestamp <= fromUnixTimestamp64Nano(toInt64(?))
ORDER BY Timestamp, SpanId";

pub(super) async fn trace_spans(backend: &ClickHouseBackend, trace_id: &str) -> Result<Vec<SpanRow>, StoreError> {
    let client = &backend.inner.client;
    let bounds = client.query(TRACE_BOUNDS_SQL).bind(trace_id).fetch_one::<(u64, i64, i64)>();
    let (partial_rows, start_ns, end_ns) = backend.timed(Operation::TraceSpans, bounds).await?;
    if partial_rows == 0 {
        return Ok(Vec::new());
    }
    let spans = client.query(TRACE_SPANS_SQL).bind(trace_id).bind(start_ns).bind(end_ns).fetch_all::<SpanFetch>();
    let spans = backend.timed(Operation::TraceSpans, spans).await?;
    Ok(spans.into_iter().map(SpanFetch::into_row).collect())
}

const TRACE_USAGE_SQL: &str = "SELECT ?fields FROM usage WHERE TraceId = ? ORDER BY Timestamp, SpanId";

pub(super) async fn trace_usage(backend: &ClickHouseBackend, trace_id: &str) -> Result<Vec<UsageRow>, StoreError> {
    let rows = backend.inner.client.query(TRACE_USAGE_SQL).bind(trace_id).fetch_all::<UsageFetch>();
    let rows = backend.timed(Operation::TraceUsage, rows).await?;
    Ok(rows.into_iter().map(UsageFetch::into_row).collect())
}

#[derive(Row, Deserialize)]
struct UsageGroupFetch {
    group_key: String,
    calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    /// `Decimal(38, 9)`: nano-USD.
    cost: i128,
}

const NANOS_PER_MINUTE: i64 = 60 * 1_000_000_000;
const NANOS_PER_HOUR: i64 = 3_600 * 1_000_000_000;
/// The periods the rollups hold (see migration 0008): from 1970-01-01 01:00 to 2100-01-01 UTC.
const ROLLUP_FROM_NS: i64 = NANOS_PER_HOUR;
const ROLLUP_TO_NS: i64 = 4_102_444_800 * 1_000_000_000;

/// The whole hours of `range` that `usage_hourly` answers for: `[from, to)`, aligned, or `None`
/// when there is none. The rest of the range is read from `usage`.
fn whole_hours(range: &TimeRange) -> Option<(i64, i64)> {
    whole_periods(range, NANOS_PER_HOUR)
}

/// The whole periods of `period_ns` (a divisor of an hour) of `range` that a rollup holds.
fn whole_periods(range: &TimeRange, period_ns: i64) -> Option<(i64, i64)> {
    let from = range.from_ns.max(ROLLUP_FROM_NS);
    let to = range.to_ns.min(ROLLUP_TO_NS);
    let from = from.checked_add(period_ns - 1)? / period_ns * period_ns;
    let to = to.div_euclid(period_ns) * period_ns;
    (from < to).then_some((from, to))
}

/// Calls, tokens and cost per group: whole hours from `usage_hourly`, the partial hours at the
/// ends of the range (or all of it, when it holds no whole hour) from `usage`, summed again.
/// Exact: every call lies in exactly one of the parts.
pub(super) async fn usage_by(
    backend: &ClickHouseBackend,
    by: UsageBy,
    range: &TimeRange,
    tenant: Option<&str>,
) -> Result<Vec<UsageGroup>, StoreError> {
    let raw_key = match by {
        UsageBy::Agent => "toString(Agent)",
        UsageBy::Model => "toString(Model)",
        UsageBy::Tenant => "toString(Tenant)",
        UsageBy::Day => "toString(toDate(Timestamp, 'UTC'))",
    };
    let raw_part = |sql: &mut Sql, from_ns: i64, to_ns: i64| {
        sql.push("SELECT ");
        sql.push(raw_key);
        sql.push(
            " AS group_key, count() AS calls, sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens, sum(CachedInputTokens) AS cached_input_tokens,
    CAST(sum(CostUsd), 'Decimal(38, 9)') AS cost
FROM usage",
        );
        sql.bind(
            " WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND Timestamp < fromUnixTimestamp64Nano(toInt64(?))",
            [from_ns.into(), to_ns.into()],
        );
        if let Some(tenant) = tenant {
            sql.bind(" AND Tenant = ?", [tenant.into()]);
        }
        sql.push(" GROUP BY group_key");
    };
    let mut sql = Sql::new(
        "SELECT group_key, sum(calls) AS calls, sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens, sum(cached_input_tokens) AS cached_input_tokens,
    CAST(sum(cost), 'Decimal(38, 9)') AS cost
FROM (",
    );
    match whole_hours(range) {
        Some((from_hour, to_hour)) => {
            sql.push("SELECT ");
            sql.push(match by {
                UsageBy::Agent => "toString(Agent)",
                UsageBy::Model => "toString(Model)",
                UsageBy::Tenant => "toString(Tenant)",
                UsageBy::Day => "toString(toDate(Hour, 'UTC'))",
            });
            sql.push(
                " AS group_key, sum(Calls) AS calls, sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens, sum(CachedInputTokens) AS cached_input_tokens,
    CAST(sum(CostUsd), 'Decimal(38, 9)') AS cost
FROM usage_hourly",
            );
            period_range(&mut sql, "Hour", (from_hour, to_hour));
            rollup_then_raw_ends(&mut sql, tenant, " GROUP BY group_key", range, (from_hour, to_hour), raw_part);
        }
        None => raw_part(&mut sql, range.from_ns, range.to_ns),
    }
    sql.push(") GROUP BY group_key ORDER BY cost DESC, group_key ASC");

    let groups = sql.query(&backend.inner.client).fetch_all::<UsageGroupFetch>();
    let groups = backend.timed(Operation::UsageBy, groups).await?;
    groups
        .into_iter()
        .map(|group| {
            let cost_nano_usd = i64::try_from(group.cost).map_err(|source| StoreError::Rejected {
                message: format!("the cost of {:?} does not fit in i64 nano-USD", group.group_key),
                source: Some(Box::new(source)),
            })?;
            Ok(UsageGroup {
                key: group.group_key,
                calls: group.calls,
                input_tokens: group.input_tokens,
                output_tokens: group.output_tokens,
                cached_input_tokens: group.cached_input_tokens,
                cost_nano_usd,
            })
        })
        .collect()
}

/// The end of a read over an hourly rollup, shared by `usage_by` and `latency`: the rollup
/// part's tenant filter and grouping, then the partial hours at the range's ends read from the
/// raw rows by `raw_part`, each as another `UNION ALL` part.
fn rollup_then_raw_ends(
    sql: &mut Sql,
    tenant: Option<&str>,
    group_by: &'static str,
    range: &TimeRange,
    (from_hour, to_hour): (i64, i64),
    raw_part: impl Fn(&mut Sql, i64, i64),
) {
    if let Some(tenant) = tenant {
        sql.bind(" AND Tenant = ?", [tenant.into()]);
    }
    sql.push(group_by);
    if range.from_ns < from_hour {
        sql.push(" UNION ALL ");
        raw_part(sql, range.from_ns, from_hour);
    }
    if to_hour < range.to_ns {
        sql.push(" UNION ALL ");
        raw_part(sql, to_hour, range.to_ns);
    }
}

#[derive(Row, Deserialize)]
struct LatencyFetch {
    group_key: String,
    bucket_start_ns: i64,
    calls: u64,
    /// p50, p95, p99 of `LatencyNs`.
    quantiles: Vec<u64>,
}

/// Latency percentiles per group and bucket. With a bucket of whole hours, the whole hours of
/// the range come from `latency_hourly` (exact `quantilesExact` states, migration 9) and only
/// the partial hours at its ends from `usage`; both parts are states of the same function,
/// merged per group and bucket, so the answer is exactly that of the rows. Other buckets
/// read `usage` alone, the same way.
pub(super) async fn latency(
    backend: &ClickHouseBackend,
    by: LatencyBy,
    range: &TimeRange,
    bucket_secs: u32,
    tenant: Option<&str>,
) -> Result<Vec<LatencyRow>, StoreError> {
    if bucket_secs == 0 {
        return Err(StoreError::InvalidQuery { message: "the latency bucket must be at least one second".into() });
    }
    let bucket_ns = i64::from(bucket_secs) * 1_000_000_000;
    let key = match by {
        LatencyBy::Agent => "toString(Agent)",
        LatencyBy::Model => "toString(Model)",
    };
    // As LatencyRow documents: buckets floored (positiveModulo, also before 1970), and
    // quantilesExact, whose p-quantile of n values is the one at index floor(p * n) (computed
    // in f64) of the sorted values.
    let raw_part = |sql: &mut Sql, from_ns: i64, to_ns: i64| {
        sql.push("SELECT ");
        sql.push(key);
        sql.bind(
            " AS group_key,
    toUnixTimestamp64Nano(Timestamp) - positiveModulo(toUnixTimestamp64Nano(Timestamp), toInt64(?)) AS bucket_start_ns,
    count() AS calls,
    quantilesExactState(0.5, 0.95, 0.99)(LatencyNs) AS latency_state
FROM usage
WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND Timestamp < fromUnixTimestamp64Nano(toInt64(?))",
            [bucket_ns.into(), from_ns.into(), to_ns.into()],
        );
        if let Some(tenant) = tenant {
            sql.bind(" AND Tenant = ?", [tenant.into()]);
        }
        sql.push(" GROUP BY group_key, bucket_start_ns");
    };
    let mut sql = Sql::new(
        "SELECT group_key, bucket_start_ns, sum(calls) AS calls,
    quantilesExactMerge(0.5, 0.95, 0.99)(latency_state) AS quantiles
FROM (",
    );
    // An hour lies in one bucket only when buckets are whole hours (they start at multiples
    // of the bucket since the epoch).
    match whole_hours(range).filter(|_| bucket_ns % NANOS_PER_HOUR == 0) {
        Some((from_hour, to_hour)) => {
            sql.push("SELECT ");
            sql.push(key);
            sql.push(" AS group_key, ");
            period_bucket(&mut sql, "Hour", bucket_ns);
            sql.push(
                ", sum(Calls) AS calls, quantilesExactMergeState(0.5, 0.95, 0.99)(LatencyNs) AS latency_state
FROM latency_hourly",
            );
            period_range(&mut sql, "Hour", (from_hour, to_hour));
            let group_by = " GROUP BY group_key, bucket_start_ns";
            rollup_then_raw_ends(&mut sql, tenant, group_by, range, (from_hour, to_hour), raw_part);
        }
        None => raw_part(&mut sql, range.from_ns, range.to_ns),
    }
    sql.push(") GROUP BY group_key, bucket_start_ns ORDER BY group_key ASC, bucket_start_ns ASC");

    let rows = sql.query(&backend.inner.client).fetch_all::<LatencyFetch>();
    let rows = backend.timed(Operation::Latency, rows).await?;
    let millis = |quantiles: &[u64], index: usize| quantiles.get(index).map_or(0.0, |&ns| ns as f64 / 1_000_000.0);
    Ok(rows
        .into_iter()
        .map(|row| LatencyRow {
            p50_ms: millis(&row.quantiles, 0),
            p95_ms: millis(&row.quantiles, 1),
            p99_ms: millis(&row.quantiles, 2),
            key: row.group_key,
            bucket_start_ns: row.bucket_start_ns,
            calls: row.calls,
        })
        .collect())
}

/// A rollup's period (`column`: `Hour` or `Minute`) as the start of its bucket of `bucket_ns`.
fn period_bucket(sql: &mut Sql, column: &'static str, bucket_ns: i64) {
    sql.push("toInt64(toUnixTimestamp(").push(column).push(")) * 1000000000 - positiveModulo(toInt64(toUnixTimestamp(");
    sql.push(column).bind(")) * 1000000000, toInt64(?)) AS bucket_start_ns", [bucket_ns.into()]);
}

/// ` WHERE` the rollup's period (`column`) is in `[from_ns, to_ns)`, both whole periods.
fn period_range(sql: &mut Sql, column: &'static str, (from_ns, to_ns): (i64, i64)) {
    sql.push(" WHERE ").push(column).bind(" >= toDateTime(toInt64(?), 'UTC') AND ", [(from_ns / 1_000_000_000).into()]);
    sql.push(column).bind(" < toDateTime(toInt64(?), 'UTC')", [(to_ns / 1_000_000_000).into()]);
}

/// A request span (see `RequestStats`): the condition of migration 11's view. Macros, so the
/// SQL stays `&'static str` (`Sql::push` takes no built strings).
macro_rules! is_request {
    () => {
        "SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != ''"
    };
}
/// A guardrail block.
macro_rules! is_block {
    () => {
        "SpanAttributes['glassbox.tripwire.processor'] != ''"
    };
}

#[derive(Row, Deserialize)]
struct RequestBucketFetch {
    bucket_start_ns: i64,
    requests: u64,
    errors: u64,
    refused: u64,
    blocked: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// `Decimal(38, 9)`: nano-USD.
    cost: i128,
}

/// The overview's figures (`RequestStats`): two queries, run at once. The buckets sum the
/// request rollup (`requests_minutely`, migration 11) over the range's whole minutes and
/// `spans` over its partial minutes, and the usage rollup (`usage_hourly`) over its whole hours
/// and `usage` over its partial hours; the latency percentiles merge the rollup's exact states
/// with states of the partial minutes' spans. A part whose bucket is not a whole number of its
/// rollup's periods is read from the raw rows alone.
pub(super) async fn request_stats(
    backend: &ClickHouseBackend,
    range: &TimeRange,
    bucket_secs: u32,
    tenant: Option<&str>,
) -> Result<RequestStats, StoreError> {
    if bucket_secs == 0 {
        return Err(StoreError::InvalidQuery { message: "the stats bucket must be at least one second".into() });
    }
    let bucket_ns = i64::from(bucket_secs) * 1_000_000_000;
    let hours = whole_hours(range).filter(|_| bucket_ns % NANOS_PER_HOUR == 0);
    let minutes = whole_periods(range, NANOS_PER_MINUTE).filter(|_| bucket_ns % NANOS_PER_MINUTE == 0);
    let raw_bucket = "toUnixTimestamp64Nano(Timestamp) - positiveModulo(toUnixTimestamp64Nano(Timestamp), toInt64(?)) AS bucket_start_ns";
    let raw_range = |sql: &mut Sql, from_ns: i64, to_ns: i64| {
        sql.bind(
            " WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND Timestamp < fromUnixTimestamp64Nano(toInt64(?))",
            [from_ns.into(), to_ns.into()],
        );
    };
    let span_tenant = |sql: &mut Sql| {
        if let Some(tenant) = tenant {
            sql.bind(" AND SpanAttributes['glassbox.tenant'] = ?", [tenant.into()]);
        }
    };

    // The buckets: requests, then usage, each as rollup plus raw ends.
    let raw_requests = |sql: &mut Sql, from_ns: i64, to_ns: i64| {
        sql.push("SELECT ");
        sql.bind(raw_bucket, [bucket_ns.into()]);
        sql.push(concat!(
            ", countIf(",
            is_request!(),
            ") AS requests, countIf(",
            is_request!(),
            " AND StatusCode = 'Error') AS errors,
    countIf(",
            is_request!(),
            " AND SpanAttributes['http.response.status_code'] IN ('402', '429')) AS refused,
    countIf(",
            is_block!(),
            ") AS blocked, toUInt64(0) AS input_tokens, toUInt64(0) AS output_tokens,
    CAST(0, 'Decimal(38, 9)') AS cost
FROM spans"
        ));
        raw_range(sql, from_ns, to_ns);
        sql.push(concat!(" AND ((", is_request!(), ") OR ", is_block!(), ")"));
        span_tenant(sql);
        sql.push(" GROUP BY bucket_start_ns");
    };
    // `usage` and `usage_hourly` share these column names.
    let usage_sums = ", toUInt64(0) AS requests, toUInt64(0) AS errors, toUInt64(0) AS refused, toUInt64(0) AS blocked,
    sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, CAST(sum(CostUsd), 'Decimal(38, 9)') AS cost";
    let raw_usage = |sql: &mut Sql, from_ns: i64, to_ns: i64| {
        sql.push("SELECT ");
        sql.bind(raw_bucket, [bucket_ns.into()]);
        sql.push(usage_sums);
        sql.push(" FROM usage");
        raw_range(sql, from_ns, to_ns);
        if let Some(tenant) = tenant {
            sql.bind(" AND Tenant = ?", [tenant.into()]);
        }
        sql.push(" GROUP BY bucket_start_ns");
    };
    let mut buckets = Sql::new(
        "SELECT bucket_start_ns, sum(requests) AS requests, sum(errors) AS errors, sum(refused) AS refused,
    sum(blocked) AS blocked, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    CAST(sum(cost), 'Decimal(38, 9)') AS cost
FROM (",
    );
    match minutes {
        Some(minutes) => {
            buckets.push("SELECT ");
            period_bucket(&mut buckets, "Minute", bucket_ns);
            buckets.push(
                ", sum(Requests) AS requests, sum(Errors) AS errors, sum(Refused) AS refused, sum(Blocked) AS blocked,
    toUInt64(0) AS input_tokens, toUInt64(0) AS output_tokens, CAST(0, 'Decimal(38, 9)') AS cost
FROM requests_minutely",
            );
            period_range(&mut buckets, "Minute", minutes);
            rollup_then_raw_ends(&mut buckets, tenant, " GROUP BY bucket_start_ns", range, minutes, raw_requests);
        }
        None => raw_requests(&mut buckets, range.from_ns, range.to_ns),
    }
    buckets.push(" UNION ALL ");
    match hours {
        Some(hours) => {
            buckets.push("SELECT ");
            period_bucket(&mut buckets, "Hour", bucket_ns);
            buckets.push(usage_sums);
            buckets.push(" FROM usage_hourly");
            period_range(&mut buckets, "Hour", hours);
            rollup_then_raw_ends(&mut buckets, tenant, " GROUP BY bucket_start_ns", range, hours, raw_usage);
        }
        None => raw_usage(&mut buckets, range.from_ns, range.to_ns),
    }
    buckets.push(") GROUP BY bucket_start_ns ORDER BY bucket_start_ns ASC");

    // The latency percentiles over every request of the range.
    let raw_latency = |sql: &mut Sql, from_ns: i64, to_ns: i64| {
        sql.push("SELECT quantilesExactState(0.5, 0.95, 0.99)(Duration) AS latency_state FROM spans");
        raw_range(sql, from_ns, to_ns);
        sql.push(concat!(" AND ", is_request!()));
        span_tenant(sql);
    };
    let mut latency = Sql::new("SELECT quantilesExactMerge(0.5, 0.95, 0.99)(latency_state) FROM (");
    match minutes {
        Some(minutes) => {
            latency
                .push("SELECT quantilesExactMergeState(0.5, 0.95, 0.99)(DurationNs) AS latency_state FROM requests_minutely");
            period_range(&mut latency, "Minute", minutes);
            rollup_then_raw_ends(&mut latency, tenant, "", range, minutes, raw_latency);
        }
        None => raw_latency(&mut latency, range.from_ns, range.to_ns),
    }
    latency.push(")");

    let client = &backend.inner.client;
    let (rows, quantiles) = tokio::try_join!(
        backend.timed(Operation::RequestStats, buckets.query(client).fetch_all::<RequestBucketFetch>()),
        backend.timed(Operation::RequestStats, latency.query(client).fetch_one::<Vec<u64>>()),
    )?;
    let mut stats = RequestStats::default();
    let millis = |index: usize| quantiles.get(index).map_or(0.0, |&ns| ns as f64 / 1_000_000.0);
    (stats.p50_ms, stats.p95_ms, stats.p99_ms) = (millis(0), millis(1), millis(2));
    for row in rows {
        let cost_nano_usd = i64::try_from(row.cost).map_err(|source| StoreError::Rejected {
            message: format!("the cost of the bucket at {} does not fit in i64 nano-USD", row.bucket_start_ns),
            source: Some(Box::new(source)),
        })?;
        stats.requests += row.requests;
        stats.errors += row.errors;
        stats.refused += row.refused;
        stats.blocked += row.blocked;
        stats.input_tokens = stats.input_tokens.wrapping_add(row.input_tokens);
        stats.output_tokens = stats.output_tokens.wrapping_add(row.output_tokens);
        stats.cost_nano_usd = stats.cost_nano_usd.wrapping_add(cost_nano_usd);
        stats.buckets.push(RequestBucket {
            bucket_start_ns: row.bucket_start_ns,
            requests: row.requests,
            errors: row.errors,
            refused: row.refused,
            blocked: row.blocked,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            cost_nano_usd,
        });
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_hours_are_the_aligned_inside_of_the_range_the_rollup_holds() {
        let hour = NANOS_PER_HOUR;
        assert_eq!(whole_hours(&TimeRange { from_ns: 10 * hour, to_ns: 12 * hour }), Some((10 * hour, 12 * hour)));
        assert_eq!(whole_hours(&TimeRange { from_ns: 10 * hour + 1, to_ns: 13 * hour - 1 }), Some((11 * hour, 12 * hour)));
        assert_eq!(whole_hours(&TimeRange { from_ns: 10 * hour + 1, to_ns: 11 * hour + 5 }), None);
        assert_eq!(whole_hours(&TimeRange { from_ns: -5 * hour, to_ns: 3 * hour }), Some((hour, 3 * hour)));
        assert_eq!(whole_hours(&TimeRange { from_ns: -5 * hour, to_ns: hour }), None);
        assert_eq!(whole_hours(&TimeRange { from_ns: i64::MIN, to_ns: i64::MAX }), Some((ROLLUP_FROM_NS, ROLLUP_TO_NS)));
        assert_eq!(whole_hours(&TimeRange { from_ns: 12 * hour, to_ns: 10 * hour }), None);
        let minute = NANOS_PER_MINUTE;
        let range = TimeRange { from_ns: 10 * hour + minute + 1, to_ns: 11 * hour + 5 * minute + 7 };
        assert_eq!(whole_periods(&range, minute), Some((10 * hour + 2 * minute, 11 * hour + 5 * minute)));
        assert_eq!(whole_periods(&TimeRange { from_ns: hour + 1, to_ns: hour + minute }, minute), None);
    }

    #[test]
    fn filters_are_bound_not_spliced() {
        let mut sql = Sql::new(LIST_TRACES_SELECT);
        sql.bind(" AND agent = ?", ["x' OR 1 --".into()]);
        assert!(!sql.text().contains("x'"));
    }
}
