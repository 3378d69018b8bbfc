//! The whole server against the mock LLM server, through the real OpenAI and Anthropic
//! clients: plain, streamed, multi-step tool calling with a config-declared HTTP tool,
//! structured output, and every injected fault mapped to DESIGN.md's status.

use glassbox_mockllm::{Fault, MockLlm, Reply, ScriptedToolCall};
use glassbox_server::HttpOptions;
use serde_json::{Value, json};

use crate::helpers::{TestApp, parse_chunks, spawn_app_with, spawn_tool_server, sse_data};

const PROVIDERS: [&str; 2] = ["openai", "anthropic"];

async fn spawn(mock: &MockLlm, provider: &str) -> TestApp {
    let tool_url = spawn_tool_server().await;
    let config = format!(
        r#"
[models.main]
provider = "{provider}"
model = "test-model"
base_url = "${{MOCK_URL}}"
api_key_env = "TEST_PROVIDER_KEY"
max_retries = 0
first_byte_timeout_ms = 400
total_timeout_ms = 5000

[tools.get_weather]
description = "Weather for a city"
url = "{tool_url}"
parameters = {{ type = "object", properties = {{ city = {{ type = "string" }} }}, required = ["city"] }}

[agents.assistant]
instructions = "You are helpful."
model = "main"
tools = ["get_weather"]

[agents.extract]
instructions = "Extract the city."
model = "main"
output_schema = {{ type = "object", properties = {{ city = {{ type = "string" }} }}, required = ["city"] }}
"#
    );
    let base = mock.openai_base_url();
    let env = move |name: &str| match name {
        "MOCK_URL" => Some(base.clone()),
        "TEST_PROVIDER_KEY" => Some("sk-test-secret".to_owned()),
        _ => None,
    };
    spawn_app_with(&config, HttpOptions::default(), &env).await
}

#[tokio::test]
async fn plain_and_streamed_answers() {
    for provider in PROVIDERS {
        let mock = MockLlm::start().await.unwrap();
        let app = spawn(&mock, provider).await;
        mock.push(Reply::Text("The answer is 42.".into()));
        let body: Value = app.post_json("/api/agents/assistant/generate", json!({"messages": "question"})).await.json().await.unwrap();
        assert_eq!(body["text"], "The answer is 42.", "{provider}: {body}");
        assert!(body["usage"]["inputTokens"].as_u64().unwrap() > 0, "{provider}");

        mock.push(Reply::Text("Streaming works fine here.".into()));
        let response = app.post_json("/api/agents/assistant/stream", json!({"messages": "question"})).await;
        assert_eq!(response.status(), 200, "{provider}");
        let chunks = parse_chunks(&sse_data(response).await);
        let text: String = chunks
            .iter()
            .filter(|c| c["type"] == "text-delta")
            .map(|c| c["payload"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Streaming works fine here.", "{provider}");
        assert_eq!(chunks.last().unwrap()["type"], "finish", "{provider}");

        let requests = mock.requests();
        match provider {
            "openai" => {
                assert_eq!(requests[0].headers["authorization"], "Bearer sk-test-secret");
                assert_eq!(requests[0].body["messages"][0]["role"], "system");
            }
            _ => {
                assert_eq!(requests[0].headers["x-api-key"], "sk-test-secret");
                assert_eq!(requests[0].body["system"], "You are helpful.");
            }
        }
        assert_eq!(requests[1].body["stream"], true);
    }
}

#[tokio::test]
async fn multi_step_tool_calling_through_a_config_declared_http_tool() {
    for provider in PROVIDERS {
        for route in ["generate", "stream"] {
            let mock = MockLlm::start().await.unwrap();
            let app = spawn(&mock, provider).await;
            mock.push(Reply::ToolCalls(vec![ScriptedToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Oslo"}),
            }]));
            mock.push(Reply::Text("It is 21 degrees in Oslo.".into()));
            let response = app.post_json(&format!("/api/agents/assistant/{route}"), json!({"messages": "weather in Oslo?"})).await;
            assert_eq!(response.status(), 200, "{provider} {route}");
            if route == "generate" {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["text"], "It is 21 degrees in Oslo.", "{provider}: {body}");
                assert_eq!(body["toolCalls"][0]["toolName"], "get_weather");
                assert_eq!(body["toolCalls"][0]["args"]["city"], "Oslo");
                assert_eq!(body["toolResults"][0]["result"], json!({"city": "Oslo", "celsius": 21}));
                assert_eq!(body["toolResults"][0]["isError"], false);
            } else {
                let chunks = parse_chunks(&sse_data(response).await);
                let kinds: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
                let call = kinds.iter().position(|k| *k == "tool-call").expect("tool-call chunk");
                let result = kinds.iter().position(|k| *k == "tool-result").expect("tool-result chunk");
                assert!(call < result, "{kinds:?}");
                assert_eq!(chunks[result]["payload"]["result"]["celsius"], 21);
                assert_eq!(*kinds.last().unwrap(), "finish");
            }
            // The second model call carried the tool's result back.
            let second = mock.requests()[1].body.to_string();
            assert!(second.contains("celsius"), "{provider}: {second}");
            assert!(second.contains("call_1"), "{provider}: {second}");
        }
    }
}

#[tokio::test]
async fn structured_output_is_requested_and_returned() {
    for provider in PROVIDERS {
        let mock = MockLlm::start().await.unwrap();
        let app = spawn(&mock, provider).await;
        mock.push(Reply::Text("{\"city\": \"Oslo\"}".into()));
        let body: Value = app.post_json("/api/agents/extract/generate", json!({"messages": "I live in Oslo"})).await.json().await.unwrap();
        assert_eq!(body["object"], json!({"city": "Oslo"}), "{provider}: {body}");
        if provider == "openai" {
            assert_eq!(mock.requests()[0].body["response_format"]["type"], "json_schema");
        }
        // An invalid answer gets one repair attempt, then a clear 502.
        mock.push(Reply::Text("Oslo".into()));
        mock.push(Reply::Text("still not json".into()));
        let response = app.post_json("/api/agents/extract/generate", json!({"messages": "I live in Oslo"})).await;
        assert_eq!(response.status(), 502, "{provider}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "structured_output_invalid", "{provider}: {body}");
    }
}

#[tokio::test]
async fn every_injected_fault_maps_to_its_status() {
    let cases = [
        (Fault::RateLimited { retry_after_secs: 1 }, 502, "provider_rate_limited"),
        (Fault::ServerError, 502, "provider_error"),
        (Fault::Unavailable, 502, "provider_error"),
        (Fault::Unauthorized, 502, "provider_auth"),
        (Fault::BadRequest, 502, "provider_bad_request"),
        (Fault::Hang, 504, "provider_timeout"),
        (Fault::Reset, 502, "provider_unreachable"),
        (Fault::MalformedJson, 502, "provider_malformed_response"),
    ];
    for provider in PROVIDERS {
        let mock = MockLlm::start().await.unwrap();
        let app = spawn(&mock, provider).await;
        for (fault, status, code) in cases.clone() {
            mock.push(Reply::Fault(fault.clone()));
            let response = app.post_json("/api/agents/assistant/generate", json!({"messages": "hi"})).await;
            assert_eq!(response.status(), status, "{provider} {fault:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], code, "{provider} {fault:?}: {body}");
            assert!(!body["error"].as_str().unwrap().contains("sk-test-secret"), "no key in errors");
        }
        // A stream that fails before any output answers with a status too.
        for (fault, status, code) in [
            (Fault::MalformedSse, 502, "provider_malformed_response"),
            (Fault::ServerError, 502, "provider_error"),
            (Fault::Hang, 504, "provider_timeout"),
        ] {
            mock.push(Reply::Fault(fault.clone()));
            let response = app.post_json("/api/agents/assistant/stream", json!({"messages": "hi"})).await;
            assert_eq!(response.status(), status, "{provider} stream {fault:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], code, "{provider} stream {fault:?}: {body}");
        }
        // A stream cut after output began: the deltas, an error chunk, then [DONE].
        mock.push(Reply::Fault(Fault::CutStream));
        let response = app.post_json("/api/agents/assistant/stream", json!({"messages": "hi"})).await;
        assert_eq!(response.status(), 200, "{provider}");
        let data = sse_data(response).await;
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{provider}");
        let chunks = parse_chunks(&data);
        assert!(chunks.iter().any(|c| c["type"] == "text-delta"), "{provider}: {chunks:?}");
        let error = chunks.last().unwrap();
        assert_eq!(error["type"], "error", "{provider}: {chunks:?}");
        assert_eq!(error["payload"]["code"], "provider_stream_interrupted", "{provider}: {error}");

        // And the server is fine afterwards.
        mock.push(Reply::Text("recovered".into()));
        let body: Value = app.post_json("/api/agents/assistant/generate", json!({"messages": "hi"})).await.json().await.unwrap();
        assert_eq!(body["text"], "recovered", "{provider}");
    }
}
