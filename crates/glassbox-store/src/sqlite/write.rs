//! Batch inserts: spans (one group per trace, with their trace index rows, in the same
//! transaction) and usage.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::codec::{set_from_json, set_to_json, span_group_to_json, to_sql_int};
use super::store_error;
use super::trace_index::{Earliest, TENANT_ATTRIBUTE, TraceEntry};
use crate::backend::StoreError;
use crate::rows::{SpanRow, UsageRow};

const INSERT_GROUP: &str = "INSERT INTO span_groups (TraceId, Part, Spans) VALUES (?1, ?2, ?3)";

const INSERT_REQUEST_SPAN: &str = "INSERT OR IGNORE INTO request_spans (Timestamp, TraceId, SpanId, Duration, \
     Server, StatusCode, Request, HttpStatus, Tripwire, Tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const INSERT_WORKFLOW_SPAN: &str =
    "INSERT OR IGNORE INTO workflow_spans (RunId, Timestamp, TraceId, SpanId) VALUES (?1, ?2, ?3, ?4)";

/// The ids of a trace's stored spans, and the number of its next group.
const STORED_SPAN_IDS: &str = "SELECT s.value ->> 'SpanId' FROM span_groups AS g, json_each(g.Spans) AS s \
     WHERE g.TraceId = ?1";
const NEXT_PART: &str = "SELECT coalesce(max(Part) + 1, 0) FROM span_groups WHERE TraceId = ?1";

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

/// The write thread offers its core back (`sched_yield`) after every this many traces of a
/// batch, inside the transaction. A 1,000-row batch is some 20 ms of CPU (5 ms at SQLite's
/// default of 250 rows, `Backend::batch_rows`); under Linux's scheduler a request
/// thread woken on the writer's core waited for the writer's time slice to run out, and at
/// half of the peak rate those waits were most of Glassbox's added p99. A
/// yield when no request thread waits returns at once. Measured with one row per span
/// (BENCHMARKS.md, two A/Bs of 4 alternated rounds at 1,800 req/s, a yield every 32 span
/// rows): added p99 +3.09 against +4.24 ms and +3.62 against +4.06 ms, lower in 7 of the 8
/// rounds. Those 32 span rows were about 0.9 M instructions (27 K each); a benchmark trace
/// (3 spans: its group, its index row and its request row) costs the writer about 91 K
/// (callgrind, BENCHMARKS.md), so 10 traces keep the yields as far apart.
const YIELD_EVERY_TRACES: usize = 10;

/// A usage row cost the writer about half of a span row of one row per span (30 K against 55 K
/// instructions, with the 5 B-trees of usage before migration 11), so 96 of them are of the
/// order of 32 such span rows' work between yields; 96 is the value measured.
pub(super) const YIELD_EVERY_USAGE: usize = 96;

/// Lets other threads run on this core every `every` rows (see [`YIELD_EVERY_SPANS`]).
/// There, too, a write thread under `SCHED_IDLE` checks whether it must catch up
/// (`write_thread::keep_up`).
pub(super) fn offer_the_core(index: usize, every: usize) {
    if index > 0 && index.is_multiple_of(every) {
        std::thread::yield_now();
        super::write_thread::keep_up();
    }
}

/// Inserts the spans that are not stored yet, one group per trace, and folds exactly those into
/// their traces' index rows, all in one transaction: a batch is stored whole or not at all.
///
/// A trace the index does not hold yet has no stored spans (both are written in the same
/// transactions), so its spans go into its group 0 unread. Of a trace it holds, the stored
/// groups' span ids are read and only the other spans are added, as its next group: a batch
/// replayed from the spool, whichever way it groups a trace's spans, stores none twice.
pub(super) fn insert_spans(connection: &mut Connection, rows: &[SpanRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    // By trace, then span id; the first of a batch's copies of a span is kept (a stable sort).
    let mut spans: Vec<&SpanRow> = rows.iter().collect();
    spans.sort_by(|a, b| (&a.trace_id, &a.span_id).cmp(&(&b.trace_id, &b.span_id)));
    spans.dedup_by(|a, b| a.trace_id == b.trace_id && a.span_id == b.span_id);
    let mut buffers = Buffers::default();
    for (index, trace) in spans.chunk_by(|a, b| a.trace_id == b.trace_id).enumerate() {
        offer_the_core(index, YIELD_EVERY_TRACES);
        let Some(entry) = entry_of(trace) else { continue };
        let Some(trace_id) = trace.first().map(|span| span.trace_id.as_str()) else { continue };
        if write_entry(&transaction, ADD_TRACE_ENTRY, trace_id, &entry, &mut buffers)? {
            insert_group(&transaction, trace_id, 0, trace, &mut buffers)?;
            continue;
        }
        // The index holds the trace already (its other spans came in an earlier batch).
        let stored = stored_span_ids(&transaction, trace_id)?;
        let fresh: Vec<&SpanRow> =
            trace.iter().copied().filter(|span| stored.binary_search(&span.span_id).is_err()).collect();
        let Some(entry) = entry_of(&fresh) else { continue };
        let merged = match stored_entry(&transaction, trace_id)? {
            Some(mut stored) => {
                stored.merge(entry);
                stored
            }
            None => entry,
        };
        write_entry(&transaction, REPLACE_TRACE_ENTRY, trace_id, &merged, &mut buffers)?;
        let part: i64 = transaction
            .prepare_cached(NEXT_PART)
            .and_then(|mut next| next.query_row([trace_id], |row| row.get(0)))
            .map_err(store_error)?;
        insert_group(&transaction, trace_id, part, &fresh, &mut buffers)?;
    }
    transaction.commit().map_err(store_error)
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

/// The ids of the spans stored for `trace_id`, sorted.
fn stored_span_ids(transaction: &Transaction<'_>, trace_id: &str) -> Result<Vec<String>, StoreError> {
    let mut select = transaction.prepare_cached(STORED_SPAN_IDS).map_err(store_error)?;
    let ids = select.query_map([trace_id], |row| row.get::<_, String>(0)).map_err(store_error)?;
    let mut ids = ids.collect::<Result<Vec<_>, _>>().map_err(store_error)?;
    ids.sort_unstable();
    Ok(ids)
}

/// Writes `spans` (new to the store, all of `trace_id`) as the trace's group `part`, with a
/// `request_spans` row for each request or block span and a `workflow_spans` row for each
/// workflow span with a run id.
fn insert_group(
    transaction: &Transaction<'_>,
    trace_id: &str,
    part: i64,
    spans: &[&SpanRow],
    buffers: &mut Buffers,
) -> Result<(), StoreError> {
    let json = span_group_to_json(spans, &mut buffers.group).map_err(encode_error)?;
    let mut insert = transaction.prepare_cached(INSERT_GROUP).map_err(store_error)?;
    insert.execute(params![trace_id, part, json]).map_err(store_error)?;
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
    Ok(())
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
