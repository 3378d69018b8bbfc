//! The OpenAI-compatible facade: the official `openai` Python SDK calls an agent plain and
//! streamed, and each call leaves the same trace and usage rows as the native routes; the
//! wire format and OpenAI's error shape are also checked byte by byte with reqwest.

use std::path::PathBuf;

use glassbox_mockllm::Reply;
use glassbox_store::UsageRow;
use serde_json::{Value, json};

use crate::helpers::{BASE_CONFIG, parse_chunks, spawn_app, spawn_app_with, sse_data};
use crate::telemetry::{Traced, one, spawn_traced, sqlite_store, wait_for_trace};

/// The venv's Python that tests/run.sh prepares (with `openai` and `openapi-spec-validator`).
pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("GLASSBOX_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/glassbox/venv/bin/python")
    });
    assert!(
        path.exists(),
        "the test Python {} is missing: run ./tests/run.sh --setup-only (it installs tests/python/requirements.txt)",
        path.display()
    );
    path
}

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

/// Runs `tests/python/<script>` and parses what it prints as JSON; fails with its stderr.
pub(crate) async fn run_python(script: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(python())
        .arg(repo_path(&format!("tests/python/{script}")))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run {script}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{}\n(missing packages? run ./tests/run.sh --setup-only)",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn usage_of(traced: &Traced, trace_id: &str) -> UsageRow {
    let (spans, usage) = wait_for_trace(traced, trace_id, 3, 1).await;
    assert_eq!(spans.len(), 3, "{:#?}", spans.iter().map(|s| &s.span_name).collect::<Vec<_>>());
    let http = one(&spans, "POST /v1/chat/completions");
    let agent = one(&spans, "invoke_agent assistant");
    let chat = one(&spans, "chat test-model");
    assert_eq!(http.attribute("http.route"), Some("/v1/chat/completions"));
    assert_eq!(http.attribute("http.response.status_code"), Some("200"));
    assert_eq!(agent.parent_span_id, http.span_id);
    assert_eq!(chat.parent_span_id, agent.span_id);
    assert_eq!(usage.len(), 1);
    let row = usage.into_iter().next().unwrap();
    assert_eq!(row.span_id, chat.span_id);
    assert_eq!((row.agent.as_str(), row.provider.as_str(), row.model.as_str()), ("assistant", "openai", "test-model"));
    assert_eq!(row.status, "ok");
    // `test-model` costs $1 and $2 per million input and output tokens.
    assert_eq!(row.cost_nano_usd, row.input_tokens as i64 * 1000 + row.output_tokens as i64 * 2000);
    assert!(row.input_tokens > 0 && row.output_tokens > 0, "{row:?}");
    row
}

#[tokio::test(flavor = "current_thread")]
async fn the_openai_sdk_calls_an_agent_plain_and_streamed_and_leaves_its_traces() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    traced.mock.push(Reply::Text("Plain answer.".into()));
    traced.mock.push(Reply::Text("Streamed answer, with usage.".into()));
    traced.mock.push(Reply::Text("Streamed answer.".into()));
    let base_url = traced.app.url("/v1");
    let stdout = run_python("openai_client.py", &[&base_url, "assistant"]).await;
    let out: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"));

    // Plain: one chat.completion, its id naming the trace.
    let plain = &out["plain"];
    let completion = &plain["completion"];
    let plain_trace = plain["trace_id"].as_str().unwrap();
    assert_eq!(completion["id"], format!("chatcmpl-{plain_trace}"));
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "assistant");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(completion["choices"][0]["message"]["content"], "Plain answer.");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    let row = usage_of(&traced, plain_trace).await;
    assert_eq!(completion["usage"]["prompt_tokens"], row.input_tokens);
    assert_eq!(completion["usage"]["completion_tokens"], row.output_tokens);
    assert_eq!(completion["usage"]["total_tokens"], row.input_tokens + row.output_tokens);
    let request = &traced.mock.requests()[0];
    let sent = format!("{:?}", request);
    assert!(
        sent.contains("Be brief.") && sent.contains("plain call"),
        "system and user messages reach the model: {sent}"
    );

    // Streamed with include_usage: role first, text deltas, the finish, then the usage chunk.
    let streamed = &out["streamed"];
    let stream_trace = streamed["trace_id"].as_str().unwrap();
    let chunks = streamed["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 4, "{chunks:#?}");
    for chunk in chunks {
        assert_eq!(chunk["id"], format!("chatcmpl-{stream_trace}"));
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "assistant");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"].get(0).and_then(|choice| choice["delta"]["content"].as_str()))
        .collect();
    assert_eq!(text, "Streamed answer, with usage.");
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter(|chunk| chunk["choices"].get(0).is_some_and(|choice| !choice["finish_reason"].is_null()))
        .collect();
    assert_eq!(finishes.len(), 1, "one chunk carries the finish reason");
    assert_eq!(finishes[0]["choices"][0]["finish_reason"], "stop");
    let (last, before) = chunks.split_last().unwrap();
    assert_eq!(last["choices"], json!([]), "the usage chunk has no choices");
    assert!(before.iter().all(|chunk| chunk["usage"].is_null()), "only the last chunk has usage");
    let row = usage_of(&traced, stream_trace).await;
    assert_eq!(last["usage"]["prompt_tokens"], row.input_tokens);
    assert_eq!(last["usage"]["completion_tokens"], row.output_tokens);
    assert!(row.time_to_first_token_ns > 0, "a streamed call records its time to first token");

    // Streamed without include_usage: no usage anywhere.
    let chunks = out["streamed_no_usage"]["chunks"].as_array().unwrap();
    assert!(chunks.iter().all(|chunk| chunk["usage"].is_null()));
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"].get(0).and_then(|choice| choice["delta"]["content"].as_str()))
        .collect();
    assert_eq!(text, "Streamed answer.");

    // The models are the agents.
    let models = out["models"].as_array().unwrap();
    let ids: Vec<&str> = models.iter().map(|model| model["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["assistant", "private", "silent"], "every agent of the config, in its order");
    assert_eq!(models[0]["id"], "assistant");
    assert_eq!(models[0]["object"], "model");
    assert_eq!(models[0]["owned_by"], "glassbox");
    assert_eq!(out["model"], models[0], "GET /v1/models/{{model}} answers the same entry");

    // An unknown agent is the SDK's NotFoundError, with OpenAI's error body.
    let unknown = &out["unknown_model"];
    assert_eq!(unknown["raised"], "NotFoundError");
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["body"]["type"], "not_found_error");
    assert_eq!(unknown["body"]["code"], "agent_not_found");
    assert!(unknown["body"]["message"].as_str().unwrap().contains("no-such-agent"));
    assert_eq!(traced.mock.request_count(), 3, "the unknown agent made no model call");
    traced.telemetry.shutdown().await;
}

const FACADE_CONFIG: &str = r#"
[models.broken]
provider = "mock"
model = "mock-error"

[models.broken-stream]
provider = "mock"
model = "mock-stream-error"

[agents.broken]
instructions = "Fail."
model = "broken"

[agents.broken-stream]
instructions = "Fail mid-way."
model = "broken-stream"
"#;

async fn expect_openai_error(response: reqwest::Response, status: u16, kind: &str, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(response.headers().contains_key("traceparent"), "errors carry the trace too");
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(error.is_object(), "OpenAI's shape: {body}");
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    assert!(error.get("param").is_some(), "param is always present: {body}");
    body
}

#[tokio::test]
async fn facade_errors_answer_in_openais_shape() {
    let app = spawn_app(&format!("{BASE_CONFIG}{FACADE_CONFIG}")).await;
    let chat = "/v1/chat/completions";

    let body =
        expect_openai_error(app.post_raw(chat, "{not json").await, 400, "invalid_request_error", "malformed_json")
            .await;
    assert!(body["error"]["param"].is_null());
    // Each bad body, and what the error names: its `param`, or (`model` missing, no param to
    // point at) a word of its message.
    let user_hi = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!({"model": "echo", "messages": "hi"}), 400, "invalid_body", Some("messages"), ""),
        (json!({"messages": []}), 400, "invalid_body", None, "model"),
        (json!({"model": "echo", "messages": []}), 400, "invalid_body", Some("messages"), ""),
        (
            json!({"model": "echo", "messages": [{"role": "tool", "content": "42", "tool_call_id": "c"}]}),
            400,
            "invalid_body",
            Some("messages[0].role"),
            "",
        ),
        (
            json!({"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            400,
            "invalid_body",
            Some("messages[0].content[0].type"),
            "",
        ),
        (json!({"model": "nobody", "messages": user_hi}), 404, "agent_not_found", None, ""),
        (json!({"model": "broken", "messages": user_hi}), 502, "provider_error", None, "model call failed"),
        // A stream that fails before any output answers with the status, not a 200 stream.
        (json!({"model": "broken", "stream": true, "messages": user_hi}), 502, "provider_error", None, ""),
    ];
    for (request, status, code, param, message_has) in cases {
        let kind = match status {
            404 => "not_found_error",
            502 => "api_error",
            _ => "invalid_request_error",
        };
        let body = expect_openai_error(app.post_json(chat, request.clone()).await, status, kind, code).await;
        if let Some(param) = param {
            assert_eq!(body["error"]["param"], param, "{request}");
        }
        assert!(body["error"]["message"].as_str().unwrap().contains(message_has), "{request}: {body}");
    }
    expect_openai_error(
        app.client.get(app.url("/v1/models/nobody")).send().await.unwrap(),
        404,
        "not_found_error",
        "agent_not_found",
    )
    .await;
    expect_openai_error(
        app.client.get(app.url("/v1/nope")).send().await.unwrap(),
        404,
        "not_found_error",
        "route_not_found",
    )
    .await;
    // axum's own 405 (an empty body) is rewritten too, keeping its Allow header.
    let response = app.client.get(app.url(chat)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Method Not Allowed");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // The native routes keep Glassbox's own shape.
    let response = app.post_json("/api/agents/nobody/generate", json!({"messages": "hi"})).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "agent_not_found");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn an_oversized_body_is_a_413_in_openais_shape() {
    let options = glassbox_server::HttpOptions { body_limit: 256, ..Default::default() };
    let app = spawn_app_with(BASE_CONFIG, options, &|_| None).await;
    let big = "x".repeat(1024);
    let body = expect_openai_error(
        app.post_json("/v1/chat/completions", json!({"model": "echo", "messages": [{"role": "user", "content": big}]}))
            .await,
        413,
        "invalid_request_error",
        "body_too_large",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("256"));
}

#[tokio::test]
async fn a_stream_failing_after_output_ends_with_an_error_event_and_done() {
    let app = spawn_app(&format!("{BASE_CONFIG}{FACADE_CONFIG}")).await;
    let response = app
        .post_json(
            "/v1/chat/completions",
            json!({"model": "broken-stream", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let data = sse_data(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let events = parse_chunks(&data);
    let (last, before) = events.split_last().unwrap();
    assert_eq!(last["error"]["type"], "api_error", "{last}");
    assert!(last["error"]["code"].as_str().is_some_and(|code| code.starts_with("provider")), "{last}");
    assert!(before.iter().all(|event| event["object"] == "chat.completion.chunk"), "{before:#?}");
    assert!(
        before
            .iter()
            .any(|event| event["choices"][0]["delta"]["content"].as_str().is_some_and(|text| !text.is_empty()))
    );
}

#[tokio::test]
async fn response_format_json_schema_asks_for_a_structured_answer() {
    let app = spawn_app(
        r#"
[models.json]
provider = "mock"
model = "mock-json"

[agents.extractor]
instructions = "Extract."
model = "json"
"#,
    )
    .await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let response = app
        .post_json(
            "/v1/chat/completions",
            json!({
                "model": "extractor",
                "messages": [{"role": "user", "content": "Ada"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    let object: Value = serde_json::from_str(content).unwrap_or_else(|error| panic!("{error}: {content}"));
    assert!(object["name"].is_string(), "{object}");

    let response = app
        .post_json(
            "/v1/chat/completions",
            json!({"model": "extractor", "messages": [{"role": "user", "content": "Ada"}],
                   "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": 3}}}),
        )
        .await;
    let body = expect_openai_error(response, 400, "invalid_request_error", "invalid_body").await;
    assert_eq!(body["error"]["param"], "response_format.json_schema.schema");
}
