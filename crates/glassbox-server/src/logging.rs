//! Log output of the `glassbox` binary: human-readable text (coloured on a terminal) by
//! default, or one JSON object per line (`--log-format json`) for log shippers. `RUST_LOG`
//! chooses what is logged, as usual.
//!
//! Every line logged inside a request carries the request's trace id: the request span
//! records it as its `trace_id` field, text lines show it in the span context, and JSON lines
//! have it as a top-level `trace_id` (found by [`TraceIdLayer`] on the request span). JSON
//! lines deliberately leave out the other span fields: a model call's span holds the prompt,
//! which the agent's capture policy governs and the logs must not copy.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime as _;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The field of the request span that holds the trace id (32 hex digits).
pub const TRACE_ID_FIELD: &str = "trace_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines; colours when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The formatting layer for `format`, writing to standard error.
pub fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    match format {
        LogFormat::Text => {
            use std::io::IsTerminal as _;
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .boxed()
        }
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).event_format(JsonLines).boxed()
        }
    }
}

/// The trace id a span (the request span) recorded, kept in the span's extensions.
#[derive(Debug, Clone)]
struct RequestTraceId(String);

/// Keeps the `trace_id` field of spans where [`JsonLines`] can find it. Install it without a
/// filter, so it sees the request span whatever `RUST_LOG` says.
#[derive(Debug, Default)]
pub struct TraceIdLayer;

struct TraceIdVisitor(Option<String>);

impl Visit for TraceIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == TRACE_ID_FIELD {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == TRACE_ID_FIELD {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut visitor = TraceIdVisitor(None);
        attrs.record(&mut visitor);
        // The registry is searched only when the span has a trace id (the request span).
        if let Some(trace_id) = visitor.0
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(RequestTraceId(trace_id));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = TraceIdVisitor(None);
        values.record(&mut visitor);
        if let Some(trace_id) = visitor.0
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().replace(RequestTraceId(trace_id));
        }
    }
}

/// The trace id of the request the event belongs to. Looked up in the registry itself, not
/// through the formatting layer's context: with `RUST_LOG=warn` the request span is disabled
/// for the formatting layer, yet its warnings must still carry the trace id.
fn request_trace_id(event: &Event<'_>) -> Option<String> {
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let id = match event.parent() {
            Some(id) => id.clone(),
            None if event.is_contextual() => dispatch.current_span().id()?.clone(),
            None => return None,
        };
        let span = registry.span(&id)?;
        span.scope().find_map(|span| span.extensions().get::<RequestTraceId>().map(|trace_id| trace_id.0.clone()))
    })
}

/// `{"timestamp", "level", "target", "message", <event fields>, "span", "trace_id"}` per line.
#[derive(Debug, Clone, Copy)]
pub struct JsonLines;

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), Value::from(crate::error::chain(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::with_capacity(32);
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".to_owned(), Value::from(timestamp));
        let metadata = event.metadata();
        line.insert("level".to_owned(), Value::from(metadata.level().as_str()));
        line.insert("target".to_owned(), Value::from(metadata.target()));
        event.record(&mut JsonVisitor(&mut line));
        if let Some(name) = ctx.event_scope().and_then(|mut scope| scope.next()).map(|span| span.name()) {
            line.insert("span".to_owned(), Value::from(name));
        }
        if let Some(trace_id) = request_trace_id(event) {
            line.insert(TRACE_ID_FIELD.to_owned(), Value::from(trace_id));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}
