//! OTLP export against a real receiver on loopback: a tonic `TraceService` for gRPC and an
//! axum `POST /v1/traces` decoding protobuf bodies for HTTP. Each request's trace arrives with
//! its span names, ids, parent links, `service.name`, GenAI attributes and error statuses —
//! alone or alongside the store writer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glassbox_server::store::Store;
use glassbox_server::telemetry::{self, OtlpTarget, Telemetry};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message as _;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::helpers::{TestApp, spawn_app};

const SERVICE: &str = "glassbox-otlp-test";

const CONFIG: &str = r#"
[models.echo]
provider = "mock"
model = "mock-echo"

[models.broken]
provider = "mock"
model = "mock-error"

[agents.echo]
instructions = "Repeat what the user says."
model = "echo"

[agents.broken]
instructions = "Fail."
model = "broken"
"#;

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

/// Every export request the receiver got, whichever protocol carried it.
#[derive(Debug, Clone, Default)]
struct Received(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

impl Received {
    fn push(&self, request: ExportTraceServiceRequest) {
        self.0.lock().unwrap().push(request);
    }

    fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.0.lock().unwrap().clone()
    }

    /// Every span received, with the resource it came under.
    fn spans(&self) -> Vec<(ResourceSpans, Span)> {
        self.requests()
            .into_iter()
            .flat_map(|request| request.resource_spans)
            .flat_map(|resource_spans| {
                let spans: Vec<Span> =
                    resource_spans.scope_spans.iter().flat_map(|scope| scope.spans.iter().cloned()).collect();
                spans.into_iter().map(move |span| (resource_spans.clone(), span))
            })
            .collect()
    }

    fn trace(&self, trace_id: &str) -> Vec<(ResourceSpans, Span)> {
        self.spans().into_iter().filter(|(_, span)| hex(&span.trace_id) == trace_id).collect()
    }
}

struct GrpcCollector(Received);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A gRPC OTLP receiver on 127.0.0.1:0; returns the exporter endpoint `http://127.0.0.1:PORT`.
async fn grpc_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(GrpcCollector(received.clone())))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    (format!("http://{addr}"), received)
}

/// An HTTP/protobuf OTLP receiver on 127.0.0.1:0; returns the full traces URL
/// `http://127.0.0.1:PORT/v1/traces`. opentelemetry-otlp 0.33 posts to an endpoint given with
/// `with_endpoint` as is (it appends `/v1/traces` only to `OTEL_EXPORTER_OTLP_ENDPOINT`), so the
/// explicit endpoint is the whole URL; any other path would 404 here and fail the tests.
async fn http_receiver() -> (String, Received) {
    let received = Received::default();
    let state = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let content_type = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
                if content_type != "application/x-protobuf" {
                    return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                }
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        state.push(request);
                        (
                            axum::http::StatusCode::OK,
                            ExportTraceServiceResponse { partial_success: None }.encode_to_vec(),
                        )
                    }
                    Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/traces"), received)
}

// ---------------------------------------------------------------------------------------
// Reading OTLP spans
// ---------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn any_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        other => format!("{other:?}"),
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes.iter().find(|pair| pair.key == key).and_then(|pair| pair.value.as_ref())
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    find(&span.attributes, key).map(any_text)
}

fn names(spans: &[(ResourceSpans, Span)]) -> Vec<&str> {
    spans.iter().map(|(_, span)| span.name.as_str()).collect()
}

fn one<'a>(spans: &'a [(ResourceSpans, Span)], name: &str) -> &'a (ResourceSpans, Span) {
    let found: Vec<&(ResourceSpans, Span)> = spans.iter().filter(|(_, span)| span.name == name).collect();
    assert_eq!(found.len(), 1, "exactly one {name}: {:#?}", names(spans));
    found[0]
}

fn status_code(span: &Span) -> StatusCode {
    span.status.as_ref().map_or(StatusCode::Unset, |status| status.code())
}

// ---------------------------------------------------------------------------------------
// The app, traced
// ---------------------------------------------------------------------------------------

struct Exported {
    app: TestApp,
    telemetry: Telemetry,
    received: Received,
    _subscriber: Option<tracing::subscriber::DefaultGuard>,
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Grpc,
    Http,
}

/// How the test runs the pipeline.
#[derive(Debug, Clone, Copy)]
enum Runtime {
    /// A current-thread runtime with a thread-local subscriber, like the store tests: the
    /// server's tasks share the test's thread. The batch processor exports from its own thread;
    /// `Telemetry::flush` blocks a `spawn_blocking` thread on it and awaits that, leaving the
    /// runtime free to drive the gRPC channel, which lives on it (the HTTP exporter's blocking
    /// client has a runtime of its own) — so there is no deadlock.
    CurrentThread,
    /// A multi-thread runtime, as the binary runs. The server's tasks run on worker threads a
    /// thread-local subscriber would not see, so the layer is the global default — safe because
    /// nextest runs every test in its own process.
    MultiThread,
}

/// The app with a telemetry pipeline exporting to a fresh receiver (and to `writer`, if any).
async fn spawn_exported(protocol: Protocol, runtime: Runtime, writer: Option<TelemetryWriter>) -> Exported {
    let (endpoint, received) = match protocol {
        Protocol::Grpc => grpc_receiver().await,
        Protocol::Http => http_receiver().await,
    };
    let target = match protocol {
        Protocol::Grpc => OtlpTarget::Grpc { endpoint: Some(endpoint) },
        Protocol::Http => OtlpTarget::HttpProtobuf { endpoint: Some(endpoint) },
    };
    let pricing = Arc::new(telemetry::pricing_table(&[]));
    // Built before the app, whose providers install the TLS crypto provider: the pipeline must
    // not depend on them having done so (only mock models here).
    let telemetry = Telemetry::new(SERVICE, writer, pricing, Some(target)).unwrap();
    let registry = tracing_subscriber::registry().with(telemetry::layer(&telemetry));
    let subscriber = match runtime {
        Runtime::CurrentThread => Some(registry.set_default()),
        Runtime::MultiThread => {
            registry.try_init().unwrap();
            None
        }
    };
    let app = spawn_app(CONFIG).await;
    Exported { app, telemetry, received, _subscriber: subscriber }
}

/// Waits (flushing) until the receiver holds `n_spans` spans of the trace.
async fn wait_for_trace(exported: &Exported, trace_id: &str, n_spans: usize) -> Vec<(ResourceSpans, Span)> {
    for _ in 0..100 {
        exported.telemetry.flush().await;
        let spans = exported.received.trace(trace_id);
        if spans.len() >= n_spans {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spans = exported.received.trace(trace_id);
    panic!(
        "trace {trace_id} incomplete at the receiver after {} export requests: {:#?}",
        exported.received.requests().len(),
        names(&spans)
    );
}

fn trace_id_of(response: &reqwest::Response) -> String {
    response.headers()["traceparent"].to_str().unwrap().split('-').nth(1).unwrap().to_owned()
}

/// One successful generate call; checks its whole trace at the receiver and returns it.
async fn generate_is_exported(exported: &Exported) -> Vec<(ResourceSpans, Span)> {
    let response = exported.app.post_json("/api/agents/echo/generate", json!({"messages": "hello otlp"})).await;
    assert_eq!(response.status(), 200);
    let header_trace_id = trace_id_of(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["text"], "You said: hello otlp");
    let trace_id = body["traceId"].as_str().unwrap().to_owned();
    assert_eq!(trace_id, header_trace_id);

    let spans = wait_for_trace(exported, &trace_id, 3).await;
    assert_eq!(spans.len(), 3, "{:#?}", names(&spans));
    let (_, http) = one(&spans, "POST /api/agents/{agent_id}/generate");
    let (_, agent) = one(&spans, "invoke_agent echo");
    let (_, chat) = one(&spans, "chat mock-echo");

    for (resource_spans, span) in &spans {
        assert_eq!(hex(&span.trace_id), trace_id);
        assert_eq!(span.span_id.len(), 8);
        let resource = resource_spans.resource.as_ref().expect("spans carry their resource");
        assert_eq!(find(&resource.attributes, "service.name").map(any_text).as_deref(), Some(SERVICE));
    }

    assert!(http.parent_span_id.is_empty(), "the server span is the root");
    assert_eq!(http.kind(), SpanKind::Server);
    assert_eq!(attribute(http, "http.route").as_deref(), Some("/api/agents/{agent_id}/generate"));
    assert_eq!(attribute(http, "http.response.status_code").as_deref(), Some("200"));
    assert_ne!(status_code(http), StatusCode::Error);

    assert_eq!(agent.parent_span_id, http.span_id);
    assert_eq!(attribute(agent, "gen_ai.operation.name").as_deref(), Some("invoke_agent"));
    assert_eq!(attribute(agent, "gen_ai.agent.name").as_deref(), Some("echo"));

    assert_eq!(chat.parent_span_id, agent.span_id);
    assert_eq!(chat.kind(), SpanKind::Client);
    assert_eq!(attribute(chat, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(attribute(chat, "gen_ai.provider.name").as_deref(), Some("mock"));
    assert_eq!(attribute(chat, "gen_ai.request.model").as_deref(), Some("mock-echo"));
    let input_tokens = find(&chat.attributes, "gen_ai.usage.input_tokens").expect("input tokens recorded");
    // The value is the response's count. `tracing` hands a `u64` to layers as `Debug` text and
    // the span layer keeps it so (as tracing-opentelemetry 0.34 did), so `u64` counts arrive as
    // OTLP strings ("9"), not the integers the GenAI conventions ask for; `any_text` reads either.
    assert_eq!(any_text(input_tokens), body["usage"]["inputTokens"].to_string(), "{body}");
    assert!(attribute(chat, "gen_ai.usage.output_tokens").is_some());
    assert_ne!(status_code(chat), StatusCode::Error);
    spans
}

/// A failing model call: the chat, agent and server spans arrive with status ERROR.
async fn failure_is_exported(exported: &Exported) {
    let response = exported.app.post_json("/api/agents/broken/generate", json!({"messages": "hello"})).await;
    assert_eq!(response.status(), 502);
    let trace_id = trace_id_of(&response);
    let _ = response.bytes().await.unwrap();

    let spans = wait_for_trace(exported, &trace_id, 3).await;
    let (_, http) = one(&spans, "POST /api/agents/{agent_id}/generate");
    let (_, agent) = one(&spans, "invoke_agent broken");
    let (_, chat) = one(&spans, "chat mock-error");
    assert_eq!(status_code(chat), StatusCode::Error);
    assert_eq!(attribute(chat, "error.type").as_deref(), Some("provider_error"));
    let message = chat.status.as_ref().map(|status| status.message.clone()).unwrap_or_default();
    assert!(message.contains("500"), "the status carries the error: {message:?}");
    assert_eq!(chat.parent_span_id, agent.span_id);
    assert_eq!(status_code(agent), StatusCode::Error);
    assert_eq!(agent.parent_span_id, http.span_id);
    assert_eq!(status_code(http), StatusCode::Error);
    assert_eq!(attribute(http, "http.response.status_code").as_deref(), Some("502"));
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn grpc_export_carries_the_requests_trace() {
    let exported = spawn_exported(Protocol::Grpc, Runtime::CurrentThread, None).await;
    generate_is_exported(&exported).await;
    exported.telemetry.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_export_marks_a_failed_model_call_as_an_error() {
    let exported = spawn_exported(Protocol::Grpc, Runtime::CurrentThread, None).await;
    failure_is_exported(&exported).await;
    exported.telemetry.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn http_protobuf_export_carries_the_requests_trace() {
    let exported = spawn_exported(Protocol::Http, Runtime::CurrentThread, None).await;
    generate_is_exported(&exported).await;
    exported.telemetry.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn http_protobuf_export_marks_a_failed_model_call_as_an_error() {
    let exported = spawn_exported(Protocol::Http, Runtime::CurrentThread, None).await;
    failure_is_exported(&exported).await;
    exported.telemetry.shutdown().await;
}

/// `Telemetry::shutdown` alone — what `glassbox serve` does on its way out — exports what the
/// batch processor still holds.
async fn shutdown_exports_what_is_pending(protocol: Protocol) {
    let exported = spawn_exported(protocol, Runtime::CurrentThread, None).await;
    let response = exported.app.post_json("/api/agents/echo/generate", json!({"messages": "bye"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let trace_id = body["traceId"].as_str().unwrap().to_owned();
    exported.telemetry.shutdown().await;
    let spans = exported.received.trace(&trace_id);
    assert_eq!(spans.len(), 3, "{:#?}", names(&spans));
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_shutdown_exports_what_is_pending() {
    shutdown_exports_what_is_pending(Protocol::Grpc).await;
}

#[tokio::test(flavor = "current_thread")]
async fn http_protobuf_shutdown_exports_what_is_pending() {
    shutdown_exports_what_is_pending(Protocol::Http).await;
}

/// Both destinations at once, set up as `glassbox serve` does (multi-thread runtime, global
/// subscriber): the store and the collector hold the same spans.
async fn store_and_otlp_together(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.unwrap());
    let store = Store { backend: backend.clone(), reader: backend.clone(), evals: backend, description: String::from("test") };
    store.backend.migrate().await.unwrap();
    let mut writer_config = WriterConfig::new(dir.path().join("spool"));
    writer_config.flush_interval = Duration::from_millis(100);
    let writer = TelemetryWriter::start(Arc::clone(&store.backend), writer_config).await.unwrap();
    let exported = spawn_exported(protocol, Runtime::MultiThread, Some(writer)).await;

    let spans = generate_is_exported(&exported).await;
    let trace_id = hex(&spans[0].1.trace_id);
    let mut stored = Vec::new();
    for _ in 0..100 {
        exported.telemetry.flush().await;
        stored = store.reader.trace_spans(&trace_id).await.unwrap();
        if stored.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut in_store: Vec<(String, String, String)> =
        stored.iter().map(|row| (row.span_name.clone(), row.span_id.clone(), row.parent_span_id.clone())).collect();
    let mut at_collector: Vec<(String, String, String)> =
        spans.iter().map(|(_, span)| (span.name.clone(), hex(&span.span_id), hex(&span.parent_span_id))).collect();
    in_store.sort();
    at_collector.sort();
    assert_eq!(in_store, at_collector, "the store and the collector see the same spans");
    let usage = store.reader.trace_usage(&trace_id).await.unwrap();
    assert_eq!(usage.len(), 1, "the store still derives a usage row");
    assert_eq!(usage[0].model, "mock-echo");
    exported.telemetry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_and_the_store_writer_work_together() {
    store_and_otlp_together(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_and_the_store_writer_work_together() {
    store_and_otlp_together(Protocol::Http).await;
}

#[test]
fn the_standard_variables_choose_the_target() {
    let from = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        OtlpTarget::from_env(&move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let grpc = Some(OtlpTarget::Grpc { endpoint: None });
    let http = Some(OtlpTarget::HttpProtobuf { endpoint: None });

    // No endpoint, no export — a protocol alone does not turn it on, nor does an empty value.
    assert_eq!(from(&[]), None);
    assert_eq!(from(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]), None);
    assert_eq!(from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]), None);
    assert_eq!(from(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")]), None);

    // An endpoint alone means gRPC, the OTLP default; the exporter reads the endpoint itself.
    assert_eq!(from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]), grpc);
    assert_eq!(from(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317")]), grpc);
    assert_eq!(
        from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
        grpc
    );

    // The HTTP protocols; JSON is not supported and falls back to protobuf over HTTP.
    assert_eq!(
        from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        ]),
        http
    );
    assert_eq!(
        from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
        http
    );

    // The traces-specific protocol wins over the general one, both ways.
    assert_eq!(
        from(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]),
        http
    );
    assert_eq!(
        from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]),
        grpc
    );
}
