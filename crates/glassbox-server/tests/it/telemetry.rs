//! Every request leaves its trace: the request, agent, model-call and tool spans with the
//! right parents and GenAI attributes, and one usage row with its cost per model call — in
//! the embedded SQLite store and in a real ClickHouse engine alike. No credential reaches
//! either.

use std::sync::Arc;
use std::time::Duration;

use glassbox_mockllm::{MockLlm, Reply, ScriptedToolCall};
use glassbox_server::store::Store;
use glassbox_server::telemetry::{self, Telemetry};
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use glassbox_store::{SpanRow, UsageRow};
use glassbox_testkit::ClickHouseFixture;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::helpers::{TestApp, spawn_app_with, spawn_tool_server};

const PROVIDER_KEY: &str = "sk-test-provider-key-0123456789abcdef";

/// `test-model` costs $1 per million input tokens and $2 per million output tokens.
fn config(tool_url: &str) -> String {
    format!(
        r#"
[models.main]
provider = "openai"
model = "test-model"
base_url = "${{MOCK_URL}}"
api_key_env = "TEST_PROVIDER_KEY"
max_retries = 0

[tools.get_weather]
description = "Weather for a city"
url = "{tool_url}"
parameters = {{ type = "object", properties = {{ city = {{ type = "string" }} }}, required = ["city"] }}

[agents.assistant]
instructions = "You are helpful."
model = "main"
tools = ["get_weather"]

[agents.private]
instructions = "You are discreet."
model = "main"
capture = "redacted"

[agents.silent]
instructions = "You keep nothing."
model = "main"
capture = "none"
"#
    )
}

pub(crate) struct Traced {
    pub(crate) app: TestApp,
    pub(crate) mock: MockLlm,
    pub(crate) telemetry: Telemetry,
    pub(crate) store: Store,
    _subscriber: tracing::subscriber::DefaultGuard,
}

pub(crate) async fn spawn_traced(store: Store, spool_dir: std::path::PathBuf) -> Traced {
    store.backend.migrate().await.expect("migrations apply");
    let mut writer_config = WriterConfig::new(spool_dir);
    writer_config.flush_interval = Duration::from_millis(100);
    let writer = TelemetryWriter::start(Arc::clone(&store.backend), writer_config).await.unwrap();
    let tool_url = spawn_tool_server().await;
    let text = config(&tool_url);
    let pricing = Arc::new(telemetry::pricing_table(&[glassbox_config::PricingConfig {
        pattern: "test-model".into(),
        provider: None,
        input_per_million: 1.0,
        output_per_million: 2.0,
        cached_input_per_million: None,
    }]));
    let telemetry = Telemetry::new("glassbox-test", Some(writer), pricing, None).unwrap();
    // A thread-local subscriber: these tests run on a current-thread runtime, so the server's
    // tasks share this thread.
    let subscriber = tracing_subscriber::registry()
        .with(telemetry::layer(&telemetry))
        .set_default();
    if let Some(writer) = telemetry.writer() {
        glassbox_server::metrics::watch_writer(writer);
    }
    let mock = MockLlm::start().await.unwrap();
    let base = mock.openai_base_url();
    let env = move |name: &str| match name {
        "MOCK_URL" => Some(base.clone()),
        "TEST_PROVIDER_KEY" => Some(PROVIDER_KEY.to_owned()),
        _ => None,
    };
    let app = spawn_app_with(&text, glassbox_server::HttpOptions::default(), &env).await;
    Traced { app, mock, telemetry, store, _subscriber: subscriber }
}

/// Waits (flushing) until the trace has `n_spans` spans and `n_usage` usage rows.
pub(crate) async fn wait_for_trace(traced: &Traced, trace_id: &str, n_spans: usize, n_usage: usize) -> (Vec<SpanRow>, Vec<UsageRow>) {
    for _ in 0..100 {
        traced.telemetry.flush().await;
        let spans = traced.store.reader.trace_spans(trace_id).await.unwrap();
        let usage = traced.store.reader.trace_usage(trace_id).await.unwrap();
        if spans.len() >= n_spans && usage.len() >= n_usage {
            return (spans, usage);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spans = traced.store.reader.trace_spans(trace_id).await.unwrap();
    panic!("trace {trace_id} incomplete: {:#?}", spans.iter().map(|s| &s.span_name).collect::<Vec<_>>());
}

pub(crate) fn one<'a>(spans: &'a [SpanRow], name: &str) -> &'a SpanRow {
    let found: Vec<&SpanRow> = spans.iter().filter(|span| span.span_name == name).collect();
    assert_eq!(found.len(), 1, "exactly one {name}: {:#?}", spans.iter().map(|s| &s.span_name).collect::<Vec<_>>());
    found[0]
}

/// Two model calls and one tool call, through `route`; checks every span and usage row.
async fn two_calls_and_a_tool(traced: &Traced, route: &str) -> String {
    traced.mock.push(Reply::ToolCalls(vec![ScriptedToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Oslo"}),
    }]));
    traced.mock.push(Reply::Text("It is 21 degrees in Oslo.".into()));
    let response = traced.app.post_json(&format!("/api/agents/assistant/{route}"), json!({"messages": "weather?"})).await;
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
    let server_span_id = traceparent.split('-').nth(2).unwrap().to_owned();
    let _ = response.bytes().await.unwrap();

    let (spans, usage) = wait_for_trace(traced, &trace_id, 5, 2).await;
    assert_eq!(spans.len(), 5, "{:#?}", spans.iter().map(|s| &s.span_name).collect::<Vec<_>>());
    let http = one(&spans, &format!("POST /api/agents/{{agent_id}}/{route}"));
    let agent = one(&spans, "invoke_agent assistant");
    let tool = one(&spans, "execute_tool get_weather");
    let chats: Vec<&SpanRow> = spans.iter().filter(|span| span.span_name == "chat test-model").collect();
    assert_eq!(chats.len(), 2);

    assert_eq!(http.span_id, server_span_id, "the traceparent header names the server span");
    assert_eq!(http.parent_span_id, "");
    assert_eq!(http.span_kind, "Server");
    assert_eq!(http.attribute("http.response.status_code"), Some("200"));
    assert_eq!(http.attribute("http.route"), Some(format!("/api/agents/{{agent_id}}/{route}").as_str()));
    assert_eq!(agent.parent_span_id, http.span_id);
    assert_eq!(agent.attribute("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(agent.attribute("gen_ai.agent.name"), Some("assistant"));
    assert_eq!(tool.parent_span_id, agent.span_id);
    assert_eq!(tool.attribute("gen_ai.tool.name"), Some("get_weather"));
    assert_eq!(tool.attribute("gen_ai.tool.call.id"), Some("call_1"));
    for chat in &chats {
        assert_eq!(chat.parent_span_id, agent.span_id);
        assert_eq!(chat.span_kind, "Client");
        assert_eq!(chat.attribute("gen_ai.operation.name"), Some("chat"));
        assert_eq!(chat.attribute("gen_ai.provider.name"), Some("openai"));
        assert_eq!(chat.attribute("gen_ai.request.model"), Some("test-model"));
        assert!(chat.attribute("gen_ai.usage.input_tokens").is_some());
        assert!(chat.attribute("gen_ai.input.messages").is_some_and(|m| m.contains("weather?")));
    }
    assert!(chats.iter().any(|chat| chat.attribute("gen_ai.response.finish_reasons") == Some("tool-calls")));

    assert_eq!(usage.len(), 2);
    for row in &usage {
        let chat = chats.iter().find(|chat| chat.span_id == row.span_id).expect("usage row keyed by its chat span");
        assert_eq!(row.trace_id, trace_id);
        assert_eq!(row.agent, "assistant");
        assert_eq!((row.provider.as_str(), row.model.as_str()), ("openai", "test-model"));
        assert_eq!(chat.attribute("gen_ai.usage.input_tokens"), Some(row.input_tokens.to_string().as_str()));
        // $1 and $2 per million tokens: 1,000 and 2,000 nano-USD per token.
        assert_eq!(row.cost_nano_usd, row.input_tokens as i64 * 1000 + row.output_tokens as i64 * 2000);
        assert!(!row.cost_unknown);
        assert_eq!(row.status, "ok");
        assert_eq!(
            chat.attribute("glassbox.cost_usd"),
            Some(telemetry::format_usd(row.cost_nano_usd).as_str()),
            "the span carries its cost"
        );
        if route == "stream" {
            assert!(row.time_to_first_token_ns > 0, "streamed calls record time to first token");
        }
    }
    trace_id
}

async fn no_credentials_in(traced: &Traced, trace_id: &str) {
    let spans = traced.store.reader.trace_spans(trace_id).await.unwrap();
    let all = format!("{spans:?}");
    assert!(!all.contains(PROVIDER_KEY), "the provider key leaked into spans");
    assert!(!all.to_lowercase().contains("authorization"), "an authorization header leaked into spans");
}

pub(crate) async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let path = dir.path().join("glassbox.db");
    let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: path.clone() }).await.unwrap());
    Store { backend: backend.clone(), reader: backend.clone(), evals: backend, description: path.display().to_string() }
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_keeps_every_span_and_usage_row_of_generate_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    let first = two_calls_and_a_tool(&traced, "generate").await;
    let second = two_calls_and_a_tool(&traced, "stream").await;
    no_credentials_in(&traced, &first).await;
    no_credentials_in(&traced, &second).await;
    traced.telemetry.shutdown().await;
    // The file on disk, byte for byte, holds no credential either.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(PROVIDER_KEY), "key found in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn clickhouse_keeps_every_span_and_usage_row_of_generate_and_stream() {
    let fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.unwrap();
    let backend = Arc::new(
        ClickHouseBackend::new(ClickHouseSettings { url: fixture.url(), database: database.clone(), ..ClickHouseSettings::default() })
            .unwrap(),
    );
    let store = Store { backend: backend.clone(), reader: backend.clone(), evals: backend, description: database.clone() };
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(store, dir.path().join("spool")).await;
    two_calls_and_a_tool(&traced, "generate").await;
    two_calls_and_a_tool(&traced, "stream").await;
    traced.telemetry.shutdown().await;
    for table in ["spans", "usage"] {
        let dump = fixture.query_text(&format!("SELECT * FROM {database}.{table} FORMAT TSV")).await.unwrap();
        assert!(!dump.is_empty(), "{table} has rows");
        assert!(!dump.contains(PROVIDER_KEY), "the provider key leaked into {table}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_incoming_traceparent_continues_into_the_stored_trace() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    traced.mock.push(Reply::Text("hi".into()));
    let response = traced
        .app
        .client
        .post(traced.app.url("/api/agents/assistant/generate"))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&json!({"messages": "hello"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let (spans, _) = wait_for_trace(&traced, "4bf92f3577b34da6a3ce929d0e0e4736", 3, 1).await;
    let http = one(&spans, "POST /api/agents/{agent_id}/generate");
    assert_eq!(http.parent_span_id, "00f067aa0ba902b7", "the caller's span is the parent");
}

/// A method a route does not take answers 405 from inside the route's middleware, so its
/// request span is named after the matched route, as any other answer's is.
#[tokio::test(flavor = "current_thread")]
async fn a_wrong_method_is_a_request_span_named_after_its_route() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    let response = traced
        .app
        .client
        .get(traced.app.url("/api/agents/assistant/generate"))
        .header("traceparent", "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let (spans, _) = wait_for_trace(&traced, "5bf92f3577b34da6a3ce929d0e0e4736", 1, 0).await;
    let http = one(&spans, "GET /api/agents/{agent_id}/generate");
    assert_eq!(http.attribute("http.route"), Some("/api/agents/{agent_id}/generate"));
    assert_eq!(http.attribute("http.response.status_code"), Some("405"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_model_call_is_an_error_span_with_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    traced.mock.push(Reply::Fault(glassbox_mockllm::Fault::ServerError));
    let response = traced.app.post_json("/api/agents/assistant/generate", json!({"messages": "hello"})).await;
    assert_eq!(response.status(), 502);
    let trace_id = response.headers()["traceparent"].to_str().unwrap().split('-').nth(1).unwrap().to_owned();
    let (spans, usage) = wait_for_trace(&traced, &trace_id, 3, 1).await;
    let chat = one(&spans, "chat test-model");
    assert_eq!(chat.status_code, glassbox_store::StatusCode::Error);
    assert_eq!(chat.attribute("error.type"), Some("provider_error"));
    assert!(chat.status_message.contains("500"), "{:?}", chat);
    let agent = one(&spans, "invoke_agent assistant");
    assert_eq!(agent.status_code, glassbox_store::StatusCode::Error);
    let http = one(&spans, "POST /api/agents/{agent_id}/generate");
    assert_eq!(http.attribute("http.response.status_code"), Some("502"));
    assert_eq!(http.status_code, glassbox_store::StatusCode::Error);
    assert_eq!(usage[0].status, "error");
    assert_eq!(usage[0].error_type, "provider_error");
}

#[tokio::test(flavor = "current_thread")]
async fn the_capture_policy_decides_what_prompts_and_completions_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    let secret_input = "mail ada@example.com, card 4111 1111 1111 1111";
    let mut traces = Vec::new();
    for agent in ["assistant", "private", "silent"] {
        traced.mock.push(Reply::Text("Noted: write to ada@example.com".into()));
        let response = traced.app.post_json(&format!("/api/agents/{agent}/generate"), json!({"messages": secret_input})).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        traces.push(body["traceId"].as_str().unwrap().to_owned());
    }
    let (full, _) = wait_for_trace(&traced, &traces[0], 3, 1).await;
    let chat = full.iter().find(|span| span.span_name == "chat test-model").unwrap();
    assert!(chat.attribute("gen_ai.input.messages").unwrap().contains("ada@example.com"), "full keeps the prompt");
    assert!(chat.attribute("gen_ai.output.messages").unwrap().contains("ada@example.com"), "full keeps the answer");

    let (redacted, _) = wait_for_trace(&traced, &traces[1], 3, 1).await;
    let chat = redacted.iter().find(|span| span.span_name == "chat test-model").unwrap();
    let input = chat.attribute("gen_ai.input.messages").unwrap();
    let output = chat.attribute("gen_ai.output.messages").unwrap();
    assert!(input.contains("[EMAIL]") && input.contains("[CREDIT_CARD]"), "{input}");
    assert!(output.contains("[EMAIL]"), "{output}");
    let all = format!("{redacted:?}");
    assert!(!all.contains("ada@example.com") && !all.contains("4111 1111 1111 1111"), "no raw PII: {all}");

    let (silent, usage) = wait_for_trace(&traced, &traces[2], 3, 1).await;
    assert!(silent.iter().all(|span| span.attribute("gen_ai.input.messages").is_none()
        && span.attribute("gen_ai.output.messages").is_none()));
    assert!(!format!("{silent:?}").contains("ada@example.com"));
    assert!(usage[0].input_tokens > 0, "usage is kept whatever the policy");
}
