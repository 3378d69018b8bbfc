//! Batch inserts: spans (one group per trace, with their trace index rows, in the same
//! transaction) and usage.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::codec::{set_from_json, set_to_json, span_group_to_json, to_sql_int};
use super::store_error;
use super::trace_index::{Earliest, TENANT_ATTRIBUTE, TraceEntry};
use crate::backend::StoreError;
use crate::rows::{SpanRow, UsageRow};

/// `OR IGNORE`: whether a trace's group 0 goes in tells whether it had stored spans
/// ([`insert_spans`]).
const INSERT_GROUP: &str = "INSERT OR IGNORE INTO span_groups (TraceId, Part, Spans) VALUES (?1, ?2, ?3)";

const INSERT_REQUEST_SPAN: &str = "INSERT OR IGNORE INTO request_spans (Timestamp, TraceId, SpanId, Duration, \
     Server, StatusCode, Request, HttpStatus, Tripwire, Tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const INSERT_WORKFLOW_SPAN: &str =
    "INSERT OR IGNORE INTO workflow_spans (RunId, Timestamp, TraceId, SpanId) VALUES (?1, ?2, ?3, ?4)";

/// Records a span id of a trace stored in more than one group; adds nothing if it is there.
const INSERT_SPAN_KEY: &str = "INSERT OR IGNORE INTO span_keys (TraceId, SpanId) VALUES (?1, ?2)";

/// The ids of the spans of a trace's group 0.
const FIRST_GROUP_SPAN_IDS: &str = "SELECT json_extract(s.value, '$.SpanId') \
     FROM span_groups AS g, json_each(g.Spans) AS s WHERE g.TraceId = ?1 AND g.Part = 0";

/// The number of a trace's next group (its number of groups: they are numbered from 0).
const NEXT_PART: &str = "SELECT coalesce(max(Part) + 1, 0) FROM span_groups WHERE TraceId = ?1";

/// The most spans one group holds (migration 15 splits stored traces the same way). A trace's
/// spans in one batch usually fit in one group (3 on a benchmark request); more are split, so
/// that no single row grows with a trace that a caller keeps going (its `traceparent`) and the
/// write thread yields between groups.
const MAX_GROUP_SPANS: usize = 64;

const REQUEST_ATTRIBUTE: &str = "glassbox.request";
const HTTP_STATUS_ATTRIBUTE: &str = "http.response.status_code";
const TRIPWIRE_ATTRIBUTE: &str = "glassbox.tripwire.processor";
const RUN_ID_ATTRIBUTE: &str = "glassbox.workflow.run_id";
const WORKFLOW_SPAN_PREFIX: &str = "invoke_workflow";

const INSERT_USAGE: &str = "INSERT OR IGNORE INTO usage (Timestamp, TraceId, SpanId, Tenant, ApiKeyId, Agent, \
     Workflow, Provider, Model, InputTokens, OutputTokens, CachedInputTokens, ReasoningTokens, CostNanoUsd, \
     CostUnknown, LatencyNs, TimeToFirstTokenNs, Status, ErrorType) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

const SELECT_TRACE_ENTRY: &str = "SELECT StartNs, EndNs, RootSpanName, RootSpanId, Agent, AgentTimestamp, \
     AgentSpanId, Tenant, TenantTimestamp, TenantSpanId, HasError, SpanCount, InputTokens, OutputTokens, \
     CostNanoUsd, Models, ApiKeys FROM trace_index WHERE TraceId = ?1";

/// `INSERT OR {}`: `IGNORE` adds the row of a trace the index does not hold yet (most are
/// whole in one batch), `REPLACE` writes the merged row of one it does.
macro_rules! write_trace_entry {
    ($conflict:literal) => {
        concat!(
            "INSERT OR ",
            $conflict,
            " INTO trace_index (TraceId, StartNs, EndNs, RootSpanName, RootSpanId, Agent, AgentTimestamp, \
             AgentSpanId, Tenant, TenantTimestamp, TenantSpanId, HasError, SpanCount, InputTokens, OutputTokens, \
             CostNanoUsd, Models, ApiKeys) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
             ?16, ?17, ?18)"
        )
    };
}
const ADD_TRACE_ENTRY: &str = write_trace_entry!("IGNORE");
const REPLACE_TRACE_ENTRY: &str = write_trace_entry!("REPLACE");

/// The write thread offers its core back (`sched_yield`) after every this many span groups of
/// a batch, inside the transaction. A 1,000-row batch is some 20 ms of CPU (5 ms at SQLite's
/// default of 250 rows, `Backend::batch_rows`); under Linux's scheduler a request
/// thread woken on the writer's core waited for the writer's time slice to run out, and at
/// half of the peak rate those waits were most of Glassbox's added p99. A
/// yield when no request thread waits returns at once. Measured with one row per span
/// (BENCHMARKS.md, two A/Bs of 4 alternated rounds at 1,800 req/s, a yield every 32 span
/// rows): added p99 +3.09 against +4.24 ms and +3.62 against +4.06 ms, lower in 7 of the 8
/// rounds. Those 32 span rows were about 0.9 M instructions (27 K each); a benchmark trace
/// (3 spans: its group, its index row and its request row) costs the writer about 91 K
/// (callgrind, BENCHMARKS.md), so 10 groups keep the yields as far apart. (A yield every 1 or
/// 2 groups measured the same added p99 at 7,100 req/s.)
const YIELD_EVERY_GROUPS: usize = 10;

/// A usage row cost the writer about half of a span row of one row per span (30 K against 55 K
/// instructions, with the 5 B-trees of usage before migration 11), so 96 of them are of the
/// order of 32 such span rows' work between yields; 96 is the value measured.
pub(super) const YIELD_EVERY_USAGE: usize = 96;

/// Lets other threads run on this core every `every` rows (see [`YIELD_EVERY_GROUPS`]).
/// There, too, a write thread under `SCHED_IDLE` checks whether it must catch up
/// (`write_thread::keep_up`).
pub(super) fn offer_the_core(index: usize, every: usize) {
    if index > 0 && index.is_multiple_of(every) {
        std::thread::yield_now();
        super::write_thread::keep_up();
    }
}

/// Inserts the spans that are not stored yet, in groups of up to [`MAX_GROUP_SPANS`] per trace,
/// and folds exactly those into their traces' index rows, all in one transaction: a batch is
/// stored whole or not at all.
///
/// Which spans a trace has stored already, without a key per span:
/// - A trace without groups has none (a trace's groups always include group 0): its spans go
///   in unread, and that its group 0 went in is how the writer knows.
/// - A trace with one group: that group's span ids (at most [`MAX_GROUP_SPANS`]) are read.
/// - A trace with more groups has every span id in `span_keys`, recorded as it got its second
///   group; each span's key is added there, and a key already there is a stored span.
///
/// So a batch replayed from the spool, however it splits a trace's spans, stores none twice,
/// and a trace a caller keeps going costs each batch a key lookup per span, not a read of all
/// the trace holds.
pub(super) fn insert_spans(connection: &mut Connection, rows: &[SpanRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    // By trace, then span id; the first of a batch's copies of a span is kept (a stable sort).
    let mut spans: Vec<&SpanRow> = rows.iter().collect();
    spans.sort_by(|a, b| (&a.trace_id, &a.span_id).cmp(&(&b.trace_id, &b.span_id)));
    spans.dedup_by(|a, b| a.trace_id == b.trace_id && a.span_id == b.span_id);
    let mut writer = GroupWriter { transaction: &transaction, buffers: Buffers::default(), groups: 0 };
    for trace in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
        let Some(trace_id) = trace.first().map(|span| span.trace_id.as_str()) else { continue };
        let fresh = if writer.insert_groups(trace_id, 0, trace)? {
            trace.to_vec()
        } else {
            // Its other spans came in an earlier batch.
            let next_part: i64 = transaction
                .prepare_cached(NEXT_PART)
                .and_then(|mut next| next.query_row([trace_id], |row| row.get(0)))
                .map_err(store_error)?;
            let fresh = fresh_spans(&transaction, trace_id, next_part, trace)?;
            // Numbered after the stored groups: none of them is there yet, so this answers true.
            writer.insert_groups(trace_id, next_part, &fresh)?;
            fresh
        };
        let Some(entry) = entry_of(&fresh) else { continue };
        fold_into_index(&transaction, trace_id, entry, &mut writer.buffers)?;
    }
    transaction.commit().map_err(store_error)
}

/// Adds `entry` (of spans just stored) to `trace_id`'s index row: the row as it is when the
/// index does not hold the trace yet (most are whole in one batch), else merged into the
/// stored row.
fn fold_into_index(
    transaction: &Transaction<'_>,
    trace_id: &str,
    entry: TraceEntry,
    buffers: &mut Buffers,
) -> Result<(), StoreError> {
    if write_entry(transaction, ADD_TRACE_ENTRY, trace_id, &entry, buffers)? {
        return Ok(());
    }
    let merged = match stored_entry(transaction, trace_id)? {
        Some(mut stored) => {
            stored.merge(entry);
            stored
        }
        None => entry,
    };
    write_entry(transaction, REPLACE_TRACE_ENTRY, trace_id, &merged, buffers)?;
    Ok(())
}

/// The spans of `trace` (one trace's, `next_part` groups stored, at least one) that its
/// groups do not hold. With this batch's group the trace has two or more, so every span id of
/// the trace ends up in `span_keys`.
fn fresh_spans<'a>(
    transaction: &Transaction<'_>,
    trace_id: &str,
    next_part: i64,
    trace: &[&'a SpanRow],
) -> Result<Vec<&'a SpanRow>, StoreError> {
    if next_part == 1 {
        // Its second group comes now: its first group's span ids become keys.
        let mut select = transaction.prepare_cached(FIRST_GROUP_SPAN_IDS).map_err(store_error)?;
        let ids = select.query_map([trace_id], |row| row.get::<_, String>(0)).map_err(store_error)?;
        let ids = ids.collect::<Result<Vec<_>, _>>().map_err(store_error)?;
        add_span_keys(transaction, trace_id, &ids, String::as_str, |_| {})?;
    }
    let mut fresh = Vec::with_capacity(trace.len());
    add_span_keys(transaction, trace_id, trace, |span| span.span_id.as_str(), |span| fresh.push(*span))?;
    Ok(fresh)
}

/// Records the span ids of `items` (of `trace_id`) in `span_keys` and calls `added` with each
/// item whose key was not there yet.
fn add_span_keys<T>(
    transaction: &Transaction<'_>,
    trace_id: &str,
    items: &[T],
    span_id: impl Fn(&T) -> &str,
    mut added: impl FnMut(&T),
) -> Result<(), StoreError> {
    let mut insert = transaction.prepare_cached(INSERT_SPAN_KEY).map_err(store_error)?;
    for (index, item) in items.iter().enumerate() {
        offer_the_core(index, YIELD_EVERY_USAGE);
        if insert.execute(params![trace_id, span_id(item)]).map_err(store_error)? == 1 {
            added(item);
        }
    }
    Ok(())
}

/// The index row of `spans` (one trace's), `None` when there are none.
fn entry_of(spans: &[&SpanRow]) -> Option<TraceEntry> {
    let (first, rest) = spans.split_first()?;
    let mut entry = TraceEntry::from_span(first);
    for span in rest {
        entry.merge(TraceEntry::from_span(span));
    }
    Some(entry)
}

/// Writes span groups within one transaction, yielding the core every [`YIELD_EVERY_GROUPS`].
struct GroupWriter<'t, 'c> {
    transaction: &'t Transaction<'c>,
    buffers: Buffers,
    groups: usize,
}

impl GroupWriter<'_, '_> {
    /// Writes `spans` (all of `trace_id`, none stored) as its groups from `first_part` on, up
    /// to [`MAX_GROUP_SPANS`] each, with their `span_keys` rows when a new trace takes more
    /// than one. Answers `false`, writing nothing, when `first_part` is 0 and the trace's group
    /// 0 is there already: the trace has stored spans (see [`insert_spans`]).
    fn insert_groups(&mut self, trace_id: &str, first_part: i64, spans: &[&SpanRow]) -> Result<bool, StoreError> {
        for (part, group) in (first_part..).zip(spans.chunks(MAX_GROUP_SPANS)) {
            offer_the_core(self.groups, YIELD_EVERY_GROUPS);
            self.groups += 1;
            if !insert_group(self.transaction, trace_id, part, group, &mut self.buffers)? {
                if part == 0 {
                    return Ok(false);
                }
                return Err(StoreError::Rejected {
                    message: format!("span group {part} of trace {trace_id} is stored already"),
                    source: None,
                });
            }
        }
        if first_part == 0 && spans.len() > MAX_GROUP_SPANS {
            add_span_keys(self.transaction, trace_id, spans, |span| span.span_id.as_str(), |_| {})?;
        }
        Ok(true)
    }
}

/// Writes `spans` (new to the store, all of `trace_id`) as the trace's group `part`, with a
/// `request_spans` row for each request or block span and a `workflow_spans` row for each
/// workflow span with a run id. Answers `false`, writing nothing, if that group is there.
fn insert_group(
    transaction: &Transaction<'_>,
    trace_id: &str,
    part: i64,
    spans: &[&SpanRow],
    buffers: &mut Buffers,
) -> Result<bool, StoreError> {
    let json = span_group_to_json(spans, &mut buffers.group).map_err(encode_error)?;
    let mut insert = transaction.prepare_cached(INSERT_GROUP).map_err(store_error)?;
    if insert.execute(params![trace_id, part, json]).map_err(store_error)? == 0 {
        return Ok(false);
    }
    for span in spans {
        let is_server = span.span_kind == "Server";
        let tripwire = span.attribute(TRIPWIRE_ATTRIBUTE);
        if is_server || tripwire.is_some() {
            let mut insert = transaction.prepare_cached(INSERT_REQUEST_SPAN).map_err(store_error)?;
            insert
                .execute(params![
                    span.timestamp_ns,
                    trace_id,
                    span.span_id,
                    to_sql_int(span.duration_ns),
                    is_server,
                    span.status_code.as_str(),
                    span.attribute(REQUEST_ATTRIBUTE),
                    span.attribute(HTTP_STATUS_ATTRIBUTE),
                    tripwire,
                    span.attribute(TENANT_ATTRIBUTE),
                ])
                .map_err(store_error)?;
        }
        if span.span_name.starts_with(WORKFLOW_SPAN_PREFIX)
            && let Some(run_id) = span.attribute(RUN_ID_ATTRIBUTE)
        {
            let mut insert = transaction.prepare_cached(INSERT_WORKFLOW_SPAN).map_err(store_error)?;
            insert.execute(params![run_id, span.timestamp_ns, trace_id, span.span_id]).map_err(store_error)?;
        }
    }
    Ok(true)
}

pub(super) fn insert_usage(connection: &mut Connection, rows: &[UsageRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    {
        let mut insert = transaction.prepare_cached(INSERT_USAGE).map_err(store_error)?;
        for (index, usage) in rows.iter().enumerate() {
            offer_the_core(index, YIELD_EVERY_USAGE);
            insert
                .execute(params![
                    usage.timestamp_ns,
                    usage.trace_id,
                    usage.span_id,
                    usage.tenant,
                    usage.api_key_id,
                    usage.agent,
                    usage.workflow,
                    usage.provider,
                    usage.model,
                    to_sql_int(usage.input_tokens),
                    to_sql_int(usage.output_tokens),
                    to_sql_int(usage.cached_input_tokens),
                    to_sql_int(usage.reasoning_tokens),
                    usage.cost_nano_usd,
                    usage.cost_unknown,
                    to_sql_int(usage.latency_ns),
                    to_sql_int(usage.time_to_first_token_ns),
                    usage.status,
                    usage.error_type,
                ])
                .map_err(store_error)?;
        }
    }
    transaction.commit().map_err(store_error)
}

fn stored_entry(transaction: &Transaction<'_>, trace_id: &str) -> Result<Option<TraceEntry>, StoreError> {
    let mut select = transaction.prepare_cached(SELECT_TRACE_ENTRY).map_err(store_error)?;
    select.query_row([trace_id], entry_from_row).optional().map_err(store_error)
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<TraceEntry> {
    let set = |index: usize| {
        let text: String = row.get(index)?;
        set_from_json(&text).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
        })
    };
    // An empty stored value means no span carried one yet.
    let earliest = |value: String, timestamp_ns: i64, span_id: String| {
        (!value.is_empty()).then_some(Earliest { timestamp_ns, span_id, value })
    };
    Ok(TraceEntry {
        start_ns: row.get(0)?,
        end_ns: row.get(1)?,
        root: Earliest { timestamp_ns: row.get(0)?, value: row.get(2)?, span_id: row.get(3)? },
        agent: earliest(row.get(4)?, row.get(5)?, row.get(6)?),
        tenant: earliest(row.get(7)?, row.get(8)?, row.get(9)?),
        has_error: row.get(10)?,
        span_count: row.get(11)?,
        input_tokens: row.get(12)?,
        output_tokens: row.get(13)?,
        cost_nano_usd: row.get(14)?,
        models: set(15)?,
        api_keys: set(16)?,
    })
}

/// The buffers of the `Spans`, `Models` and `ApiKeys` columns, reused from row to row
/// (SQLite copies the bound text).
#[derive(Default)]
struct Buffers {
    group: Vec<u8>,
    models: Vec<u8>,
    api_keys: Vec<u8>,
}

/// Runs `sql` (one of the `write_trace_entry!` statements) with `entry` as `trace_id`'s row and
/// answers whether it wrote the row.
fn write_entry(
    transaction: &Transaction<'_>,
    sql: &str,
    trace_id: &str,
    entry: &TraceEntry,
    sets: &mut Buffers,
) -> Result<bool, StoreError> {
    let (agent, agent_timestamp, agent_span_id) = columns_of(entry.agent.as_ref());
    let (tenant, tenant_timestamp, tenant_span_id) = columns_of(entry.tenant.as_ref());
    let mut statement = transaction.prepare_cached(sql).map_err(store_error)?;
    let written = statement
        .execute(params![
            trace_id,
            entry.start_ns,
            entry.end_ns,
            entry.root.value,
            entry.root.span_id,
            agent,
            agent_timestamp,
            agent_span_id,
            tenant,
            tenant_timestamp,
            tenant_span_id,
            entry.has_error,
            entry.span_count,
            entry.input_tokens,
            entry.output_tokens,
            entry.cost_nano_usd,
            set_to_json(&entry.models, &mut sets.models).map_err(encode_error)?,
            set_to_json(&entry.api_keys, &mut sets.api_keys).map_err(encode_error)?,
        ])
        .map_err(store_error)?;
    Ok(written > 0)
}

/// The value, timestamp and span id columns of an "earliest" rule; empty when no span had one.
fn columns_of(earliest: Option<&Earliest>) -> (&str, i64, &str) {
    earliest.map_or(("", 0, ""), |earliest| (earliest.value.as_str(), earliest.timestamp_ns, earliest.span_id.as_str()))
}

fn encode_error(error: std::io::Error) -> StoreError {
    StoreError::Rejected {
        message: format!("span field could not be encoded as JSON: {error}"),
        source: Some(Box::new(error)),
    }
}
