//! Log output of the `glassbox` binary: human-readable text (coloured on a terminal) by
//! default, or one JSON object per line (`--log-format json`) for log shippers. `RUST_LOG`
//! chooses what is logged, as usual.
//!
//! Every line logged inside a request carries the request's trace id: the request span
//! records it as its `trace_id` field, and [`TraceIdLayer`] keeps it where both formats find
//! it (`trace_id=` at the end of a text line, a top-level `trace_id` in a JSON line). Lines
//! leave out every other span field: a model call's span holds the prompt, which the agent's
//! capture policy governs and the logs must not copy. So the formatting layer sees events only
//! ([`EventsGate`] in `serve`, [`fmt_filter`] elsewhere): it does not format the fields of
//! every span of every request (16,000 instructions a benchmark request) for lines that do
//! not show them. (A `RUST_LOG` that selects by span, `[span{field=value}]=level`, lets spans
//! through [`fmt_filter`], since `EnvFilter` needs them to know which are open; their fields
//! are still never printed.)

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Level, Subscriber, span};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt};
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
    LogLines::stderr(format).0
}

/// A formatting layer of [`TextLines`] or [`JsonLines`], which never read a span's fields
/// (`tracing-subscriber`'s own formats do, and expect the layer to have formatted them when
/// the span opened). That is what lets [`EventsGate`] hand it events and nothing else.
pub struct LogLines<S>(Box<dyn Layer<S> + Send + Sync>);

impl<S> LogLines<S>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    /// `format` to standard error; colours when it is a terminal (text only).
    pub fn stderr(format: LogFormat) -> Self {
        use std::io::IsTerminal as _;
        Self::new(format, std::io::stderr, std::io::stderr().is_terminal())
    }

    pub fn new<W>(format: LogFormat, writer: W, ansi: bool) -> Self
    where
        W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
    {
        let registered = Registered::default();
        let layer = tracing_subscriber::fmt::layer().with_writer(writer);
        let formatted = match format {
            LogFormat::Text => layer.with_ansi(ansi).event_format(TextLines(registered.clone())).boxed(),
            LogFormat::Json => layer.event_format(JsonLines(registered.clone())).boxed(),
        };
        Self(formatted.and_then(RegisterDispatch(registered)).boxed())
    }

    /// The layer, to compose it with a filter of its own.
    pub fn into_layer(self) -> Box<dyn Layer<S> + Send + Sync> {
        self.0
    }
}

/// The formatting layer's filter: the events `filter` (`RUST_LOG`) enables, and no span unless
/// a directive selects by span (`[name{field}]=level`: `EnvFilter` must see spans open to
/// apply it).
pub fn fmt_filter<S>(filter: EnvFilter) -> Box<dyn tracing_subscriber::layer::Filter<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if has_span_directives(&filter) {
        FilterExt::boxed(filter)
    } else {
        FilterExt::boxed(filter.and(tracing_subscriber::filter::filter_fn(|metadata| metadata.is_event())))
    }
}

/// Whether `filter` selects by span (`[name{field}]=level`), which `EnvFilter` applies only
/// when it sees spans open. `EnvFilter` has no accessor for this; its display is its
/// directives, and only a span directive has a `[`.
pub fn has_span_directives(filter: &EnvFilter) -> bool {
    filter.to_string().contains('[')
}

/// The one filter of `serve`'s layers when `RUST_LOG` has no span directive
/// (`telemetry::layer_with_logs`): it enables a callsite for the whole subscriber when the span
/// layer records it (`traced`: Glassbox's INFO spans and events) or it is an event `filter`
/// enables, decided once per callsite (`Interest::always`/`never`), and hands `logs` only the
/// events `filter` enables: `logs` sees no span callback at all.
pub struct EventsGate<S> {
    logs: LogLines<S>,
    filter: EnvFilter,
    traced: tracing_subscriber::filter::Targets,
}

impl<S> EventsGate<S> {
    pub fn new(logs: LogLines<S>, filter: EnvFilter, traced: tracing_subscriber::filter::Targets) -> Self {
        Self { logs, filter, traced }
    }

    fn traced(&self, metadata: &tracing::Metadata<'_>) -> bool {
        self.traced.would_enable(metadata.target(), metadata.level())
    }
}

impl<S> Layer<S> for EventsGate<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.logs.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.logs.0.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        // Without span directives `EnvFilter`'s interest in a callsite is always or never.
        let logged = metadata.is_event() && Layer::<S>::register_callsite(&self.filter, metadata).is_always();
        if logged || self.traced(metadata) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.traced(metadata) || (metadata.is_event() && self.filter.enabled(metadata, ctx))
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // No hint from either (anything may be enabled) is no hint.
        match (self.filter.max_level_hint(), Layer::<S>::max_level_hint(&self.traced)) {
            (Some(logged), Some(traced)) => Some(logged.max(traced)),
            _ => None,
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A `log` record arrives as an event of target `log`; `enabled` was asked with its own
        // target (`rustls`, ...), and so is the filter here.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if self.filter.enabled(metadata, ctx.clone()) {
            self.logs.0.on_event(event, ctx);
        }
    }
}

/// The name of an event's callsite when it was given one (`event!(name: "glassbox.processor",
/// ...)`); `tracing`'s default names (`event file:line`) say nothing a line does not.
fn callsite_name(metadata: &tracing::Metadata<'static>) -> Option<&'static str> {
    Some(metadata.name()).filter(|name| !name.starts_with("event "))
}

/// Whether the event has a `message` field (the text of `info!("...")`).
fn has_message(event: &Event<'_>) -> bool {
    event.fields().any(|field| field.name() == "message")
}

/// The trace id a span (the request span) recorded, kept in the span's extensions.
#[derive(Debug, Clone)]
struct RequestTraceId(String);

/// Keeps the `trace_id` field of spans where [`TextLines`] and [`JsonLines`] find it. Install
/// it without a filter, so it sees the request span whatever `RUST_LOG` says.
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

/// The dispatch the log layer is registered with, where the formatters look spans up.
///
/// Looked up in the registry itself, because the formatting layer sees no span ([`EventsGate`],
/// [`fmt_filter`]); and through the dispatch the layer was registered with rather than
/// `dispatcher::get_default`, which answers "no subscriber" inside a scoped dispatcher's
/// (`with_default`, `set_default`) dispatch of the event: under one, log lines lost their
/// trace id. Weak, since the dispatch owns the layer.
#[derive(Debug, Clone, Default)]
struct Registered(Arc<OnceLock<WeakDispatch>>);

/// Keeps the dispatch its layer stack is registered with in a [`Registered`].
struct RegisterDispatch(Registered);

impl<S: Subscriber> Layer<S> for RegisterDispatch {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        // A layer is registered with one dispatch; a second call would be the same one.
        let _ = self.0.0.set(subscriber.downgrade());
    }
}

fn event_context(event: &Event<'_>, registered: &Registered) -> EventContext {
    let Some(dispatch) = registered.0.get().and_then(WeakDispatch::upgrade) else {
        return EventContext::default();
    };
    let lookup = || {
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
    };
    lookup().unwrap_or_default()
}

/// `<timestamp> <LEVEL> <target>: <message> <fields> trace_id=<id>` per line, the level in
/// colour when the layer writes ANSI escapes (standard error is a terminal). An event without
/// a message shows its callsite's name in its place.
#[derive(Debug, Clone)]
pub struct TextLines(Registered);

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
        if !has_message(event)
            && let Some(name) = callsite_name(metadata)
        {
            write!(writer, "{name} ")?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        if let Some(trace_id) = event_context(event, &self.0).trace_id {
            write!(writer, " {TRACE_ID_FIELD}={trace_id}")?;
        }
        writeln!(writer)
    }
}

/// `{"timestamp", "level", "target", "message", <event fields>, "span", "trace_id"}` per line.
#[derive(Debug, Clone)]
pub struct JsonLines(Registered);

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
        if !line.contains_key("message")
            && let Some(name) = callsite_name(metadata)
        {
            line.insert("message".to_owned(), Value::from(name));
        }
        let context = event_context(event, &self.0);
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

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Text lines of what `emit` logs, under `rust_log`, with the log layer of the commands
    /// other than `serve` (and of `serve` under span directives).
    fn text_lines(rust_log: &str, emit: impl FnOnce()) -> String {
        let captured = glassbox_testkit::CapturedLogs::default();
        let subscriber = tracing_subscriber::registry().with(TraceIdLayer).with(
            LogLines::new(LogFormat::Text, captured.writer(), false)
                .into_layer()
                .with_filter(fmt_filter(EnvFilter::new(rust_log))),
        );
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    /// Span fields stay out of the lines; the request span's trace id goes in, also under a
    /// scoped dispatcher (`with_default`, as here), which hides itself from
    /// `dispatcher::get_default` while it dispatches.
    #[test]
    fn text_lines_never_show_span_fields() {
        let text = text_lines("info", || {
            let request = tracing::info_span!("http_request", trace_id = "4bf92f3577b34da6a3ce929d0e0e4736");
            let _request = request.enter();
            let chat = tracing::info_span!("chat", gen_ai.input.messages = "the secret prompt");
            let _chat = chat.enter();
            tracing::warn!(code = "provider_error", "request failed");
            tracing::event!(name: "glassbox.processor", tracing::Level::INFO, glassbox.processor = "pii");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                " WARN glassbox_server::logging::tests: request failed code=\"provider_error\" \
                 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            "{text}"
        );
        assert!(
            lines[1].contains(" INFO glassbox_server::logging::tests: glassbox.processor glassbox.processor=\"pii\""),
            "an event without a message shows its callsite's name: {text}"
        );
        assert!(!text.contains("secret") && !text.contains("http_request"), "no span field or name: {text}");
    }

    /// `serve`'s composition (`telemetry::layer_with_logs`' gate in front of the log layer) in
    /// JSON, under a scoped dispatcher: the innermost span's name and the request's trace id,
    /// for an event inside the request and one given the request span as its parent.
    #[test]
    fn json_lines_under_the_gate_carry_the_span_and_trace_id() {
        let captured = glassbox_testkit::CapturedLogs::default();
        let logs = LogLines::new(LogFormat::Json, captured.writer(), false);
        // The spans exist because the span layer would record them (here: this module's).
        let traced = tracing_subscriber::filter::Targets::new().with_target("glassbox_server", Level::INFO);
        let gate = EventsGate::new(logs, EnvFilter::new("info"), traced);
        let subscriber = tracing_subscriber::registry().with(TraceIdLayer).with(gate);
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("http_request", trace_id = "0af7651916cd43dd8448eb211c80319c");
            let chat = tracing::info_span!(parent: &request, "chat");
            chat.in_scope(|| tracing::warn!("inside"));
            tracing::info!(parent: &request, "explicit parent");
            tracing::info!("outside");
        });
        let lines: Vec<Value> = captured.lines().iter().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let context = |line: &Value| (line["message"].clone(), line["span"].clone(), line["trace_id"].clone());
        let trace_id = Value::from("0af7651916cd43dd8448eb211c80319c");
        assert_eq!(context(&lines[0]), ("inside".into(), "chat".into(), trace_id.clone()));
        assert_eq!(context(&lines[1]), ("explicit parent".into(), "http_request".into(), trace_id));
        assert_eq!(context(&lines[2]), ("outside".into(), Value::Null, Value::Null));
    }

    #[test]
    fn a_span_directive_still_selects_events_inside_its_span() {
        let text = text_lines("warn,[chat]=debug", || {
            tracing::debug!("outside any span");
            let chat = tracing::info_span!("chat", gen_ai.input.messages = "the secret prompt");
            let _chat = chat.enter();
            tracing::debug!("inside the chat span");
        });
        assert!(text.contains("inside the chat span"), "{text}");
        assert!(!text.contains("outside any span") && !text.contains("secret"), "{text}");
    }
}
