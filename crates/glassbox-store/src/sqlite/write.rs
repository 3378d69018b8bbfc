//! Batch inserts: spans (with their trace index rows, in the same transaction) and usage.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::codec::{attributes_to_json, events_to_json, links_to_json, set_from_json, set_to_json, to_sql_int};
use super::store_error;
use super::trace_index::{Earliest, TraceEntry};
use crate::backend::StoreError;
use crate::rows::{SpanRow, UsageRow};

const INSERT_SPAN: &str = "INSERT OR IGNORE INTO spans (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, \
     SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, \
     StatusCode, StatusMessage, Events, Links, RequestOrBlock) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

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

/// The write thread offers its core back (`sched_yield`) after every this many span rows of a
/// batch, inside the transaction. A 1,000-row batch is some 20 ms of CPU (5 ms at SQLite's
/// default of 250 rows, `Backend::batch_rows`); under Linux's scheduler a request
/// thread woken on the writer's core waited for the writer's time slice to run out, and at
/// half of the peak rate those waits were most of Glassbox's added p99. A
/// yield when no request thread waits returns at once. Measured (BENCHMARKS.md, two A/Bs of
/// 4 alternated rounds at 1,800 req/s): added p99 +3.09 against +4.24 ms and +3.62 against
/// +4.06 ms, lower in 7 of the 8 rounds.
const YIELD_EVERY_SPANS: usize = 32;

/// A usage row cost the writer about half of a span row (30 K against 55 K instructions, with
/// the 5 B-trees of usage before migration 11), so 96 of them are of the order of 32 span rows'
/// work between yields; 96 is the value measured.
pub(super) const YIELD_EVERY_USAGE: usize = YIELD_EVERY_SPANS * 3;

/// A trace's index row (its insert into three B-trees; at times a read and a rewrite) costs the
/// writer about 22 K instructions against about 27 K for a span row (callgrind, the benchmark's
/// configuration), so 40 of them are about 32 span rows' work between yields.
const YIELD_EVERY_TRACES: usize = 40;

/// Lets other threads run on this core every `every` rows (see [`YIELD_EVERY_SPANS`]).
/// There, too, a write thread under `SCHED_IDLE` checks whether it must catch up
/// (`write_thread::keep_up`).
pub(super) fn offer_the_core(index: usize, every: usize) {
    if index > 0 && index.is_multiple_of(every) {
        std::thread::yield_now();
        super::write_thread::keep_up();
    }
}

/// Inserts the spans that are not stored yet and folds exactly those into their traces'
/// index rows, all in one transaction: a batch is stored whole or not at all.
pub(super) fn insert_spans(connection: &mut Connection, rows: &[SpanRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    let mut entries: BTreeMap<&str, TraceEntry> = BTreeMap::new();
    {
        let mut insert = transaction.prepare_cached(INSERT_SPAN).map_err(store_error)?;
        let (mut resource, mut attributes, mut events, mut links) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut previous: Option<&SpanRow> = None;
        for (index, span) in rows.iter().enumerate() {
            offer_the_core(index, YIELD_EVERY_SPANS);
            bind_span(&mut insert, span, previous, [&mut resource, &mut attributes, &mut events, &mut links])?;
            previous = Some(span);
            let added = insert.raw_execute().map_err(store_error)?;
            if added == 0 {
                continue;
            }
            let entry = TraceEntry::from_span(span);
            match entries.entry(&span.trace_id) {
                Entry::Occupied(mut earlier) => earlier.get_mut().merge(entry),
                Entry::Vacant(slot) => {
                    slot.insert(entry);
                }
            }
        }
    }
    let mut sets = SetBuffers::default();
    for (index, (trace_id, entry)) in entries.into_iter().enumerate() {
        offer_the_core(index, YIELD_EVERY_TRACES);
        if write_entry(&transaction, ADD_TRACE_ENTRY, trace_id, &entry, &mut sets)? {
            continue;
        }
        // The index holds the trace already (its other spans came in an earlier batch).
        let merged = match stored_entry(&transaction, trace_id)? {
            Some(mut stored) => {
                stored.merge(entry);
                stored
            }
            None => entry,
        };
        write_entry(&transaction, REPLACE_TRACE_ENTRY, trace_id, &merged, &mut sets)?;
    }
    transaction.commit().map_err(store_error)
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

/// The buffers of the `Models` and `ApiKeys` columns, reused from row to row.
#[derive(Default)]
struct SetBuffers {
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
    sets: &mut SetBuffers,
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

/// Binds the columns of `span` to `insert` (`INSERT_SPAN`). A statement keeps its bindings
/// from one execution to the next, so the columns that are the same on most of a batch's rows
/// (service, resource, scope, trace state, links) are bound only where they differ from
/// `previous`'s, the row executed last: 6 fewer text copies into SQLite per span row. The JSON
/// columns are encoded into `buffers` (resource, attributes, events, links), reused from row to
/// row (SQLite copies the bound text).
fn bind_span(
    insert: &mut rusqlite::Statement<'_>,
    span: &SpanRow,
    previous: Option<&SpanRow>,
    buffers: [&mut Vec<u8>; 4],
) -> Result<(), StoreError> {
    let [resource, attributes, events, links] = buffers;
    let changed = |same: fn(&SpanRow, &SpanRow) -> bool| previous.is_none_or(|previous| !same(previous, span));
    let bind = |insert: &mut rusqlite::Statement<'_>, index: usize, value: &dyn rusqlite::ToSql| {
        insert.raw_bind_parameter(index, value).map_err(store_error)
    };
    bind(insert, 1, &span.timestamp_ns)?;
    bind(insert, 2, &span.trace_id)?;
    bind(insert, 3, &span.span_id)?;
    bind(insert, 4, &span.parent_span_id)?;
    if changed(|a, b| a.trace_state == b.trace_state) {
        bind(insert, 5, &span.trace_state)?;
    }
    bind(insert, 6, &span.span_name)?;
    bind(insert, 7, &span.span_kind)?;
    if changed(|a, b| a.service_name == b.service_name) {
        bind(insert, 8, &span.service_name)?;
    }
    if changed(|a, b| a.resource_attributes == b.resource_attributes) {
        bind(insert, 9, &attributes_to_json(&span.resource_attributes, resource).map_err(encode_error)?)?;
    }
    if changed(|a, b| a.scope_name == b.scope_name) {
        bind(insert, 10, &span.scope_name)?;
    }
    if changed(|a, b| a.scope_version == b.scope_version) {
        bind(insert, 11, &span.scope_version)?;
    }
    bind(insert, 12, &attributes_to_json(&span.span_attributes, attributes).map_err(encode_error)?)?;
    bind(insert, 13, &to_sql_int(span.duration_ns))?;
    bind(insert, 14, &span.status_code.as_str())?;
    bind(insert, 15, &span.status_message)?;
    bind(insert, 16, &events_to_json(&span.events, events).map_err(encode_error)?)?;
    if changed(|a, b| a.links == b.links) {
        bind(insert, 17, &links_to_json(&span.links, links).map_err(encode_error)?)?;
    }
    bind(insert, 18, &is_request_or_block(span))?;
    Ok(())
}

/// The value, timestamp and span id columns of an "earliest" rule; empty when no span had one.
fn columns_of(earliest: Option<&Earliest>) -> (&str, i64, &str) {
    earliest.map_or(("", 0, ""), |earliest| (earliest.value.as_str(), earliest.timestamp_ns, earliest.span_id.as_str()))
}

/// Whether the `spans_requests` index holds `span` (migration 10): a request (`Server`) span,
/// or one that carries a guardrail block. The overview's reader decides what each one counts as.
fn is_request_or_block(span: &SpanRow) -> bool {
    span.span_kind == "Server" || span.attribute("glassbox.tripwire.processor").is_some()
}

fn encode_error(error: std::io::Error) -> StoreError {
    StoreError::Rejected {
        message: format!("span field could not be encoded as JSON: {error}"),
        source: Some(Box::new(error)),
    }
}
