//! Provider faults under load, in both wire formats: 24 concurrent clients mix healthy
//! requests with requests to models that answer 429 (with `Retry-After`), 500, 503, hang,
//! reset the connection, or break a stream mid-SSE. Each failing request gets DESIGN.md's
//! status and `{error, code}`, the mock sees exactly the attempts `max_retries` allows, every
//! failure is an error span (and an error usage row) in the store, and every healthy request
//! answers normally.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glassbox_mockllm::MockLlm;
use glassbox_server::HttpOptions;
use glassbox_server::store::Store;
use glassbox_server::telemetry::{self, Telemetry};
use glassbox_store::StatusCode as SpanStatus;
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::helpers::{TestApp, parse_chunks, spawn_app_with, sse_data};
use crate::telemetry::sqlite_store;

const MAX_RETRIES: usize = 2;
const WORKERS: usize = 24;
const REPEATS: usize = 3;
const HEALTHY_PER_PROVIDER: usize = 60;

/// The two wire formats: the provider name in the config and the path the mock sees.
const PROVIDERS: [(&str, &str); 2] = [("openai", "/v1/chat/completions"), ("anthropic", "/v1/messages")];

/// One kind of request: the mock model it reaches, the route, and what must come back.
#[derive(Debug, Clone, Copy)]
struct Case {
    /// The mock's model name (`fault-*` injects that fault; anything else answers).
    model: &'static str,
    stream: bool,
    /// The status the client gets.
    status: u16,
    /// The error code in the JSON body, or, for a stream that fails after output began, in
    /// its `error` chunk; `None` for a healthy request.
    code: Option<&'static str>,
    /// The requests the mock must receive for one client request.
    attempts: usize,
}

const CASES: [Case; 9] = [
    Case { model: "fault-429", stream: false, status: 502, code: Some("provider_rate_limited"), attempts: 1 + MAX_RETRIES },
    Case { model: "fault-500", stream: false, status: 502, code: Some("provider_error"), attempts: 1 + MAX_RETRIES },
    Case { model: "fault-503", stream: false, status: 502, code: Some("provider_error"), attempts: 1 + MAX_RETRIES },
    // A first-byte timeout is not retried: the provider may still be working on the request.
    Case { model: "fault-hang", stream: false, status: 504, code: Some("provider_timeout"), attempts: 1 },
    Case { model: "fault-reset", stream: false, status: 502, code: Some("provider_unreachable"), attempts: 1 + MAX_RETRIES },
    Case { model: "fault-500", stream: true, status: 502, code: Some("provider_error"), attempts: 1 + MAX_RETRIES },
    Case { model: "fault-hang", stream: true, status: 504, code: Some("provider_timeout"), attempts: 1 },
    Case { model: "fault-malformed-sse", stream: true, status: 502, code: Some("provider_malformed_response"), attempts: 1 },
    // Output already reached the client: no retry, the stream ends with an error chunk.
    Case { model: "fault-cut-stream", stream: true, status: 200, code: Some("provider_stream_interrupted"), attempts: 1 },
];

const HEALTHY: Case = Case { model: "healthy-model", stream: false, status: 200, code: None, attempts: 1 };

fn agent_id(provider: &str, case: &Case) -> String {
    format!("{provider}_{}", case.model.replace('-', "_"))
}

/// One model and one agent per (provider, mock model). Only the hanging model gets a short
/// first-byte deadline, so a loaded machine cannot turn a healthy answer into a timeout.
fn config() -> String {
    let mut text = String::new();
    let mut models: Vec<&str> = CASES.iter().map(|case| case.model).collect();
    models.push(HEALTHY.model);
    models.dedup();
    models.sort_unstable();
    models.dedup();
    for (provider, _) in PROVIDERS {
        for model in &models {
            let id = agent_id(provider, &Case { model, ..HEALTHY });
            let first_byte_ms = if *model == "fault-hang" { 800 } else { 30_000 };
            text.push_str(&format!(
                r#"
[models.{id}]
provider = "{provider}"
model = "{model}"
base_url = "${{MOCK_URL}}"
api_key_env = "TEST_PROVIDER_KEY"
max_retries = {MAX_RETRIES}
first_byte_timeout_ms = {first_byte_ms}
total_timeout_ms = 60000

[agents.{id}]
instructions = "Answer."
model = "{id}"
"#
            ));
        }
    }
    text
}

/// What one client request ended with.
struct Outcome {
    provider: &'static str,
    case: Case,
    status: u16,
    trace_id: String,
}

async fn run_one(app: &TestApp, provider: &'static str, case: Case, n: usize) -> Outcome {
    let agent = agent_id(provider, &case);
    let route = if case.stream { "stream" } else { "generate" };
    let message = format!("request {n} to {agent}");
    let response = app.post_json(&format!("/api/agents/{agent}/{route}"), json!({"messages": message})).await;
    let status = response.status().as_u16();
    let trace_id = response
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split('-').nth(1))
        .unwrap_or_else(|| panic!("{agent} {route}: no traceparent"))
        .to_owned();
    assert_eq!(status, case.status, "{agent} {route}: status");
    if case.stream && status == 200 {
        let chunks = parse_chunks(&sse_data(response).await);
        match case.code {
            Some(code) => {
                let last = chunks.last().unwrap_or_else(|| panic!("{agent}: an empty stream"));
                assert_eq!(last["type"], "error", "{agent}: {chunks:?}");
                assert_eq!(last["payload"]["code"], code, "{agent}: {last}");
                assert!(last["payload"]["error"].as_str().is_some_and(|error| !error.is_empty()), "{agent}: {last}");
            }
            None => {
                let text: String = chunks.iter().filter(|c| c["type"] == "text-delta").filter_map(|c| c["payload"]["text"].as_str()).collect();
                assert_eq!(text, format!("Mock reply to: {message}"), "{agent}: {chunks:?}");
            }
        }
    } else {
        let body: Value = response.json().await.unwrap_or_else(|error| panic!("{agent} {route}: the body is not JSON: {error}"));
        match case.code {
            Some(code) => {
                assert_eq!(body["code"], code, "{agent} {route}: {body}");
                assert!(body["error"].as_str().is_some_and(|error| !error.is_empty()), "{agent} {route}: {body}");
                assert!(!body.to_string().contains("sk-fault-secret"), "no key in errors: {body}");
                if case.model == "fault-429" {
                    assert_eq!(body["details"]["providerRetryAfterSeconds"], 1.0, "{agent}: the provider's Retry-After: {body}");
                }
            }
            None => assert_eq!(body["text"], format!("Mock reply to: {message}"), "{agent}: {body}"),
        }
    }
    Outcome { provider, case, status, trace_id }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_under_load_answer_right_retry_within_limits_and_leave_error_spans() {
    let dir = tempfile::tempdir().unwrap();
    let store: Store = sqlite_store(&dir).await;
    store.backend.migrate().await.unwrap();
    let mut writer_config = WriterConfig::new(dir.path().join("spool"));
    writer_config.flush_interval = Duration::from_millis(100);
    let writer = TelemetryWriter::start(Arc::clone(&store.backend), writer_config).await.unwrap();
    let telemetry = Telemetry::new("glassbox-fault", Some(writer), Arc::new(telemetry::pricing_table(&[])), None).unwrap();
    // Each nextest test runs in its own process, so a global subscriber is this test's alone.
    tracing_subscriber::registry().with(telemetry::layer(&telemetry)).init();

    let mock = MockLlm::start().await.unwrap();
    let base = mock.openai_base_url();
    let env = move |name: &str| match name {
        "MOCK_URL" => Some(base.clone()),
        "TEST_PROVIDER_KEY" => Some("sk-fault-secret".to_owned()),
        _ => None,
    };
    let app = Arc::new(spawn_app_with(&config(), HttpOptions::default(), &env).await);

    // Every fault case REPEATS times and a stream of healthy requests (plain and streamed),
    // interleaved so that healthy requests run next to every fault.
    let mut jobs = Vec::new();
    for n in 0..HEALTHY_PER_PROVIDER {
        for (provider, _) in PROVIDERS {
            jobs.push((provider, Case { stream: n % 2 == 1, ..HEALTHY }));
        }
        if n < REPEATS {
            for (provider, _) in PROVIDERS {
                for case in CASES {
                    jobs.push((provider, case));
                }
            }
        }
    }
    // Popped from the end: reverse so faults start early, while healthy requests keep coming.
    jobs.reverse();
    let total = jobs.len();
    let jobs = Arc::new(Mutex::new(jobs));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (app, jobs) = (Arc::clone(&app), Arc::clone(&jobs));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let job = jobs.lock().unwrap().pop();
                    let Some((provider, case)) = job else { break };
                    outcomes.push(run_one(&app, provider, case, outcomes.len()).await);
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.expect("a client's assertion failed"));
    }
    assert_eq!(outcomes.len(), total);

    // Retries within limits: the mock saw exactly the allowed attempts per model and format.
    let mut expected: HashMap<(String, String), usize> = HashMap::new();
    for outcome in &outcomes {
        let path = PROVIDERS.iter().find(|(name, _)| *name == outcome.provider).map(|(_, path)| *path).unwrap();
        *expected.entry((path.to_owned(), outcome.case.model.to_owned())).or_default() += outcome.case.attempts;
    }
    let mut received: HashMap<(String, String), usize> = HashMap::new();
    for request in mock.requests() {
        let model = request.body["model"].as_str().unwrap_or("?").to_owned();
        *received.entry((request.path, model)).or_default() += 1;
    }
    let mut expected_sorted: Vec<_> = expected.into_iter().collect();
    expected_sorted.sort();
    let mut received_sorted: Vec<_> = received.into_iter().collect();
    received_sorted.sort();
    assert_eq!(received_sorted, expected_sorted, "requests the mock received per (path, model)");

    // Error spans: every failed request's model call and run are errors in the store, with an
    // error usage row; healthy ones are not.
    for outcome in &outcomes {
        let chat_name = format!("chat {}", outcome.case.model);
        let mut spans = Vec::new();
        let mut usage = Vec::new();
        for _ in 0..200 {
            telemetry.flush().await;
            spans = store.reader.trace_spans(&outcome.trace_id).await.unwrap();
            usage = store.reader.trace_usage(&outcome.trace_id).await.unwrap();
            if spans.len() >= 3 && !usage.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let names: Vec<&str> = spans.iter().map(|span| span.span_name.as_str()).collect();
        let label = format!("{} {:?} (trace {}): {names:?}", outcome.provider, outcome.case, outcome.trace_id);
        assert_eq!(spans.len(), 3, "request, run and one model call: {label}");
        assert_eq!(usage.len(), 1, "one usage row: {label}");
        let chat = spans.iter().find(|span| span.span_name == chat_name).unwrap_or_else(|| panic!("no `{chat_name}`: {label}"));
        let agent = spans.iter().find(|span| span.span_name.starts_with("invoke_agent ")).unwrap_or_else(|| panic!("{label}"));
        let http = spans.iter().find(|span| span.span_name.starts_with("POST ")).unwrap_or_else(|| panic!("{label}"));
        assert_eq!(http.attribute("http.response.status_code"), Some(outcome.status.to_string().as_str()), "{label}");
        if outcome.case.code.is_some() {
            assert_eq!(chat.status_code, SpanStatus::Error, "{label}: {chat:?}");
            assert!(chat.attribute("error.type").is_some_and(|kind| !kind.is_empty()), "{label}: {chat:?}");
            assert_eq!(agent.status_code, SpanStatus::Error, "{label}: {agent:?}");
            assert_eq!(usage[0].status, "error", "{label}: {:?}", usage[0]);
        } else {
            assert_ne!(chat.status_code, SpanStatus::Error, "{label}: {chat:?}");
            assert_ne!(agent.status_code, SpanStatus::Error, "{label}: {agent:?}");
            assert_eq!(usage[0].status, "ok", "{label}: {:?}", usage[0]);
        }
    }
    let stats = telemetry.writer().unwrap().stats();
    assert_eq!(stats.dropped_rows, 0, "{stats:?}");
    telemetry.shutdown().await;
}
