//! Traces out of the process: a `tracing` layer of our own ([`layer`], `record.rs`) records
//! every Glassbox span straight into what becomes a [`SpanRow`] — plus a [`UsageRow`] with its
//! cost for each `chat` span — and hands it to the store writer and, when configured, to an
//! OTLP collector (through OpenTelemetry's batch processor, fed `SpanData` built from the same
//! record, so the store and the collector see the same ids).
//!
//! No OpenTelemetry SDK span, tracer or `tracing-opentelemetry` layer sits on the request path:
//! they were the largest named cost in the profiles (`benchmarks/profiles/`). Ids, parents and
//! renames go through [`SpanExt`] (`span_ext.rs`).
//!
//! The store path does not use OpenTelemetry's batch processor, whose bounded queue drops
//! spans under load: each span goes to the writer, which batches, retries and spools to
//! disk, and never drops a row while the spool has room.

mod record;
mod span_ext;

pub use self::record::AttributeValue;
pub use self::span_ext::{RemoteParent, SpanExt, SpanIds};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glassbox_store::pricing::{PricingTable, TokenCounts};
use glassbox_store::writer::TelemetryWriter;
use glassbox_store::{AttributeKey, AttributeText, Attributes, SpanEvent, SpanLink, SpanRow, StatusCode, UsageRow};
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanProcessor as _};

use self::record::SpanRecord;

/// Where spans go besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtlpTarget {
    /// gRPC; `None` takes the endpoint from `OTEL_EXPORTER_OTLP_*` (default localhost:4317).
    Grpc { endpoint: Option<String> },
    /// HTTP with protobuf bodies; `None` takes the endpoint from the environment.
    HttpProtobuf { endpoint: Option<String> },
}

impl OtlpTarget {
    /// The target the standard `OTEL_EXPORTER_OTLP_*` variables ask for, if any.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let endpoint_set = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
            .iter()
            .any(|name| env(name).is_some_and(|value| !value.is_empty()));
        if !endpoint_set {
            return None;
        }
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
        Some(match protocol.as_deref() {
            Some("http/protobuf") | Some("http/json") => Self::HttpProtobuf { endpoint: None },
            _ => Self::Grpc { endpoint: None },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("could not build the OTLP exporter")]
    Otlp {
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Called with every usage row as it is made (budget settlement, `crate::access`).
pub type UsageObserver = Arc<dyn Fn(&UsageRow) + Send + Sync>;

/// The pipeline: where finished spans go (store writer, OTLP). Shut it down to flush both.
pub struct Telemetry {
    sink: Arc<Sink>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("store", &self.sink.store.get().is_some())
            .field("otlp", &self.sink.otlp.is_some())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Builds the pipeline. Must be called inside a Tokio runtime when OTLP over gRPC is used.
    /// Without a `writer`, one can be attached later ([`attach_writer`](Self::attach_writer)):
    /// `glassbox serve` installs its subscriber first, so that what the store logs while it
    /// opens (a spool left to replay, a thread's priority) is not lost, then attaches.
    pub fn new(
        service_name: &str,
        writer: Option<TelemetryWriter>,
        pricing: Arc<PricingTable>,
        otlp: Option<OtlpTarget>,
    ) -> Result<Self, TelemetryError> {
        let otlp = match otlp {
            Some(target) => Some(Arc::new(otlp_processor(target, service_name)?)),
            None => None,
        };
        let sink = Sink {
            service_name: service_name.to_owned(),
            store: OnceLock::new(),
            pricing,
            otlp,
            scope: InstrumentationScope::builder("glassbox").build(),
            shut_down: AtomicBool::new(false),
        };
        let telemetry = Self { sink: Arc::new(sink) };
        if let Some(writer) = writer {
            telemetry.attach_writer(writer);
        }
        Ok(telemetry)
    }

    /// Sends the spans that end from now on, and their usage rows, to `writer` too (once per
    /// pipeline; a second call leaves the first writer and answers `false`). Spans that ended
    /// before went to the OTLP exporter only. Attach it before journals and observers: those
    /// belong to the writer's rows.
    pub fn attach_writer(&self, writer: TelemetryWriter) -> bool {
        self.sink
            .store
            .set(StoreSink {
                writer,
                usage_observer: OnceLock::new(),
                usage_journal: OnceLock::new(),
                span_journal: OnceLock::new(),
            })
            .is_ok()
    }

    /// Appends every usage row to `journal` after handing it to the writer, so a killed
    /// process loses none (once per pipeline; a second call answers `false`). With a span
    /// journal too ([`journal_spans`](Self::journal_spans)), usage rows go into the span
    /// journal's segments instead, and this one is not written.
    pub fn journal_usage(&self, journal: Arc<crate::usage_journal::UsageJournal>) -> bool {
        self.sink.store.get().is_some_and(|store| store.usage_journal.set(journal).is_ok())
    }

    /// Appends every span row, and every usage row, to `journal` after handing it to the
    /// writer (`span_journal`), so a killed process loses no span or usage row of an answered
    /// request (once per pipeline). A request's records leave in one `write`.
    pub fn journal_spans(&self, journal: Arc<crate::usage_journal::UsageJournal>) -> bool {
        self.sink.store.get().is_some_and(|store| store.span_journal.set(journal).is_ok())
    }

    /// Hands every usage row the store writer gets to `observer` too (once per pipeline; a
    /// second call is ignored and answers `false`). Only usage rows of a pipeline with a
    /// writer are observed.
    pub fn observe_usage(&self, observer: UsageObserver) -> bool {
        self.sink.store.get().is_some_and(|store| store.usage_observer.set(observer).is_ok())
    }

    pub fn writer(&self) -> Option<&TelemetryWriter> {
        self.sink.store.get().map(|store| &store.writer)
    }

    /// Exports what the OTLP exporter holds and writes (or spools) what the writer holds.
    pub async fn flush(&self) {
        if let Some(otlp) = &self.sink.otlp {
            let otlp = Arc::clone(otlp);
            let _ = tokio::task::spawn_blocking(move || otlp.force_flush()).await;
        }
        if let Some(writer) = self.writer() {
            writer.flush().await;
        }
    }

    /// Flushes and stops both exporters; spans ended afterwards are not recorded.
    pub async fn shutdown(&self) {
        self.sink.shut_down.store(true, Ordering::Release);
        if let Some(otlp) = &self.sink.otlp {
            let otlp = Arc::clone(otlp);
            match tokio::task::spawn_blocking(move || otlp.shutdown_with_timeout(Duration::from_secs(5))).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "OpenTelemetry shutdown reported an error"),
                Err(error) => tracing::warn!(%error, "OpenTelemetry shutdown task failed"),
            }
        }
        if let Some(writer) = self.writer() {
            writer.shutdown().await;
        }
    }
}

/// OpenTelemetry's batch processor around the OTLP exporter `target` asks for.
fn otlp_processor(target: OtlpTarget, service_name: &str) -> Result<BatchSpanProcessor, TelemetryError> {
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
    let exporter = match target {
        OtlpTarget::Grpc { endpoint } => {
            let mut exporter = SpanExporter::builder().with_tonic();
            if let Some(endpoint) = endpoint {
                exporter = exporter.with_endpoint(endpoint);
            }
            exporter.build()
        }
        OtlpTarget::HttpProtobuf { endpoint } => {
            // The exporter builds a rustls reqwest client, which panics without a
            // process-wide crypto provider — absent when no model built an HTTP client.
            glassbox_providers::install_crypto_provider();
            let mut exporter = SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
            if let Some(endpoint) = endpoint {
                exporter = exporter.with_endpoint(endpoint);
            }
            exporter.build()
        }
    }
    .map_err(|source| TelemetryError::Otlp { source })?;
    let mut processor = BatchSpanProcessor::builder(exporter).build();
    // What the SDK's tracer provider did with its resource: every exported span carries it.
    processor.set_resource(&Resource::builder().with_service_name(service_name.to_owned()).build());
    Ok(processor)
}

/// Where the layer hands every finished span.
pub(crate) struct Sink {
    service_name: String,
    /// Set once, when the store writer is attached: until then spans go to OTLP only.
    store: OnceLock<StoreSink>,
    pricing: Arc<PricingTable>,
    otlp: Option<Arc<BatchSpanProcessor>>,
    scope: InstrumentationScope,
    shut_down: AtomicBool,
}

/// The store writer and what hears about its rows.
struct StoreSink {
    writer: TelemetryWriter,
    usage_observer: OnceLock<UsageObserver>,
    usage_journal: OnceLock<Arc<crate::usage_journal::UsageJournal>>,
    span_journal: OnceLock<Arc<crate::usage_journal::UsageJournal>>,
}

impl Sink {
    /// One span has ended: to the OTLP exporter, then (row and usage row) to the store, and
    /// their journal lines to `lines`, for [`commit_journals`](Self::commit_journals).
    pub(crate) fn finish(&self, record: SpanRecord, lines: &mut record::JournalLines) {
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        let duration = record.elapsed();
        if let Some(otlp) = &self.otlp {
            otlp.on_end(span_data(&record, duration, &self.scope));
        }
        if let Some(store) = self.store.get() {
            let (row, usage) = span_row(record, duration, &self.service_name, &self.pricing);
            store.write(row, usage, lines);
        }
    }

    /// Appends journal lines made by [`finish`](Self::finish): one write per journal.
    pub(crate) fn commit_journals(&self, lines: &record::JournalLines) {
        let Some(store) = self.store.get() else { return };
        if let (Some(journal), false) = (store.usage_journal.get(), lines.usage.is_empty()) {
            journal.append(&lines.usage);
        }
        if let (Some(journal), false) = (store.span_journal.get(), lines.spans.is_empty()) {
            journal.append(&lines.spans);
        }
    }
}

impl StoreSink {
    /// Hands the rows to the writer and adds their journal lines to `lines`; the caller
    /// writes those after (`Sink::commit_journals`), so every journal line is of a row the
    /// writer has: a journal segment is deleted once a flush after its rotation returns
    /// (`usage_journal`).
    fn write(&self, row: SpanRow, usage: Option<UsageRow>, lines: &mut record::JournalLines) {
        if let Some(usage) = usage {
            crate::metrics::record_usage(&usage);
            if let Some(observer) = self.usage_observer.get() {
                observer(&usage);
            }
            // With a span journal the usage row's record goes with the request's span records,
            // in the same `write`; the usage journal's JSON lines otherwise.
            if self.span_journal.get().is_some() {
                crate::span_journal::encode_usage_into(&usage, &mut lines.spans);
            } else if self.usage_journal.get().is_some() {
                crate::usage_journal::UsageJournal::encode_into(&usage, &mut lines.usage);
            }
            self.writer.write_usage(usage);
        }
        if self.span_journal.get().is_some() {
            crate::span_journal::encode_into(&row, &mut lines.spans);
        }
        self.writer.write_span(row);
    }
}

fn unix_ns(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "Server",
        SpanKind::Client => "Client",
        SpanKind::Producer => "Producer",
        SpanKind::Consumer => "Consumer",
        SpanKind::Internal => "Internal",
    }
}

/// Lower-case hex of `bytes`, written once per id.
fn hex(bytes: &[u8]) -> String {
    crate::access::secret::hex(bytes)
}

fn text_attributes(attributes: Vec<record::Attribute>) -> Attributes {
    // Into a new vector, not collected in place: the pairs differ in size, so an in-place
    // collect reallocates the buffer to shrink it (a `realloc` per event).
    let mut text = Vec::with_capacity(attributes.len());
    text.extend(attributes.into_iter().map(|(key, value)| (key.into_key(), value.into_text())));
    text
}

/// Formats nano-USD as a decimal dollar amount with nine places: `0.000123450`. At most 21
/// bytes (`-9223372036.854775808`), so the text is stored inline, not on the heap. The digits
/// come from compact_str's own integer formatting: through `format!` this cost about 3,000
/// instructions, a tenth of that now.
pub fn format_usd(nano_usd: i64) -> AttributeText {
    use compact_str::ToCompactString as _;
    let magnitude = nano_usd.unsigned_abs();
    // A billion plus the fraction has ten digits: a leading 1, then the nine places.
    let places = (1_000_000_000 + magnitude % 1_000_000_000).to_compact_string();
    let mut text = AttributeText::const_new(if nano_usd < 0 { "-" } else { "" });
    text.push_str(&(magnitude / 1_000_000_000).to_compact_string());
    text.push('.');
    text.push_str(places.get(1..).unwrap_or_default());
    text
}

/// Converts one span, computing the cost of a `chat` span and attaching it as attributes.
fn span_row(
    record: SpanRecord,
    duration: Duration,
    service_name: &str,
    pricing: &PricingTable,
) -> (SpanRow, Option<UsageRow>) {
    let timestamp_ns = unix_ns(record.start);
    let duration_ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let (status_code, status_message) = match record.status {
        Status::Unset => (StatusCode::Unset, String::new()),
        Status::Ok => (StatusCode::Ok, String::new()),
        Status::Error { description } => (StatusCode::Error, description.into_owned()),
    };
    let trace_id = hex(&record.trace_id);
    let span_id = hex(&record.span_id);
    let parent_span_id = if record.parent_span_id == [0; 8] { String::new() } else { hex(&record.parent_span_id) };
    // Room for the cost attributes of a `chat` span.
    let mut span_attributes = Vec::with_capacity(record.attributes.len() + 2);
    span_attributes.extend(record.attributes.into_iter().map(|(key, value)| (key.into_key(), value.into_text())));
    let lookup = |attributes: &[(AttributeKey, AttributeText)], key: &str| {
        attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str().to_owned())
    };
    let is_chat = span_attributes.iter().find(|(name, _)| name == "gen_ai.operation.name").is_some_and(|(_, v)| v == "chat");
    let usage = is_chat.then(|| {
        let number = |key: &str| lookup(&span_attributes, key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let text = |key: &str| lookup(&span_attributes, key).unwrap_or_default();
        let provider = text("gen_ai.provider.name");
        let model = text("gen_ai.request.model");
        let counts = TokenCounts {
            input: number("gen_ai.usage.input_tokens"),
            output: number("gen_ai.usage.output_tokens"),
            cached_input: number("gen_ai.usage.cache_read.input_tokens"),
            reasoning: number("glassbox.usage.reasoning_tokens"),
        };
        let cost = pricing.cost(&provider, &model, counts);
        let ttft_ns = lookup(&span_attributes, "glassbox.time_to_first_token_ms")
            .and_then(|ms| ms.parse::<f64>().ok())
            .map_or(0, |ms| (ms * 1_000_000.0) as u64);
        let error_type = text("error.type");
        UsageRow {
            timestamp_ns,
            trace_id: trace_id.clone(),
            span_id: span_id.clone(),
            tenant: text("glassbox.tenant"),
            api_key_id: text("glassbox.api_key_id"),
            agent: text("gen_ai.agent.name"),
            workflow: text("glassbox.workflow"),
            provider,
            model,
            input_tokens: counts.input,
            output_tokens: counts.output,
            cached_input_tokens: counts.cached_input,
            reasoning_tokens: counts.reasoning,
            cost_nano_usd: cost.nano_usd,
            cost_unknown: cost.unknown,
            latency_ns: duration_ns,
            time_to_first_token_ns: ttft_ns,
            status: if status_code == StatusCode::Error { "error".to_owned() } else { "ok".to_owned() },
            error_type,
        }
    });
    if let Some(usage) = &usage {
        span_attributes.push(("glassbox.cost_usd".into(), format_usd(usage.cost_nano_usd)));
        if usage.cost_unknown {
            span_attributes.push(("glassbox.cost_unknown".into(), AttributeText::const_new("true")));
        }
    }
    let row = SpanRow {
        timestamp_ns,
        trace_id,
        span_id,
        parent_span_id,
        trace_state: record.trace_state,
        span_name: record.name.into_owned(),
        span_kind: kind_name(&record.kind).to_owned(),
        service_name: service_name.to_owned(),
        resource_attributes: vec![("service.name".into(), service_name.into())],
        // The instrumentation scope the SDK tracer was named after.
        scope_name: "glassbox".to_owned(),
        scope_version: String::new(),
        span_attributes,
        duration_ns,
        status_code,
        status_message,
        events: record
            .events
            .into_iter()
            .map(|event| SpanEvent {
                timestamp_ns: unix_ns(event.time),
                name: event.name,
                attributes: text_attributes(event.attributes),
            })
            .collect(),
        links: record
            .links
            .into_iter()
            .map(|link| SpanLink {
                trace_id: hex(&link.trace_id),
                span_id: hex(&link.span_id),
                trace_state: link.trace_state,
                attributes: Vec::new(),
            })
            .collect(),
    };
    (row, usage)
}

/// The same span as OpenTelemetry's `SpanData`, for the OTLP exporter.
fn span_data(record: &SpanRecord, duration: Duration, scope: &InstrumentationScope) -> opentelemetry_sdk::trace::SpanData {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let flags = |sampled: bool| if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let trace_state =
        |header: &str| if header.is_empty() { TraceState::default() } else { header.parse().unwrap_or_default() };
    let key_values = |attributes: &[record::Attribute]| {
        attributes.iter().map(|(key, value)| opentelemetry::KeyValue::new(key.to_otel(), value.to_otel())).collect()
    };
    let mut events = opentelemetry_sdk::trace::SpanEvents::default();
    events.events = record
        .events
        .iter()
        .map(|event| {
            let attributes = key_values(&event.attributes);
            opentelemetry::trace::Event::new(record::otel_text(&event.name), event.time, attributes, 0)
        })
        .collect();
    events.dropped_count = record.dropped_events;
    let mut links = opentelemetry_sdk::trace::SpanLinks::default();
    links.links = record
        .links
        .iter()
        .map(|link| {
            opentelemetry::trace::Link::with_context(SpanContext::new(
                TraceId::from_bytes(link.trace_id),
                SpanId::from_bytes(link.span_id),
                flags(link.sampled),
                false,
                trace_state(&link.trace_state),
            ))
        })
        .collect();
    opentelemetry_sdk::trace::SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(record.trace_id),
            SpanId::from_bytes(record.span_id),
            flags(record.sampled),
            false,
            trace_state(&record.trace_state),
        ),
        parent_span_id: SpanId::from_bytes(record.parent_span_id),
        parent_span_is_remote: record.parent_is_remote,
        span_kind: record.kind.clone(),
        name: record.name.clone(),
        start_time: record.start,
        end_time: record.start + duration,
        attributes: key_values(&record.attributes),
        dropped_attributes_count: record.dropped_attributes,
        events,
        links,
        status: record.status.clone(),
        instrumentation_scope: scope.clone(),
    }
}

/// The shipped price list with the config's `[[pricing]]` entries on top.
pub fn pricing_table(entries: &[glassbox_config::PricingConfig]) -> PricingTable {
    let overrides = entries
        .iter()
        .map(|entry| glassbox_store::pricing::PricingEntry {
            pattern: entry.pattern.clone(),
            provider: entry.provider.clone(),
            price: glassbox_store::pricing::Price {
                input_per_million_usd: entry.input_per_million,
                output_per_million_usd: entry.output_per_million,
                cached_input_per_million_usd: entry.cached_input_per_million,
                effective_from: String::from("config"),
            },
        })
        .collect();
    PricingTable::shipped().with_overrides(overrides)
}

/// The crates whose spans make up Glassbox's traces; the OpenTelemetry layer takes their
/// `INFO` spans whatever `RUST_LOG` says, so quieting the logs never loses telemetry.
pub const TRACED_TARGETS: [&str; 5] =
    ["glassbox_core", "glassbox_providers", "glassbox_server", "glassbox_store", "glassbox_evals"];

/// The `tracing` layer that records Glassbox's spans for `telemetry` (`record.rs`) and times
/// the pipeline's overhead for `/metrics` (`glassbox_pipeline_overhead_seconds`).
pub fn layer<S>(telemetry: &Telemetry) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span> + Send + Sync,
{
    use tracing_subscriber::Layer as _;
    // No source locations, thread names, targets or busy/idle times on spans (noise in a
    // request's trace, as the OpenTelemetry layer was configured), and nothing done on
    // enter/exit: every poll of an instrumented future enters its spans. The two layers share
    // one filter, which the registry checks per span callback (one search of the registry each).
    record::RecordLayer { sink: Arc::clone(&telemetry.sink), traced_events: None }
        .and_then(crate::metrics::OverheadLayer)
        .with_filter(traced_targets())
}

/// What [`layer`] records: INFO and above of the Glassbox crates.
fn traced_targets() -> tracing_subscriber::filter::Targets {
    TRACED_TARGETS
        .iter()
        .fold(tracing_subscriber::filter::Targets::new(), |targets, target| {
            targets.with_target(*target, tracing::Level::INFO)
        })
}

/// `serve`'s layers: `logs` for the events `filter` (`RUST_LOG`) enables,
/// and [`layer`]'s span recording, composed without per-layer filters when `filter` has no
/// span directive. A per-layer filter makes the registry look a span up for every layer so
/// filtered on every enter, exit, record and close, and an instrumented future enters and
/// exits its spans on every poll: with the two layers filtered, a benchmark request made some
/// 120 such searches (14 K instructions). Here one gate decides per callsite instead, once:
/// the span layer's spans and events, and the events the log layer prints; the log layer
/// sees events only, so it never formats span fields (ARCHITECTURE.md, logging). With a span
/// directive (`[chat]=debug`), `EnvFilter` has to see spans open and close, and the layers are
/// composed with [`crate::logging::fmt_filter`] and [`layer`] as before.
pub fn layer_with_logs<S>(
    telemetry: &Telemetry,
    logs: crate::logging::LogLines<S>,
    filter: tracing_subscriber::EnvFilter,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span> + Send + Sync,
{
    use tracing_subscriber::Layer as _;
    if crate::logging::has_span_directives(&filter) {
        return logs.into_layer().with_filter(crate::logging::fmt_filter(filter)).and_then(layer(telemetry)).boxed();
    }
    let traced = traced_targets();
    let records = record::RecordLayer { sink: Arc::clone(&telemetry.sink), traced_events: Some(traced.clone()) };
    let gate = crate::logging::EventsGate::new(logs, filter, traced);
    gate.and_then(records.and_then(crate::metrics::OverheadLayer)).boxed()
}

#[cfg(test)]
mod tests {
    use super::format_usd;

    #[test]
    fn formats_dollars_with_nine_places() {
        assert_eq!(format_usd(0), "0.000000000");
        assert_eq!(format_usd(123_450), "0.000123450");
        assert_eq!(format_usd(2_500_000_001), "2.500000001");
        assert_eq!(format_usd(-5), "-0.000000005");
        assert_eq!(format_usd(i64::MIN), "-9223372036.854775808");
        assert_eq!(format_usd(i64::MAX), "9223372036.854775807");
        assert!(!format_usd(i64::MIN).is_heap_allocated());
    }
}

