//! The rows Glassbox writes. `SpanRow` mirrors the OpenTelemetry Collector ClickHouse
//! exporter's `otel_traces` columns, so Grafana's trace view and spans from other
//! OpenTelemetry sources can share the table; `UsageRow` is one model call with its cost.

use std::borrow::Cow;

/// An attribute's key. Most keys are the `&'static str` names of `tracing` fields and are
/// borrowed, not allocated per span (and freed on the writer's thread); keys read back from a
/// store or a journal are owned.
pub type AttributeKey = Cow<'static, str>;

/// An attribute's value (and an event's name): text that is stored inline up to 24 bytes, as
/// most values are (ids, names, numbers, flags); a longer `&'static str` made with
/// `AttributeText::const_new` is borrowed, anything else longer is on the heap. A benchmark
/// request's rows held some 140 heap strings, each allocated on a request thread and freed on
/// the store's write thread, the costliest kind of free for the allocator.
pub type AttributeText = compact_str::CompactString;

/// A span's, event's or link's attributes, in the order they were recorded.
pub type Attributes = Vec<(AttributeKey, AttributeText)>;

/// One finished span. (`Default` is an empty row, for building one field by field.)
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanRow {
    /// Start time, nanoseconds since the Unix epoch (`Timestamp DateTime64(9)`).
    pub timestamp_ns: i64,
    /// 32 lower-case hex characters.
    pub trace_id: String,
    /// 16 lower-case hex characters.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    pub span_name: String,
    /// `Server`, `Client`, `Internal`, `Producer`, `Consumer` or `Unspecified`, as the
    /// Collector's exporter writes it (`SPAN_KIND_*` names are not used).
    pub span_kind: String,
    pub service_name: String,
    pub resource_attributes: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub span_attributes: Attributes,
    pub duration_ns: u64,
    pub status_code: StatusCode,
    pub status_message: String,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
}

impl SpanRow {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.span_attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }
}

/// The Collector exporter's `StatusCode` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "Unset",
            Self::Ok => "Ok",
            Self::Error => "Error",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "Ok" | "STATUS_CODE_OK" => Self::Ok,
            "Error" | "STATUS_CODE_ERROR" => Self::Error,
            _ => Self::Unset,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub timestamp_ns: i64,
    pub name: AttributeText,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: Attributes,
}

/// One model call: who made it, what it used, what it cost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageRow {
    /// Start of the call, nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    pub trace_id: String,
    /// The `chat {model}` span's id; unique per row, which makes retries idempotent.
    pub span_id: String,
    pub tenant: String,
    pub api_key_id: String,
    pub agent: String,
    pub workflow: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Cost in billionths of a US dollar (`Decimal(18, 9)` in ClickHouse).
    pub cost_nano_usd: i64,
    /// No pricing entry matched the model: the cost is 0 and says so.
    pub cost_unknown: bool,
    pub latency_ns: u64,
    /// Time to the first streamed token; 0 for a call that was not streamed.
    pub time_to_first_token_ns: u64,
    /// `ok` or `error`.
    pub status: String,
    /// The error's machine name (`provider_timeout`, ...), empty when `status` is `ok`.
    pub error_type: String,
}
