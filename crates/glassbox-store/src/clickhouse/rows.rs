//! The wire shapes of `spans` and `usage` rows (RowBinary with names and types, checked
//! against the table by the crate's validation), and their conversion to the shared rows.
//!
//! Map columns are lists of pairs (`rows::Attributes`) (ClickHouse keeps a Map's order and duplicates);
//! the Nested `Events` / `Links` columns are parallel arrays named `Events.Timestamp`, ...;
//! `DateTime64(9)` is `i64` nanoseconds and `Decimal(18, 9)` its raw `i64` (nano-USD).

use serde::{Deserialize, Serialize};

use crate::rows::{AttributeKey, AttributeText, Attributes, SpanEvent, SpanLink, SpanRow, StatusCode, UsageRow};

/// A span as inserted, borrowing from the caller's [`SpanRow`].
#[derive(clickhouse::Row, Serialize)]
pub(super) struct SpanInsert<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "TraceId")]
    trace_id: &'a str,
    #[serde(rename = "SpanId")]
    span_id: &'a str,
    #[serde(rename = "ParentSpanId")]
    parent_span_id: &'a str,
    #[serde(rename = "TraceState")]
    trace_state: &'a str,
    #[serde(rename = "SpanName")]
    span_name: &'a str,
    #[serde(rename = "SpanKind")]
    span_kind: &'a str,
    #[serde(rename = "ServiceName")]
    service_name: &'a str,
    #[serde(rename = "ResourceAttributes")]
    resource_attributes: &'a [(AttributeKey, AttributeText)],
    #[serde(rename = "ScopeName")]
    scope_name: &'a str,
    #[serde(rename = "ScopeVersion")]
    scope_version: &'a str,
    #[serde(rename = "SpanAttributes")]
    span_attributes: &'a [(AttributeKey, AttributeText)],
    #[serde(rename = "Duration")]
    duration: u64,
    #[serde(rename = "StatusCode")]
    status_code: &'static str,
    #[serde(rename = "StatusMessage")]
    status_message: &'a str,
    #[serde(rename = "Events.Timestamp")]
    events_timestamp: Vec<i64>,
    #[serde(rename = "Events.Name")]
    events_name: Vec<&'a str>,
    #[serde(rename = "Events.Attributes")]
    events_attributes: Vec<&'a [(AttributeKey, AttributeText)]>,
    #[serde(rename = "Links.TraceId")]
    links_trace_id: Vec<&'a str>,
    #[serde(rename = "Links.SpanId")]
    links_span_id: Vec<&'a str>,
    #[serde(rename = "Links.TraceState")]
    links_trace_state: Vec<&'a str>,
    #[serde(rename = "Links.Attributes")]
    links_attributes: Vec<&'a [(AttributeKey, AttributeText)]>,
}

impl<'a> SpanInsert<'a> {
    pub(super) fn from_row(row: &'a SpanRow) -> Self {
        Self {
            timestamp: row.timestamp_ns,
            trace_id: &row.trace_id,
            span_id: &row.span_id,
            parent_span_id: &row.parent_span_id,
            trace_state: &row.trace_state,
            span_name: &row.span_name,
            span_kind: &row.span_kind,
            service_name: &row.service_name,
            resource_attributes: &row.resource_attributes,
            scope_name: &row.scope_name,
            scope_version: &row.scope_version,
            span_attributes: &row.span_attributes,
            duration: row.duration_ns,
            status_code: row.status_code.as_str(),
            status_message: &row.status_message,
            events_timestamp: row.events.iter().map(|event| event.timestamp_ns).collect(),
            events_name: row.events.iter().map(|event| event.name.as_str()).collect(),
            events_attributes: row.events.iter().map(|event| event.attributes.as_slice()).collect(),
            links_trace_id: row.links.iter().map(|link| link.trace_id.as_str()).collect(),
            links_span_id: row.links.iter().map(|link| link.span_id.as_str()).collect(),
            links_trace_state: row.links.iter().map(|link| link.trace_state.as_str()).collect(),
            links_attributes: row.links.iter().map(|link| link.attributes.as_slice()).collect(),
        }
    }
}

/// A span as read back (`SELECT ?fields FROM spans`).
#[derive(clickhouse::Row, Deserialize)]
pub(super) struct SpanFetch {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "TraceId")]
    trace_id: String,
    #[serde(rename = "SpanId")]
    span_id: String,
    #[serde(rename = "ParentSpanId")]
    parent_span_id: String,
    #[serde(rename = "TraceState")]
    trace_state: String,
    #[serde(rename = "SpanName")]
    span_name: String,
    #[serde(rename = "SpanKind")]
    span_kind: String,
    #[serde(rename = "ServiceName")]
    service_name: String,
    #[serde(rename = "ResourceAttributes")]
    resource_attributes: Attributes,
    #[serde(rename = "ScopeName")]
    scope_name: String,
    #[serde(rename = "ScopeVersion")]
    scope_version: String,
    #[serde(rename = "SpanAttributes")]
    span_attributes: Attributes,
    #[serde(rename = "Duration")]
    duration: u64,
    #[serde(rename = "StatusCode")]
    status_code: String,
    #[serde(rename = "StatusMessage")]
    status_message: String,
    #[serde(rename = "Events.Timestamp")]
    events_timestamp: Vec<i64>,
    #[serde(rename = "Events.Name")]
    events_name: Vec<AttributeText>,
    #[serde(rename = "Events.Attributes")]
    events_attributes: Vec<Attributes>,
    #[serde(rename = "Links.TraceId")]
    links_trace_id: Vec<String>,
    #[serde(rename = "Links.SpanId")]
    links_span_id: Vec<String>,
    #[serde(rename = "Links.TraceState")]
    links_trace_state: Vec<String>,
    #[serde(rename = "Links.Attributes")]
    links_attributes: Vec<Attributes>,
}

impl SpanFetch {
    /// ClickHouse keeps the arrays of one Nested column the same length (an insert with
    /// unequal lengths is refused), so zipping them loses nothing.
    pub(super) fn into_row(self) -> SpanRow {
        let events = self
            .events_timestamp
            .into_iter()
            .zip(self.events_name)
            .zip(self.events_attributes)
            .map(|((timestamp_ns, name), attributes)| SpanEvent { timestamp_ns, name, attributes })
            .collect();
        let links = self
            .links_trace_id
            .into_iter()
            .zip(self.links_span_id)
            .zip(self.links_trace_state)
            .zip(self.links_attributes)
            .map(|(((trace_id, span_id), trace_state), attributes)| SpanLink {
                trace_id,
                span_id,
                trace_state,
                attributes,
            })
            .collect();
        SpanRow {
            timestamp_ns: self.timestamp,
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            trace_state: self.trace_state,
            span_name: self.span_name,
            span_kind: self.span_kind,
            service_name: self.service_name,
            resource_attributes: self.resource_attributes,
            scope_name: self.scope_name,
            scope_version: self.scope_version,
            span_attributes: self.span_attributes,
            duration_ns: self.duration,
            status_code: StatusCode::parse(&self.status_code),
            status_message: self.status_message,
            events,
            links,
        }
    }
}

/// A usage row as inserted, borrowing from the caller's [`UsageRow`].
#[derive(clickhouse::Row, Serialize)]
pub(super) struct UsageInsert<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "TraceId")]
    trace_id: &'a str,
    #[serde(rename = "SpanId")]
    span_id: &'a str,
    #[serde(rename = "Tenant")]
    tenant: &'a str,
    #[serde(rename = "ApiKeyId")]
    api_key_id: &'a str,
    #[serde(rename = "Agent")]
    agent: &'a str,
    #[serde(rename = "Workflow")]
    workflow: &'a str,
    #[serde(rename = "Provider")]
    provider: &'a str,
    #[serde(rename = "Model")]
    model: &'a str,
    #[serde(rename = "InputTokens")]
    input_tokens: u64,
    #[serde(rename = "OutputTokens")]
    output_tokens: u64,
    #[serde(rename = "CachedInputTokens")]
    cached_input_tokens: u64,
    #[serde(rename = "ReasoningTokens")]
    reasoning_tokens: u64,
    /// `Decimal(18, 9)`: the raw value is nano-USD.
    #[serde(rename = "CostUsd")]
    cost_usd: i64,
    #[serde(rename = "CostUnknown")]
    cost_unknown: bool,
    #[serde(rename = "LatencyNs")]
    latency_ns: u64,
    #[serde(rename = "TimeToFirstTokenNs")]
    time_to_first_token_ns: u64,
    #[serde(rename = "Status")]
    status: &'a str,
    #[serde(rename = "ErrorType")]
    error_type: &'a str,
}

impl<'a> UsageInsert<'a> {
    pub(super) fn from_row(row: &'a UsageRow) -> Self {
        Self {
            timestamp: row.timestamp_ns,
            trace_id: &row.trace_id,
            span_id: &row.span_id,
            tenant: &row.tenant,
            api_key_id: &row.api_key_id,
            agent: &row.agent,
            workflow: &row.workflow,
            provider: &row.provider,
            model: &row.model,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            cached_input_tokens: row.cached_input_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost_usd: row.cost_nano_usd,
            cost_unknown: row.cost_unknown,
            latency_ns: row.latency_ns,
            time_to_first_token_ns: row.time_to_first_token_ns,
            status: &row.status,
            error_type: &row.error_type,
        }
    }
}

/// A usage row as read back (`SELECT ?fields FROM usage`).
#[derive(clickhouse::Row, Deserialize)]
pub(super) struct UsageFetch {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "TraceId")]
    trace_id: String,
    #[serde(rename = "SpanId")]
    span_id: String,
    #[serde(rename = "Tenant")]
    tenant: String,
    #[serde(rename = "ApiKeyId")]
    api_key_id: String,
    #[serde(rename = "Agent")]
    agent: String,
    #[serde(rename = "Workflow")]
    workflow: String,
    #[serde(rename = "Provider")]
    provider: String,
    #[serde(rename = "Model")]
    model: String,
    #[serde(rename = "InputTokens")]
    input_tokens: u64,
    #[serde(rename = "OutputTokens")]
    output_tokens: u64,
    #[serde(rename = "CachedInputTokens")]
    cached_input_tokens: u64,
    #[serde(rename = "ReasoningTokens")]
    reasoning_tokens: u64,
    #[serde(rename = "CostUsd")]
    cost_usd: i64,
    #[serde(rename = "CostUnknown")]
    cost_unknown: bool,
    #[serde(rename = "LatencyNs")]
    latency_ns: u64,
    #[serde(rename = "TimeToFirstTokenNs")]
    time_to_first_token_ns: u64,
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "ErrorType")]
    error_type: String,
}

impl UsageFetch {
    pub(super) fn into_row(self) -> UsageRow {
        UsageRow {
            timestamp_ns: self.timestamp,
            trace_id: self.trace_id,
            span_id: self.span_id,
            tenant: self.tenant,
            api_key_id: self.api_key_id,
            agent: self.agent,
            workflow: self.workflow,
            provider: self.provider,
            model: self.model,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_input_tokens: self.cached_input_tokens,
            reasoning_tokens: self.reasoning_tokens,
            cost_nano_usd: self.cost_usd,
            cost_unknown: self.cost_unknown,
            latency_ns: self.latency_ns,
            time_to_first_token_ns: self.time_to_first_token_ns,
            status: self.status,
            error_type: self.error_type,
        }
    }
}
