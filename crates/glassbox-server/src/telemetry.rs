//! Traces out of the process: `tracing` spans become OpenTelemetry spans (through
//! `tracing-opentelemetry`), and every finished span goes to the store writer as a
//! [`SpanRow`] — plus a [`UsageRow`] with its cost for each `chat` span — and, when
//! configured, to an OTLP collector.
//!
//! The store path does not use OpenTelemetry's batch processor, whose bounded queue drops
//! spans under load: [`StoreSpanProcessor`] hands each span to the writer, which batches,
//! retries and spools to disk, and never drops a row while the spool has room.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glassbox_store::pricing::{PricingTable, TokenCounts};
use glassbox_store::writer::TelemetryWriter;
use glassbox_store::{SpanEvent, SpanLink, SpanRow, StatusCode, UsageRow};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanData, SpanProcessor};

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

/// The tracer provider and the writer behind it. Shut it down to flush both.
pub struct Telemetry {
    provider: SdkTracerProvider,
    writer: Option<TelemetryWriter>,
    usage_observer: Arc<OnceLock<UsageObserver>>,
    usage_journal: Arc<OnceLock<Arc<crate::usage_journal::UsageJournal>>>,
    span_journal: Arc<OnceLock<Arc<crate::usage_journal::UsageJournal>>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("store", &self.writer.is_some()).finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Builds the pipeline. Must be called inside a Tokio runtime when OTLP over gRPC is used.
    pub fn new(
        service_name: &str,
        writer: Option<TelemetryWriter>,
        pricing: Arc<PricingTable>,
        otlp: Option<OtlpTarget>,
    ) -> Result<Self, TelemetryError> {
        let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        let usage_observer = Arc::new(OnceLock::new());
        let usage_journal = Arc::new(OnceLock::new());
        let span_journal = Arc::new(OnceLock::new());
        if let Some(writer) = &writer {
            builder = builder.with_span_processor(StoreSpanProcessor {
                writer: writer.clone(),
                pricing,
                service_name: service_name.to_owned(),
                usage_observer: Arc::clone(&usage_observer),
                usage_journal: Arc::clone(&usage_journal),
                span_journal: Arc::clone(&span_journal),
            });
        }
        if let Some(target) = otlp {
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
            builder = builder.with_batch_exporter(exporter);
        }
        Ok(Self { provider: builder.build(), writer, usage_observer, usage_journal, span_journal })
    }

    /// Appends every usage row to `journal` after handing it to the writer, so a killed
    /// process loses none (once per pipeline; a second call answers `false`).
    pub fn journal_usage(&self, journal: Arc<crate::usage_journal::UsageJournal>) -> bool {
        self.usage_journal.set(journal).is_ok()
    }

    /// Appends every span row to `journal` after handing it to the writer (`span_journal`),
    /// so a killed process loses no span of an answered request (once per pipeline).
    pub fn journal_spans(&self, journal: Arc<crate::usage_journal::UsageJournal>) -> bool {
        self.span_journal.set(journal).is_ok()
    }

    /// Hands every usage row the store writer gets to `observer` too (once per pipeline; a
    /// second call is ignored and answers `false`). Only usage rows of a pipeline with a
    /// writer are observed.
    pub fn observe_usage(&self, observer: UsageObserver) -> bool {
        self.usage_observer.set(observer).is_ok()
    }

    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("glassbox")
    }

    pub fn writer(&self) -> Option<&TelemetryWriter> {
        self.writer.as_ref()
    }

    /// Exports what the OTLP exporter holds and writes (or spools) what the writer holds.
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Some(writer) = &self.writer {
            writer.flush().await;
        }
    }

    /// Flushes and stops both exporters; spans ended afterwards are not recorded.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        match tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5))).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "OpenTelemetry shutdown reported an error"),
            Err(error) => tracing::warn!(%error, "OpenTelemetry shutdown task failed"),
        }
        if let Some(writer) = &self.writer {
            writer.shutdown().await;
        }
    }
}

/// Hands every finished span to the store writer, deriving a usage row from `chat` spans.
struct StoreSpanProcessor {
    writer: TelemetryWriter,
    pricing: Arc<PricingTable>,
    service_name: String,
    usage_observer: Arc<OnceLock<UsageObserver>>,
    usage_journal: Arc<OnceLock<Arc<crate::usage_journal::UsageJournal>>>,
    span_journal: Arc<OnceLock<Arc<crate::usage_journal::UsageJournal>>>,
}

impl std::fmt::Debug for StoreSpanProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSpanProcessor").field("service_name", &self.service_name).finish_non_exhaustive()
    }
}

impl SpanProcessor for StoreSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let (row, usage) = span_row(span, &self.service_name, &self.pricing);
        if let Some(usage) = usage {
            crate::metrics::record_usage(&usage);
            if let Some(observer) = self.usage_observer.get() {
                observer(&usage);
            }
            // Handed to the writer before its journal line is written: a journal segment is
            // deleted once a flush after its rotation returns (`usage_journal`).
            let journal = self.usage_journal.get();
            let line = journal.map(|_| crate::usage_journal::UsageJournal::encode(&usage));
            self.writer.write_usage(usage);
            if let (Some(journal), Some(line)) = (journal, line) {
                journal.append(&line);
            }
        }
        // Same order as the usage row: to the writer first, then the journal (`span_journal`).
        let span_journal = self.span_journal.get();
        let span_line = span_journal.map(|_| crate::span_journal::encode(&row));
        self.writer.write_span(row);
        if let (Some(journal), Some(line)) = (span_journal, span_line) {
            journal.append(&line);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // The writer flushes on its own schedule; `Telemetry::flush` awaits it.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn unix_ns(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

/// Takes the value's text; an owned string (a captured prompt, say) moves without a copy.
fn value_text(value: Value) -> String {
    match value {
        Value::String(text) => String::from(text),
        other => other.to_string(),
    }
}

fn attributes(pairs: impl IntoIterator<Item = KeyValue>) -> Vec<(String, String)> {
    pairs.into_iter().map(|pair| (String::from(pair.key), value_text(pair.value))).collect()
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

/// Formats nano-USD as a decimal dollar amount with nine places: `0.000123450`.
pub fn format_usd(nano_usd: i64) -> String {
    let sign = if nano_usd < 0 { "-" } else { "" };
    let magnitude = nano_usd.unsigned_abs();
    format!("{sign}{}.{:09}", magnitude / 1_000_000_000, magnitude % 1_000_000_000)
}

/// Converts one span, computing the cost of a `chat` span and attaching it as attributes.
fn span_row(span: SpanData, service_name: &str, pricing: &PricingTable) -> (SpanRow, Option<UsageRow>) {
    let timestamp_ns = unix_ns(span.start_time);
    let duration_ns = span.end_time.duration_since(span.start_time).map_or(0, |d| d.as_nanos() as u64);
    let (status_code, status_message) = match &span.status {
        Status::Unset => (StatusCode::Unset, String::new()),
        Status::Ok => (StatusCode::Ok, String::new()),
        Status::Error { description } => (StatusCode::Error, description.to_string()),
    };
    let trace_id = span.span_context.trace_id().to_string();
    let span_id = span.span_context.span_id().to_string();
    let parent_span_id = if span.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        String::new()
    } else {
        span.parent_span_id.to_string()
    };
    let mut span_attributes = attributes(span.attributes);
    let lookup = |attributes: &[(String, String)], key: &str| {
        attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone())
    };
    let is_chat = lookup(&span_attributes, "gen_ai.operation.name").as_deref() == Some("chat");
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
        span_attributes.push(("glassbox.cost_usd".to_owned(), format_usd(usage.cost_nano_usd)));
        if usage.cost_unknown {
            span_attributes.push(("glassbox.cost_unknown".to_owned(), "true".to_owned()));
        }
    }
    let row = SpanRow {
        timestamp_ns,
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.span_context.trace_state().header(),
        span_name: span.name.into_owned(),
        span_kind: kind_name(&span.span_kind).to_owned(),
        service_name: service_name.to_owned(),
        resource_attributes: vec![("service.name".to_owned(), service_name.to_owned())],
        scope_name: span.instrumentation_scope.name().to_owned(),
        scope_version: span.instrumentation_scope.version().unwrap_or_default().to_owned(),
        span_attributes,
        duration_ns,
        status_code,
        status_message,
        events: span
            .events
            .into_iter()
            .map(|event| SpanEvent {
                timestamp_ns: unix_ns(event.timestamp),
                name: event.name.into_owned(),
                attributes: attributes(event.attributes),
            })
            .collect(),
        links: span
            .links
            .into_iter()
            .map(|link| SpanLink {
                trace_id: link.span_context.trace_id().to_string(),
                span_id: link.span_context.span_id().to_string(),
                trace_state: link.span_context.trace_state().header(),
                attributes: attributes(link.attributes),
            })
            .collect(),
    };
    (row, usage)
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

/// The `tracing` layer that turns spans into OpenTelemetry spans for `telemetry`.
pub fn layer<S>(telemetry: &Telemetry) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span> + Send + Sync,
{
    use tracing_subscriber::Layer as _;
    let targets = TRACED_TARGETS
        .iter()
        .fold(tracing_subscriber::filter::Targets::new(), |targets, target| {
            targets.with_target(*target, tracing::Level::INFO)
        });
    // Source locations, thread names and busy/idle times are noise in a request's trace.
    // Context activation (attaching the span's OpenTelemetry context to the thread on every
    // enter, detaching on exit) serves code that reads `opentelemetry::Context::current()`;
    // Glassbox reads ids through the span itself, and parents come from the `tracing` span
    // tree, so it is switched off: every poll of an instrumented future enters its spans.
    tracing_opentelemetry::layer()
        .with_tracer(telemetry.tracer())
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(targets)
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
    }
}

