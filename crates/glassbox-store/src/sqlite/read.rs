//! The read queries. Every value reaches SQL as a bound parameter; the only SQL assembled at
//! run time is the trace list's `WHERE` clause, from the constant fragments below.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};

use super::codec::{from_sql_int, span_group_from_json, to_sql_int};
use super::store_error;
use crate::backend::StoreError;
use crate::query::{
    Cursor, LatencyBy, LatencyRow, Page, PageRequest, RequestBucket, RequestStats, TimeRange, TraceFilter, TraceSummary,
    UsageBy, UsageGroup,
};
use crate::rows::{SpanRow, StatusCode, UsageRow};

/// The largest page `list_traces` returns, whatever the request asks for.
pub(super) const MAX_PAGE: u32 = 1000;

const LIST_TRACES: &str = "SELECT t.TraceId, t.StartNs, t.EndNs, t.RootSpanName, t.Agent, t.Tenant, t.HasError, \
     t.SpanCount, t.InputTokens, t.OutputTokens, t.CostNanoUsd FROM trace_index AS t WHERE 1 = 1";
const FILTER_RANGE: &str = " AND t.StartNs >= ? AND t.StartNs < ?";
const FILTER_AGENT: &str = " AND t.Agent = ?";
const FILTER_HAS_ERROR: &str = " AND t.HasError = ?";
const FILTER_TENANT: &str = " AND t.Tenant = ?";
const FILTER_MODEL: &str =
    " AND EXISTS (SELECT 1 FROM json_each(t.Models) AS m WHERE m.value = ?)";
const FILTER_API_KEY: &str =
    " AND EXISTS (SELECT 1 FROM json_each(t.ApiKeys) AS k WHERE k.value = ?)";
const FILTER_MIN_DURATION: &str = " AND t.EndNs - t.StartNs >= ?";
const FILTER_MIN_COST: &str = " AND t.CostNanoUsd >= ?";
const FILTER_TRACE_ID: &str = " AND t.TraceId = ?";
const AFTER_CURSOR: &str = " AND (t.StartNs, t.TraceId) < (?, ?)";
const NEWEST_FIRST: &str = " ORDER BY t.StartNs DESC, t.TraceId DESC LIMIT ?";

const GROUPS_OF_TRACE: &str = "SELECT Spans FROM span_groups WHERE TraceId = ?1 ORDER BY Part";

const USAGE_OF_TRACE: &str = "SELECT Timestamp, TraceId, SpanId, Tenant, ApiKeyId, Agent, Workflow, Provider, \
     Model, InputTokens, OutputTokens, CachedInputTokens, ReasoningTokens, CostNanoUsd, CostUnknown, LatencyNs, \
     TimeToFirstTokenNs, Status, ErrorType FROM usage WHERE TraceId = ?1 ORDER BY Timestamp, SpanId";

/// One `usage_by` statement per grouping, differing only in the key expression; the tenant
/// variants add `AND Tenant = ?3` (its own statement, so the `(Tenant, Timestamp)` index is
/// usable).
macro_rules! usage_by_sql {
    ($key:expr, $tenant:literal) => {
        concat!(
            "SELECT ",
            $key,
            " AS GroupKey, COUNT(*), SUM(InputTokens), SUM(OutputTokens), SUM(CachedInputTokens), ",
            "SUM(CostNanoUsd) AS Cost FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2",
            $tenant,
            " GROUP BY GroupKey ORDER BY Cost DESC, GroupKey ASC"
        )
    };
}
/// The UTC day, from the timestamp floored to whole days (also right before 1970).
macro_rules! utc_day {
    () => {
        "date((Timestamp - ((Timestamp % 86400000000000) + 86400000000000) % 86400000000000) / 1000000000, 'unixepoch')"
    };
}
const USAGE_BY_AGENT: [&str; 2] = [usage_by_sql!("Agent", ""), usage_by_sql!("Agent", " AND Tenant = ?3")];
const USAGE_BY_MODEL: [&str; 2] = [usage_by_sql!("Model", ""), usage_by_sql!("Model", " AND Tenant = ?3")];
const USAGE_BY_TENANT: [&str; 2] = [usage_by_sql!("Tenant", ""), usage_by_sql!("Tenant", " AND Tenant = ?3")];
const USAGE_BY_DAY: [&str; 2] = [usage_by_sql!(utc_day!(), ""), usage_by_sql!(utc_day!(), " AND Tenant = ?3")];

const LATENCY_BY_AGENT: [&str; 2] = [
    "SELECT Agent, Timestamp, LatencyNs FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2",
    "SELECT Agent, Timestamp, LatencyNs FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2 AND Tenant = ?3",
];
const LATENCY_BY_MODEL: [&str; 2] = [
    "SELECT Model, Timestamp, LatencyNs FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2",
    "SELECT Model, Timestamp, LatencyNs FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2 AND Tenant = ?3",
];

/// Index 0 of the statement pairs above: every tenant; 1: one tenant.
fn variant(tenant: Option<&str>) -> usize {
    usize::from(tenant.is_some())
}

/// The bound values of a range and an optional tenant (`?1`, `?2`, `?3`).
fn range_values(range: &TimeRange, tenant: Option<&str>) -> Vec<Value> {
    let mut values = vec![Value::Integer(range.from_ns), Value::Integer(range.to_ns)];
    if let Some(tenant) = tenant {
        values.push(Value::Text(tenant.to_owned()));
    }
    values
}

/// A validated `list_traces` call: SQL from constant fragments and its bound values.
#[derive(Debug)]
pub(super) struct TraceListQuery {
    sql: String,
    values: Vec<Value>,
    limit: usize,
}

impl TraceListQuery {
    pub fn new(filter: &TraceFilter, page: &PageRequest) -> Result<Self, StoreError> {
        if page.limit == 0 {
            return Err(StoreError::InvalidQuery { message: "the page limit must be at least 1".into() });
        }
        let limit = page.limit.min(MAX_PAGE);
        let mut sql = String::from(LIST_TRACES);
        let mut values = Vec::new();
        if let Some(range) = filter.range {
            sql.push_str(FILTER_RANGE);
            values.extend([Value::Integer(range.from_ns), Value::Integer(range.to_ns)]);
        }
        let mut text_filter = |fragment: &str, value: &Option<String>| {
            if let Some(value) = value {
                sql.push_str(fragment);
                values.push(Value::Text(value.clone()));
            }
        };
        text_filter(FILTER_AGENT, &filter.agent);
        text_filter(FILTER_TENANT, &filter.tenant);
        text_filter(FILTER_MODEL, &filter.model);
        text_filter(FILTER_API_KEY, &filter.api_key_id);
        text_filter(FILTER_TRACE_ID, &filter.trace_id);
        if let Some(has_error) = filter.has_error {
            sql.push_str(FILTER_HAS_ERROR);
            values.push(Value::Integer(i64::from(has_error)));
        }
        if let Some(min_duration_ns) = filter.min_duration_ns {
            sql.push_str(FILTER_MIN_DURATION);
            values.push(Value::Integer(to_sql_int(min_duration_ns)));
        }
        if let Some(min_cost) = filter.min_cost_nano_usd {
            sql.push_str(FILTER_MIN_COST);
            values.push(Value::Integer(min_cost));
        }
        if let Some(cursor) = &page.after {
            sql.push_str(AFTER_CURSOR);
            values.extend([Value::Integer(cursor.start_ns), Value::Text(cursor.trace_id.clone())]);
        }
        sql.push_str(NEWEST_FIRST);
        // One row more than the page tells whether another page follows.
        values.push(Value::Integer(i64::from(limit) + 1));
        Ok(Self { sql, values, limit: limit as usize })
    }

    pub fn run(self, connection: &Connection) -> Result<Page<TraceSummary>, StoreError> {
        let mut statement = connection.prepare_cached(&self.sql).map_err(store_error)?;
        let mut items = statement
            .query_map(params_from_iter(self.values.iter()), summary_from_row)
            .map_err(store_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let next = if items.len() > self.limit {
            items.truncate(self.limit);
            items.last().map(|last| Cursor { start_ns: last.start_ns, trace_id: last.trace_id.clone() })
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<TraceSummary> {
    Ok(TraceSummary {
        trace_id: row.get(0)?,
        start_ns: row.get(1)?,
        end_ns: row.get(2)?,
        root_span_name: row.get(3)?,
        agent: row.get(4)?,
        tenant: row.get(5)?,
        has_error: row.get(6)?,
        span_count: from_sql_int(row.get(7)?),
        input_tokens: from_sql_int(row.get(8)?),
        output_tokens: from_sql_int(row.get(9)?),
        cost_nano_usd: row.get(10)?,
    })
}

/// A trace's spans from its groups (migration 15), ordered by start time, then span id.
pub(super) fn trace_spans(connection: &Connection, trace_id: &str) -> Result<Vec<SpanRow>, StoreError> {
    let mut statement = connection.prepare_cached(GROUPS_OF_TRACE).map_err(store_error)?;
    let mut rows = statement.query([trace_id]).map_err(store_error)?;
    let mut spans = Vec::new();
    while let Some(row) = rows.next().map_err(store_error)? {
        let text = row.get_ref(0).and_then(|value| value.as_str().map_err(Into::into)).map_err(store_error)?;
        let group = span_group_from_json(trace_id, text).map_err(|error| StoreError::Rejected {
            message: format!("a stored span group of trace {trace_id} is malformed JSON: {error}"),
            source: Some(Box::new(error)),
        })?;
        spans.extend(group);
    }
    spans.sort_by(|a, b| (a.timestamp_ns, &a.span_id).cmp(&(b.timestamp_ns, &b.span_id)));
    Ok(spans)
}

pub(super) fn trace_usage(connection: &Connection, trace_id: &str) -> Result<Vec<UsageRow>, StoreError> {
    let mut statement = connection.prepare_cached(USAGE_OF_TRACE).map_err(store_error)?;
    let rows = statement.query_map([trace_id], usage_from_row).map_err(store_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
}

fn usage_from_row(row: &Row<'_>) -> rusqlite::Result<UsageRow> {
    Ok(UsageRow {
        timestamp_ns: row.get(0)?,
        trace_id: row.get(1)?,
        span_id: row.get(2)?,
        tenant: row.get(3)?,
        api_key_id: row.get(4)?,
        agent: row.get(5)?,
        workflow: row.get(6)?,
        provider: row.get(7)?,
        model: row.get(8)?,
        input_tokens: from_sql_int(row.get(9)?),
        output_tokens: from_sql_int(row.get(10)?),
        cached_input_tokens: from_sql_int(row.get(11)?),
        reasoning_tokens: from_sql_int(row.get(12)?),
        cost_nano_usd: row.get(13)?,
        cost_unknown: row.get(14)?,
        latency_ns: from_sql_int(row.get(15)?),
        time_to_first_token_ns: from_sql_int(row.get(16)?),
        status: row.get(17)?,
        error_type: row.get(18)?,
    })
}

pub(super) fn usage_by(
    connection: &Connection,
    by: UsageBy,
    range: &TimeRange,
    tenant: Option<&str>,
) -> Result<Vec<UsageGroup>, StoreError> {
    let sql = match by {
        UsageBy::Agent => USAGE_BY_AGENT,
        UsageBy::Model => USAGE_BY_MODEL,
        UsageBy::Tenant => USAGE_BY_TENANT,
        UsageBy::Day => USAGE_BY_DAY,
    }[variant(tenant)];
    let mut statement = connection.prepare_cached(sql).map_err(store_error)?;
    let rows = statement
        .query_map(params_from_iter(range_values(range, tenant)), |row| {
            Ok(UsageGroup {
                key: row.get(0)?,
                calls: from_sql_int(row.get(1)?),
                input_tokens: from_sql_int(row.get(2)?),
                output_tokens: from_sql_int(row.get(3)?),
                cached_input_tokens: from_sql_int(row.get(4)?),
                cost_nano_usd: row.get(5)?,
            })
        })
        .map_err(store_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
}

/// Reads the calls' latencies and computes the percentiles here, exactly as
/// [`LatencyRow`] defines them.
pub(super) fn latency(
    connection: &Connection,
    by: LatencyBy,
    range: &TimeRange,
    bucket_secs: u32,
    tenant: Option<&str>,
) -> Result<Vec<LatencyRow>, StoreError> {
    let sql = match by {
        LatencyBy::Agent => LATENCY_BY_AGENT,
        LatencyBy::Model => LATENCY_BY_MODEL,
    }[variant(tenant)];
    let bucket_ns = i64::from(bucket_secs) * 1_000_000_000;
    let mut groups: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
    let mut statement = connection.prepare_cached(sql).map_err(store_error)?;
    let mut rows = statement.query(params_from_iter(range_values(range, tenant))).map_err(store_error)?;
    while let Some(row) = rows.next().map_err(store_error)? {
        let key: String = row.get(0).map_err(store_error)?;
        let timestamp_ns: i64 = row.get(1).map_err(store_error)?;
        let latency_ns: i64 = row.get(2).map_err(store_error)?;
        let bucket_start_ns = timestamp_ns.div_euclid(bucket_ns) * bucket_ns;
        groups.entry((key, bucket_start_ns)).or_default().push(from_sql_int(latency_ns));
    }
    Ok(groups
        .into_iter()
        .map(|((key, bucket_start_ns), mut latencies)| {
            latencies.sort_unstable();
            LatencyRow {
                key,
                bucket_start_ns,
                calls: latencies.len() as u64,
                p50_ms: nanos_to_ms(quantile_exact(&latencies, 0.50)),
                p95_ms: nanos_to_ms(quantile_exact(&latencies, 0.95)),
                p99_ms: nanos_to_ms(quantile_exact(&latencies, 0.99)),
            }
        })
        .collect())
}

/// The request and block spans of a range (migration 15's `request_spans`, keyed by time).
const REQUEST_SPANS: &str = "SELECT Timestamp, Duration, Server, StatusCode, Request, HttpStatus, Tripwire, Tenant \
     FROM request_spans WHERE Timestamp >= ?1 AND Timestamp < ?2";

const USAGE_OF_RANGE: [&str; 2] = [
    "SELECT Timestamp, InputTokens, OutputTokens, CostNanoUsd FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2",
    "SELECT Timestamp, InputTokens, OutputTokens, CostNanoUsd FROM usage \
     WHERE Tenant = ?3 AND Timestamp >= ?1 AND Timestamp < ?2",
];

/// Reads the range's request spans, block spans and usage rows and aggregates here, exactly as
/// [`RequestStats`] defines it (the percentiles need the sorted durations anyway).
pub(super) fn request_stats(
    connection: &Connection,
    range: &TimeRange,
    bucket_secs: u32,
    tenant: Option<&str>,
) -> Result<RequestStats, StoreError> {
    let bucket_ns = i64::from(bucket_secs) * 1_000_000_000;
    let mut buckets: BTreeMap<i64, RequestBucket> = BTreeMap::new();
    fn bucket_at(buckets: &mut BTreeMap<i64, RequestBucket>, bucket_ns: i64, timestamp_ns: i64) -> &mut RequestBucket {
        let bucket_start_ns = timestamp_ns.div_euclid(bucket_ns) * bucket_ns;
        buckets.entry(bucket_start_ns).or_insert_with(|| RequestBucket { bucket_start_ns, ..RequestBucket::default() })
    }
    let mut durations: Vec<u64> = Vec::new();
    let present = |text: &Option<String>| text.as_deref().is_some_and(|text| !text.is_empty());

    let mut statement = connection.prepare_cached(REQUEST_SPANS).map_err(store_error)?;
    let mut rows = statement.query([range.from_ns, range.to_ns]).map_err(store_error)?;
    while let Some(row) = rows.next().map_err(store_error)? {
        let span_tenant: Option<String> = row.get(7).map_err(store_error)?;
        if tenant.is_some_and(|tenant| span_tenant.as_deref().unwrap_or("") != tenant) {
            continue;
        }
        let timestamp_ns: i64 = row.get(0).map_err(store_error)?;
        let is_server: bool = row.get(2).map_err(store_error)?;
        let is_request = is_server && present(&row.get(4).map_err(store_error)?);
        let is_block = present(&row.get(6).map_err(store_error)?);
        if !is_request && !is_block {
            continue;
        }
        let bucket = bucket_at(&mut buckets, bucket_ns, timestamp_ns);
        bucket.blocked += u64::from(is_block);
        if is_request {
            let status: String = row.get(3).map_err(store_error)?;
            let http_status: Option<String> = row.get(5).map_err(store_error)?;
            bucket.requests += 1;
            bucket.errors += u64::from(status == StatusCode::Error.as_str());
            bucket.refused += u64::from(matches!(http_status.as_deref(), Some("402" | "429")));
            durations.push(from_sql_int(row.get(1).map_err(store_error)?));
        }
    }

    let mut statement = connection.prepare_cached(USAGE_OF_RANGE[variant(tenant)]).map_err(store_error)?;
    let mut rows = statement.query(params_from_iter(range_values(range, tenant))).map_err(store_error)?;
    while let Some(row) = rows.next().map_err(store_error)? {
        let bucket = bucket_at(&mut buckets, bucket_ns, row.get(0).map_err(store_error)?);
        bucket.input_tokens = bucket.input_tokens.wrapping_add(from_sql_int(row.get(1).map_err(store_error)?));
        bucket.output_tokens = bucket.output_tokens.wrapping_add(from_sql_int(row.get(2).map_err(store_error)?));
        bucket.cost_nano_usd = bucket.cost_nano_usd.wrapping_add(row.get::<_, i64>(3).map_err(store_error)?);
    }

    let mut stats = RequestStats::default();
    for bucket in buckets.values() {
        stats.requests += bucket.requests;
        stats.errors += bucket.errors;
        stats.refused += bucket.refused;
        stats.blocked += bucket.blocked;
        stats.input_tokens = stats.input_tokens.wrapping_add(bucket.input_tokens);
        stats.output_tokens = stats.output_tokens.wrapping_add(bucket.output_tokens);
        stats.cost_nano_usd = stats.cost_nano_usd.wrapping_add(bucket.cost_nano_usd);
    }
    durations.sort_unstable();
    stats.p50_ms = nanos_to_ms(quantile_exact(&durations, 0.50));
    stats.p95_ms = nanos_to_ms(quantile_exact(&durations, 0.95));
    stats.p99_ms = nanos_to_ms(quantile_exact(&durations, 0.99));
    stats.buckets = buckets.into_values().collect();
    Ok(stats)
}

/// The p-quantile of ascending values: the value at index `min(n - 1, floor(p * n))`, with
/// `p * n` computed in `f64` (ClickHouse's `quantileExact`).
fn quantile_exact(ascending: &[u64], p: f64) -> u64 {
    let index = ((p * ascending.len() as f64) as usize).min(ascending.len().saturating_sub(1));
    ascending.get(index).copied().unwrap_or(0)
}

fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_exact_picks_floor_of_p_times_n() {
        let values: Vec<u64> = (1..=20).collect();
        assert_eq!(quantile_exact(&values, 0.50), 11);
        assert_eq!(quantile_exact(&values, 0.95), 20);
        assert_eq!(quantile_exact(&values, 0.99), 20);
        assert_eq!(quantile_exact(&[7], 0.5), 7);
        assert_eq!(quantile_exact(&[1, 2], 0.5), 2);
        assert_eq!(quantile_exact(&[], 0.5), 0);
    }
}
