//! The `tracing` layer that records Glassbox's spans without the OpenTelemetry SDK.
//!
//! Each span traced by the layer carries a [`SpanRecord`] in its registry extensions from
//! `on_new_span` to `on_close`: its ids, name, kind, attributes (keys are the `&'static str`
//! names of `tracing` fields; values keep their type until the row is built), events, links
//! and status. `on_close` hands the record to the [`Sink`](super::Sink), which turns it into a
//! store row (and an OTLP span when an exporter is configured).
//!
//! The record follows what `tracing-opentelemetry` 0.34 made of the same spans, so the rows
//! are the ones it produced: the special fields `otel.name`, `otel.kind`, `otel.status_code`
//! and `otel.status_description`; a `u64` becomes text (`tracing` hands it over as `Debug`);
//! an event inside a span becomes a span event named by its message (or, without one, by its
//! callsite's name: `event!(name: ...)`); an event with a message has `level` and `target`
//! first and its fields after, one without (a structured event) its fields alone (on purpose:
//! difference 7 in ARCHITECTURE.md); an `ERROR` event marks the span failed; an event
//! with no message and an `error` field becomes an `exception` event and sets the status;
//! OpenTelemetry's default limits (128 attributes, events, links per span). Where the two
//! differ, and why, is in ARCHITECTURE.md (telemetry).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use compact_str::ToCompactString as _;
use glassbox_store::AttributeText;
use opentelemetry::trace::{SpanKind, Status};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// OpenTelemetry's default span limits (`SpanLimits`), kept so that rows do not change.
const MAX_ATTRIBUTES_PER_SPAN: usize = 128;
const MAX_EVENTS_PER_SPAN: usize = 128;
const MAX_LINKS_PER_SPAN: usize = 128;
const MAX_ATTRIBUTES_PER_EVENT: usize = 128;

/// An attribute's key: a `tracing` field name, or the `<field>.chain` key an error value
/// adds (kept as the field name so no key is ever allocated before the row is built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Name(&'static str),
    Chain(&'static str),
}

impl Key {
    /// The stored key: a field's static name borrowed, a chain key made once.
    pub(crate) fn into_key(self) -> glassbox_store::AttributeKey {
        match self {
            Self::Name(name) => Cow::Borrowed(name),
            Self::Chain(name) => {
                let mut key = String::with_capacity(name.len() + 6);
                key.push_str(name);
                key.push_str(".chain");
                Cow::Owned(key)
            }
        }
    }

    pub(crate) fn to_otel(self) -> opentelemetry::Key {
        match self {
            Self::Name(name) => opentelemetry::Key::from_static_str(name),
            Self::Chain(_) => opentelemetry::Key::from(self.into_key().into_owned()),
        }
    }
}

/// An attribute's value, typed as recorded (OTLP gets the type; the store gets the text).
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Text(AttributeText),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// An error's source chain.
    TextArray(Vec<String>),
}

impl AttributeValue {
    /// The text OpenTelemetry's `Value` displays, which is what the store has always held:
    /// inline when short, borrowed when static (no heap for most values).
    pub(crate) fn into_text(self) -> AttributeText {
        match self {
            Self::Text(text) => text,
            Self::I64(value) => value.to_compact_string(),
            // `Display`, as `to_string` wrote it (`to_compact_string` formats floats otherwise).
            Self::F64(value) => compact_str::format_compact!("{value}"),
            Self::Bool(value) => AttributeText::const_new(if value { "true" } else { "false" }),
            Self::TextArray(values) => {
                let mut text = String::with_capacity(2 + values.iter().map(|value| value.len() + 3).sum::<usize>());
                text.push('[');
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        text.push(',');
                    }
                    text.push('"');
                    text.push_str(value);
                    text.push('"');
                }
                text.push(']');
                text.into()
            }
        }
    }

    pub(crate) fn to_otel(&self) -> opentelemetry::Value {
        match self {
            Self::Text(text) => opentelemetry::Value::String(otel_text(text).into()),
            Self::I64(value) => opentelemetry::Value::I64(*value),
            Self::F64(value) => opentelemetry::Value::F64(*value),
            Self::Bool(value) => opentelemetry::Value::Bool(*value),
            Self::TextArray(values) => opentelemetry::Value::Array(opentelemetry::Array::String(
                values.iter().map(|value| value.clone().into()).collect(),
            )),
        }
    }
}

/// `text` as OpenTelemetry's string: borrowed when it is a static str, else copied.
pub(crate) fn otel_text(text: &AttributeText) -> Cow<'static, str> {
    match text.as_static_str() {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(text.as_str().to_owned()),
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::Text(value.into())
    }
}

impl From<&'static str> for AttributeValue {
    fn from(value: &'static str) -> Self {
        Self::Text(AttributeText::const_new(value))
    }
}

impl From<i64> for AttributeValue {
    fn from(value: i64) -> Self {
        Self::I64(value)
    }
}

impl From<f64> for AttributeValue {
    fn from(value: f64) -> Self {
        Self::F64(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

pub(crate) type Attribute = (Key, AttributeValue);

/// One event recorded inside a span.
#[derive(Debug)]
pub(crate) struct EventRecord {
    pub(crate) time: SystemTime,
    /// The stored event's name as it is (inline when short, borrowed when static).
    pub(crate) name: AttributeText,
    pub(crate) attributes: Vec<Attribute>,
}

/// A link to another span (`Span::follows_from`).
#[derive(Debug)]
pub(crate) struct LinkRecord {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) sampled: bool,
    pub(crate) trace_state: String,
}

/// Everything recorded about one span while it is open.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    /// All zeros for a root span.
    pub(crate) parent_span_id: [u8; 8],
    pub(crate) parent_is_remote: bool,
    /// Inside a request span (kind `Server`): its journal lines wait in its parent's
    /// [`JournalLines`] and are written with the request's, in one write (see `on_close`).
    pub(crate) journal_with_parent: bool,
    /// Its children's journal lines wait in it, as in a request span ([`SpanExt::gather_journal_lines`]).
    ///
    /// [`SpanExt::gather_journal_lines`]: super::span_ext::SpanExt::gather_journal_lines
    pub(crate) gathers_journal: bool,
    /// Unsampled spans (a caller's `traceparent` said so) keep their ids but are not recorded.
    pub(crate) sampled: bool,
    /// The W3C `tracestate` header of the trace, inherited from the (remote) parent.
    pub(crate) trace_state: String,
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: SpanKind,
    pub(crate) start: SystemTime,
    pub(crate) started: Instant,
    pub(crate) attributes: Vec<Attribute>,
    pub(crate) dropped_attributes: u32,
    pub(crate) status: Status,
    pub(crate) events: Vec<EventRecord>,
    pub(crate) dropped_events: u32,
    pub(crate) links: Vec<LinkRecord>,
}

impl SpanRecord {
    pub(crate) fn push_attribute(&mut self, key: Key, value: AttributeValue) {
        if self.attributes.len() < MAX_ATTRIBUTES_PER_SPAN {
            self.attributes.push((key, value));
        } else {
            self.dropped_attributes += 1;
        }
    }

    /// OpenTelemetry's rule: `Ok` > `Error` > `Unset`, so a later `Unset` never clears a
    /// status and nothing overrides `Ok`; between two errors the larger description stays,
    /// which keeps a description over the bare `ERROR` recorded next to it.
    pub(crate) fn set_status(&mut self, status: Status) {
        if status > self.status {
            self.status = status;
        }
    }

    /// How long the span has been open.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn apply(&mut self, update: Update) {
        match update {
            Update::Name(name) => self.name = name,
            Update::Kind(kind) => self.kind = kind,
            Update::Status(status) => self.set_status(status),
            Update::Attribute(key, value) => self.push_attribute(key, value),
        }
    }
}

/// A random nonzero id: all-zero ids are invalid in W3C trace context.
pub(crate) fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut bytes = [0_u8; N];
        for chunk in bytes.chunks_mut(8) {
            let random = fastrand::u64(..).to_le_bytes();
            chunk.copy_from_slice(&random[..chunk.len()]);
        }
        if bytes.iter().any(|&byte| byte != 0) {
            return bytes;
        }
    }
}

fn span_kind(text: &str) -> Option<SpanKind> {
    [
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
        ("internal", SpanKind::Internal),
    ]
    .into_iter()
    .find(|(name, _)| text.eq_ignore_ascii_case(name))
    .map(|(_, kind)| kind)
}

fn status(text: &str) -> Status {
    if text.eq_ignore_ascii_case("ok") {
        Status::Ok
    } else if text.eq_ignore_ascii_case("error") {
        Status::error("")
    } else {
        Status::Unset
    }
}

/// A change to a span from its fields.
enum Update {
    Name(Cow<'static, str>),
    Kind(SpanKind),
    Status(Status),
    Attribute(Key, AttributeValue),
}

/// Where a span's field updates go: straight into a new record, or into a buffer applied
/// once the span's extensions are locked (so no `Debug` impl runs under the lock).
trait Updates {
    fn update(&mut self, update: Update);
}

impl Updates for SpanRecord {
    fn update(&mut self, update: Update) {
        self.apply(update);
    }
}

/// The updates of one `Span::record` call: almost always one field, kept inline.
#[derive(Default)]
struct Pending {
    first: Option<Update>,
    rest: Vec<Update>,
}

impl Updates for Pending {
    fn update(&mut self, update: Update) {
        if self.first.is_none() {
            self.first = Some(update);
        } else {
            self.rest.push(update);
        }
    }
}

impl Pending {
    fn apply_to(self, record: &mut SpanRecord) {
        self.first.into_iter().chain(self.rest).for_each(|update| record.apply(update));
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = Vec::new();
    let mut next = error.source();
    while let Some(source) = next {
        chain.push(source.to_string());
        next = source.source();
    }
    chain
}

/// A span's fields, as `tracing-opentelemetry`'s `SpanAttributeVisitor` reads them.
struct SpanVisitor<'a, U: Updates>(&'a mut U);

impl<U: Updates> SpanVisitor<'_, U> {
    /// A text field; short text stays inline (no heap) from here to the stored row.
    fn text(&mut self, field: &Field, text: AttributeText) {
        let update = match field.name() {
            "otel.name" => Update::Name(Cow::Owned(text.into_string())),
            "otel.kind" => match span_kind(&text) {
                Some(kind) => Update::Kind(kind),
                None => return,
            },
            "otel.status_code" => Update::Status(status(&text)),
            "otel.status_description" => Update::Status(Status::Error { description: Cow::Owned(text.into_string()) }),
            name => Update::Attribute(Key::Name(name), AttributeValue::Text(text)),
        };
        self.0.update(update);
    }
}

impl<U: Updates> Visit for SpanVisitor<'_, U> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.update(Update::Attribute(Key::Name(field.name()), AttributeValue::Bool(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.update(Update::Attribute(Key::Name(field.name()), AttributeValue::F64(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.update(Update::Attribute(Key::Name(field.name()), AttributeValue::I64(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // The kind and status are read without copying the text.
        match field.name() {
            "otel.kind" => {
                if let Some(kind) = span_kind(value) {
                    self.0.update(Update::Kind(kind));
                }
            }
            "otel.status_code" => self.0.update(Update::Status(status(value))),
            _ => self.text(field, AttributeText::from(value)),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, compact_str::format_compact!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let chain = error_chain(value);
        let message = value.to_string();
        let attribute = |key, value| Update::Attribute(key, value);
        self.0.update(attribute(Key::Name("exception.message"), AttributeValue::from(message.clone())));
        self.0.update(attribute(Key::Name("exception.stacktrace"), AttributeValue::TextArray(chain.clone())));
        self.0.update(attribute(Key::Name(field.name()), AttributeValue::from(message)));
        self.0.update(attribute(Key::Chain(field.name()), AttributeValue::TextArray(chain)));
    }
}

/// An event's fields, as `tracing-opentelemetry`'s `SpanEventVisitor` reads them, with what
/// the event does to its span.
struct EventVisitor<'a> {
    event: &'a mut EventRecord,
    span_status: Option<Status>,
    span_attributes: Vec<Attribute>,
}

impl EventVisitor<'_> {
    fn push(&mut self, key: Key, value: AttributeValue) {
        self.event.attributes.push((key, value));
    }

    /// `error` on an event with no message (yet): an `exception` event that fails the span.
    fn unnamed_error(&mut self, text: String) {
        self.span_status = Some(Status::error(text.clone()));
        self.event.name = AttributeText::const_new("exception");
        self.push(Key::Name("exception.message"), AttributeValue::from(text));
    }
}

impl Visit for EventVisitor<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "message" => self.event.name = AttributeText::const_new(if value { "true" } else { "false" }),
            name => self.push(Key::Name(name), AttributeValue::Bool(value)),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match field.name() {
            "message" => self.event.name = AttributeValue::F64(value).into_text(),
            name => self.push(Key::Name(name), AttributeValue::F64(value)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "message" => self.event.name = value.to_compact_string(),
            name => self.push(Key::Name(name), AttributeValue::I64(value)),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.event.name = AttributeText::from(value),
            "error" if self.event.name.is_empty() => self.unnamed_error(format!("{value:?}")),
            name => self.push(Key::Name(name), AttributeValue::Text(AttributeText::from(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.event.name = compact_str::format_compact!("{value:?}"),
            "error" if self.event.name.is_empty() => self.unnamed_error(format!("{value:?}")),
            name => self.push(Key::Name(name), AttributeValue::Text(compact_str::format_compact!("{value:?}"))),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let chain = error_chain(value);
        let message = value.to_string();
        self.push(Key::Name("exception.message"), AttributeValue::from(message.clone()));
        self.push(Key::Name("exception.stacktrace"), AttributeValue::TextArray(chain.clone()));
        self.span_attributes.push((Key::Name("exception.message"), AttributeValue::from(message.clone())));
        self.span_attributes.push((Key::Name("exception.stacktrace"), AttributeValue::TextArray(chain.clone())));
        self.push(Key::Name(field.name()), AttributeValue::from(message));
        self.push(Key::Chain(field.name()), AttributeValue::TextArray(chain));
    }
}

/// The layer: records spans into [`SpanRecord`]s and hands each closed one to the sink.
pub(crate) struct RecordLayer {
    pub(crate) sink: Arc<super::Sink>,
    /// Set when the layer runs without a per-layer filter (`telemetry::layer_with_logs`): the
    /// subscriber then enables some events only for the log layer, and those must not become
    /// span events. Spans need no check: only traced spans are enabled at all.
    pub(crate) traced_events: Option<tracing_subscriber::filter::Targets>,
}

impl<S> tracing_subscriber::Layer<S> for RecordLayer
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The parent as `tracing-opentelemetry` without context activation found it: the
        // explicit parent if this layer sees it, else the current span this layer sees.
        let parent = match attrs.parent() {
            Some(parent) => ctx.span(parent),
            None if attrs.is_contextual() => ctx.lookup_current(),
            None => None,
        };
        let inherited = parent.and_then(|parent| {
            parent.extensions().get::<SpanRecord>().map(|record| {
                let journal_with_parent =
                    record.journal_with_parent || record.gathers_journal || matches!(record.kind, SpanKind::Server);
                (record.trace_id, record.span_id, record.sampled, record.trace_state.clone(), journal_with_parent)
            })
        });
        let (trace_id, parent_span_id, sampled, trace_state, journal_with_parent) =
            inherited.unwrap_or_else(|| (crate::trace_context::new_trace_id(), [0; 8], true, String::new(), false));
        let metadata = attrs.metadata();
        let mut record = SpanRecord {
            trace_id,
            span_id: random_id::<8>(),
            parent_span_id,
            parent_is_remote: false,
            journal_with_parent,
            gathers_journal: false,
            sampled,
            trace_state,
            name: Cow::Borrowed(metadata.name()),
            kind: SpanKind::Internal,
            start: SystemTime::now(),
            started: Instant::now(),
            // Room for every field, plus the two attributes set later through `SpanExt`.
            attributes: Vec::with_capacity(metadata.fields().len() + 2),
            dropped_attributes: 0,
            status: Status::Unset,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
        };
        attrs.record(&mut SpanVisitor(&mut record));
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut pending = Pending::default();
        values.record(&mut SpanVisitor(&mut pending));
        if let Some(record) = span.extensions_mut().get_mut::<SpanRecord>() {
            pending.apply_to(record);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(follows)) = (ctx.span(id), ctx.span(follows)) else { return };
        let link = follows.extensions().get::<SpanRecord>().map(|record| LinkRecord {
            trace_id: record.trace_id,
            span_id: record.span_id,
            sampled: record.sampled,
            trace_state: record.trace_state.clone(),
        });
        if let (Some(link), Some(record)) = (link, span.extensions_mut().get_mut::<SpanRecord>())
            && record.links.len() < MAX_LINKS_PER_SPAN
        {
            record.links.push(link);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if let Some(traced) = &self.traced_events {
            // A `log` record's own target, not `log` (see `logging::EventsGate::on_event`).
            let normalized = tracing_log::NormalizeEvent::normalized_metadata(event);
            let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
            if !traced.would_enable(metadata.target(), metadata.level()) {
                return;
            }
        }
        let span = match event.parent() {
            Some(parent) => ctx.span(parent),
            None if event.is_contextual() => ctx.lookup_current(),
            None => None,
        };
        let Some(span) = span else { return };
        let metadata = event.metadata();
        // A log line (an event with a message) keeps its level and target, as
        // `tracing-opentelemetry` writes them; a structured event, named by its callsite (the
        // pipeline's decisions, 8 on a request), is its fields alone: the two added 51 bytes
        // of the same text to each, a tenth of a request's stored span bytes.
        let logged = metadata.fields().field("message").is_some();
        let mut record = EventRecord {
            time: SystemTime::now(),
            name: AttributeText::const_new(""),
            attributes: Vec::with_capacity(2 * usize::from(logged) + metadata.fields().len()),
        };
        if logged {
            record.attributes.push((Key::Name("level"), AttributeValue::from(metadata.level().as_str())));
            record.attributes.push((Key::Name("target"), AttributeValue::from(metadata.target())));
        }
        let mut visitor = EventVisitor { event: &mut record, span_status: None, span_attributes: Vec::new() };
        event.record(&mut visitor);
        let EventVisitor { span_status, span_attributes, .. } = visitor;
        if record.name.is_empty() {
            record.name = AttributeText::const_new(metadata.name());
        }
        record.attributes.truncate(MAX_ATTRIBUTES_PER_EVENT);
        let mut extensions = span.extensions_mut();
        let Some(span_record) = extensions.get_mut::<SpanRecord>() else { return };
        if *metadata.level() == tracing::Level::ERROR {
            span_record.set_status(Status::error(""));
        }
        if let Some(status) = span_status {
            span_record.set_status(status);
        }
        for (key, value) in span_attributes {
            span_record.push_attribute(key, value);
        }
        if span_record.events.len() < MAX_EVENTS_PER_SPAN {
            span_record.events.push(record);
        } else {
            span_record.dropped_events += 1;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // The extensions' lock is released before the sink runs (it may log).
        let (record, mut lines) = {
            let mut extensions = span.extensions_mut();
            (extensions.remove::<SpanRecord>(), extensions.remove::<JournalLines>().unwrap_or_default())
        };
        let journal_with_parent = record.as_ref().is_some_and(|record| record.journal_with_parent);
        if let Some(record) = record
            && record.sampled
        {
            self.sink.finish(record, &mut lines);
        }
        if lines.is_empty() {
            return;
        }
        // Group commit of the kill-safety journals: the registry closes a span only after
        // all its children, so the lines of a request's spans (and usage rows) travel up to
        // the request span and go out in one write when it closes, which is before its
        // answer's last bytes (`span_journal`). Spans outside a request write their own at once.
        if journal_with_parent && let Some(parent) = span.parent() {
            let mut extensions = parent.extensions_mut();
            match extensions.get_mut::<JournalLines>() {
                Some(pending) => pending.append(lines),
                None => extensions.insert(lines),
            }
            return;
        }
        self.sink.commit_journals(&lines);
    }
}

/// Journal lines of closed spans not written yet: in the extensions of the span they wait
/// for (see [`RecordLayer`]'s `on_close`).
#[derive(Debug, Default)]
pub(crate) struct JournalLines {
    pub(crate) spans: Vec<u8>,
    pub(crate) usage: Vec<u8>,
}

impl JournalLines {
    fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.usage.is_empty()
    }

    fn append(&mut self, mut other: JournalLines) {
        append_bytes(&mut self.spans, &mut other.spans);
        append_bytes(&mut self.usage, &mut other.usage);
    }
}

/// `to.append(from)`, without a copy when `to` is empty.
fn append_bytes(to: &mut Vec<u8>, from: &mut Vec<u8>) {
    if to.is_empty() {
        std::mem::swap(to, from);
    } else {
        to.append(from);
    }
}
