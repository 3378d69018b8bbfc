//! Log output of the `glassbox` binary: human-readable text (coloured on a terminal) by
//! default, or one JSON object per line (`--log-format json`) for log shippers. `RUST_LOG`
//! chooses what is logged, as usual.
//!
//! Every line logged inside a request carries the request's trace id: the request span
//! records it as its `trace_id` field, and [`TraceIdLayer`] keeps it where both formats find
//! it (`trace_id=` at the end of a text line, a top-level `trace_id` in a JSON line). Lines
//! leave out every other span field: a model call's span holds the prompt, which the agent's
//! capture policy governs and the logs must not copy. So the formatting layer sees events only
//! ([`events_only`]): it does not format the fields of every span of every request (16,000
//! instructions a benchmark request) for lines that do not show them.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _};
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
                .event_format(TextLines)
                .boxed()
        }
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).event_format(JsonLines).boxed()
        }
    }
}

/// The formatting layer's filter: the events `filter` (`RUST_LOG`) enables, and no span.
pub fn events_only<S>(filter: EnvFilter) -> impl tracing_subscriber::layer::Filter<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    filter.and(tracing_subscriber::filter::filter_fn(|metadata| metadata.is_event()))
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

/// Where an event happened: the name of its innermost span and the trace id of its request.
#[derive(Debug, Default)]
struct EventContext {
    span: Option<&'static str>,
    trace_id: Option<String>,
}

/// Looked up in the registry itself: the formatting layer sees no span ([`events_only`]).
fn event_context(event: &Event<'_>) -> EventContext {
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let id = match event.parent() {
            Some(id) => id.clone(),
            None if event.is_contextual() => dispatch.current_span().id()?.clone(),
            None => return None,
        };
        let span = registry.span(&id)?;
        let trace_id =
            span.scope().find_map(|span| span.extensions().get::<RequestTraceId>().map(|trace_id| trace_id.0.clone()));
        Some(EventContext { span: Some(span.name()), trace_id })
    })
    .unwrap_or_default()
}

/// `<timestamp> <LEVEL> <target>: <message> <fields> trace_id=<id>` per line, the level in
/// colour when the layer writes ANSI escapes (standard error is a terminal).
#[derive(Debug, Clone, Copy)]
pub struct TextLines;

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut writer)?;
        let metadata = event.metadata();
        let level = metadata.level();
        if writer.has_ansi_escapes() {
            let colour = match *level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "32",
                Level::DEBUG => "34",
                Level::TRACE => "35",
            };
            write!(writer, " \x1b[{colour}m{level:>5}\x1b[0m ")?;
        } else {
            write!(writer, " {level:>5} ")?;
        }
        write!(writer, "{}: ", metadata.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        if let Some(trace_id) = event_context(event).trace_id {
            write!(writer, " {TRACE_ID_FIELD}={trace_id}")?;
        }
        writeln!(writer)
    }
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
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::with_capacity(32);
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".to_owned(), Value::from(timestamp));
        let metadata = event.metadata();
        line.insert("level".to_owned(), Value::from(metadata.level().as_str()));
        line.insert("target".to_owned(), Value::from(metadata.target()));
        event.record(&mut JsonVisitor(&mut line));
        let context = event_context(event);
        if let Some(name) = context.span {
            line.insert("span".to_owned(), Value::from(name));
        }
        if let Some(trace_id) = context.trace_id {
            line.insert(TRACE_ID_FIELD.to_owned(), Value::from(trace_id));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}
