//! Scenarios both wire formats must pass, run against the mock LLM server by the `openai` and
//! `anthropic` modules. Usage expectations follow the mock's rule (four characters a token,
//! rounded up; prompts over 4096 characters report half their input tokens as cached).

use std::time::{Duration, Instant};

use glassbox_core::{FinishReason, ModelEvent, ProviderError, TimeoutPhase, ToolCall};
use glassbox_mockllm::{Fault, Reply, ScriptedToolCall};
use serde_json::{Value, json};

use crate::support::{
    Wire, build, closed_port, collect, finish, model, settings, simple_request, start, streamed_text, tool_request,
};

fn expected_path(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
    }
}

pub async fn plain_text(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Text("Hi there, friend".to_owned()));
    let response = model(&mock, wire).generate(&simple_request("Hello")).await.unwrap();

    assert_eq!(response.text, "Hi there, friend");
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.model, "test-model");
    // "You are terse." + "Hello" = 19 characters -> 5 tokens; the answer's 16 -> 4.
    assert_eq!(response.usage.input_tokens, 5);
    assert_eq!(response.usage.output_tokens, 4);
    assert_eq!(response.usage.cached_input_tokens, 0);

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, expected_path(wire));
    assert_eq!(request.headers["x-glassbox-test"], "yes");
    match wire {
        Wire::OpenAi => {
            assert_eq!(request.headers["authorization"], "Bearer sk-test-secret");
            assert!(request.headers.get("x-api-key").is_none());
        }
        Wire::Anthropic => {
            assert_eq!(request.headers["x-api-key"], "sk-test-secret");
            assert_eq!(request.headers["anthropic-version"], "2023-06-01");
            assert!(request.headers.get("authorization").is_none());
        }
    }
    assert_eq!(request.body["model"], "test-model");
    assert!(request.body.get("stream").is_none(), "plain calls do not ask for a stream: {}", request.body);
}

pub async fn output_limit_is_sent_and_length_reported(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Text("a long answer that will be cut by the output limit".to_owned()));
    let mut request = simple_request("Hello");
    request.max_output_tokens = Some(2);
    request.temperature = Some(0.25);
    let response = model(&mock, wire).generate(&request).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(response.text, "a long a");

    let body = &mock.requests()[0].body;
    assert_eq!(body["max_tokens"], 2, "{body}");
    assert_eq!(body["temperature"], 0.25);
}

pub async fn streamed_text_with_cached_usage(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Text("one two three four".to_owned()));
    let long_prompt = "a".repeat(5000);
    let (events, error) = collect(model(&mock, wire).stream(&simple_request(&long_prompt)).await).await;
    assert!(error.is_none(), "{error:?}");

    let response = finish(&events);
    let deltas = &events[..events.len() - 1];
    assert!(deltas.iter().all(|event| matches!(event, ModelEvent::TextDelta(_))), "{deltas:#?}");
    assert_eq!(deltas.len(), 4, "one delta per word: {deltas:#?}");
    assert_eq!(streamed_text(&events), "one two three four");
    assert_eq!(response.text, "one two three four");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.model, "test-model");

    // 5014 characters -> 1254 tokens, half of them (627) from the prompt cache.
    assert_eq!(response.usage.cached_input_tokens, 627);
    // Anthropic's `input_tokens` excludes cache reads; Glassbox adds them back, so both wire
    // formats give the same total.
    assert_eq!(response.usage.input_tokens, 1254);
    assert_eq!(response.usage.output_tokens, 5);

    let body = &mock.requests()[0].body;
    assert_eq!(body["stream"], true);
    if wire == Wire::OpenAi {
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }
}

fn scripted_calls() -> (Vec<ScriptedToolCall>, Vec<ToolCall>) {
    let calls = [("call_a", json!({"city": "Oslo"})), ("call_b", json!({"city": "Bergen", "unit": "c"}))];
    let scripted = calls
        .iter()
        .map(|(id, arguments)| ScriptedToolCall {
            id: (*id).to_owned(),
            name: "get_weather".to_owned(),
            arguments: arguments.clone(),
        })
        .collect();
    let expected = calls
        .iter()
        .map(|(id, arguments)| ToolCall {
            id: (*id).to_owned(),
            name: "get_weather".to_owned(),
            arguments: arguments.clone(),
        })
        .collect();
    (scripted, expected)
}

pub async fn tool_calls_plain(wire: Wire) {
    let mock = start().await;
    let (scripted, expected) = scripted_calls();
    mock.push(Reply::ToolCalls(scripted));
    let response = model(&mock, wire).generate(&tool_request("Weather in Oslo and Bergen?")).await.unwrap();
    assert_eq!(response.tool_calls, expected);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text, "");
}

pub async fn tool_calls_streamed(wire: Wire) {
    let mock = start().await;
    let (scripted, expected) = scripted_calls();
    mock.push(Reply::ToolCalls(scripted));
    let (events, error) = collect(model(&mock, wire).stream(&tool_request("Weather?")).await).await;
    assert!(error.is_none(), "{error:?}");
    let response = finish(&events);
    assert_eq!(response.tool_calls, expected);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);

    for (call_idx, call) in expected.iter().enumerate() {
        let deltas: Vec<(&Option<String>, &Option<String>, &str)> = events
            .iter()
            .filter_map(|event| match event {
                ModelEvent::ToolCallDelta { index, id, name, arguments_delta } if *index == call_idx => {
                    Some((id, name, arguments_delta.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(deltas[0].0.as_deref(), Some(call.id.as_str()), "id on the first delta");
        assert_eq!(deltas[0].1.as_deref(), Some("get_weather"), "name on the first delta");
        assert!(deltas[1..].iter().all(|(id, name, _)| id.is_none() && name.is_none()), "{deltas:?}");
        let fragments: Vec<&str> = deltas.iter().map(|(_, _, fragment)| *fragment).filter(|f| !f.is_empty()).collect();
        assert!(fragments.len() >= 2, "arguments arrive in fragments: {fragments:?}");
        let arguments: Value = serde_json::from_str(&fragments.concat()).unwrap();
        assert_eq!(arguments, call.arguments);
    }
}

pub async fn rate_limit_is_retried(wire: Wire, streamed: bool) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::RateLimited { retry_after_secs: 0 }));
    mock.push(Reply::Text("after the limit".to_owned()));
    let model = model(&mock, wire);
    let request = simple_request("Hello");
    let text = if streamed {
        let (events, error) = collect(model.stream(&request).await).await;
        assert!(error.is_none(), "{error:?}");
        finish(&events).text.clone()
    } else {
        model.generate(&request).await.unwrap().text
    };
    assert_eq!(text, "after the limit");
    assert_eq!(mock.request_count(), 2);
}

pub async fn rate_limit_without_retries_left(wire: Wire) {
    let mock = start().await;
    // max_retries 0: the 429 is returned as is, with its Retry-After.
    let mut no_retries = settings(&mock, wire);
    no_retries.max_retries = 0;
    mock.push(Reply::Fault(Fault::RateLimited { retry_after_secs: 1 }));
    let error = build(wire, no_retries).generate(&simple_request("Hello")).await.unwrap_err();
    match &error {
        ProviderError::RateLimited { retry_after, message } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(1)));
            assert!(message.contains("Rate limit reached"), "{message}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(mock.request_count(), 1);

    // Two retries, three 429s: the last one is returned.
    for _ in 0..3 {
        mock.push(Reply::Fault(Fault::RateLimited { retry_after_secs: 0 }));
    }
    mock.push(Reply::Text("too late".to_owned()));
    let error = model(&mock, wire).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::RateLimited { retry_after: Some(after), .. } if after.is_zero()),
        "{error:?}"
    );
    assert_eq!(mock.request_count(), 1 + 3);
}

pub async fn retry_after_beyond_the_budget_gives_up(wire: Wire) {
    let mock = start().await;
    let mut short = settings(&mock, wire);
    short.total_timeout = Duration::from_secs(3);
    mock.push(Reply::Fault(Fault::RateLimited { retry_after_secs: 30 }));
    mock.push(Reply::Text("never reached".to_owned()));
    let started = Instant::now();
    let error = build(wire, short).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::RateLimited { retry_after: Some(after), .. } if after == Duration::from_secs(30)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "gave up at once, not after waiting");
    assert_eq!(mock.request_count(), 1);
}

pub async fn server_errors_are_retried(wire: Wire, streamed: bool) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::ServerError));
    mock.push(Reply::Fault(Fault::Unavailable));
    mock.push(Reply::Text("recovered".to_owned()));
    let model = model(&mock, wire);
    let request = simple_request("Hello");
    let text = if streamed {
        let (events, error) = collect(model.stream(&request).await).await;
        assert!(error.is_none(), "{error:?}");
        finish(&events).text.clone()
    } else {
        model.generate(&request).await.unwrap().text
    };
    assert_eq!(text, "recovered");
    assert_eq!(mock.request_count(), 3);
}

pub async fn server_errors_exhaust_retries(wire: Wire) {
    let mock = start().await;
    for _ in 0..3 {
        mock.push(Reply::Fault(Fault::ServerError));
    }
    let error = model(&mock, wire).generate(&simple_request("Hello")).await.unwrap_err();
    match &error {
        ProviderError::Upstream { status: 500, message } => assert!(message.contains("mock fault"), "{message}"),
        other => panic!("expected Upstream 500, got {other:?}"),
    }
    assert_eq!(mock.request_count(), 3, "the first attempt and two retries");

    mock.push(Reply::Fault(Fault::Unavailable));
    let mut no_retries = settings(&mock, wire);
    no_retries.max_retries = 0;
    let error = build(wire, no_retries).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Upstream { status: 503, .. }), "{error:?}");
}

pub async fn unauthorized_is_not_retried(wire: Wire, streamed: bool) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::Unauthorized));
    mock.push(Reply::Text("must not be used".to_owned()));
    let model = model(&mock, wire);
    let request = simple_request("Hello");
    let error = if streamed {
        let (events, error) = collect(model.stream(&request).await).await;
        assert!(events.is_empty());
        error.unwrap()
    } else {
        model.generate(&request).await.unwrap_err()
    };
    match &error {
        ProviderError::Auth { status: 401, message } => assert!(message.contains("Incorrect API key"), "{message}"),
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(!error.to_string().contains("sk-test-secret"));
    assert_eq!(mock.request_count(), 1);
}

pub async fn bad_request_is_not_retried(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::BadRequest));
    let error = model(&mock, wire).generate(&simple_request("Hello")).await.unwrap_err();
    match &error {
        ProviderError::BadRequest { status: 400, message } => {
            assert!(message.contains("invalid_request_error: Invalid request (mock fault)"), "{message}");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    assert_eq!(mock.request_count(), 1);
}

pub async fn hang_times_out_on_first_byte(wire: Wire, streamed: bool) {
    let mock = start().await;
    let mut impatient = settings(&mock, wire);
    impatient.first_byte_timeout = Duration::from_millis(200);
    mock.push(Reply::Fault(Fault::Hang));
    mock.push(Reply::Text("must not be used".to_owned()));
    let model = build(wire, impatient);
    let request = simple_request("Hello");
    let started = Instant::now();
    let error = if streamed {
        collect(model.stream(&request).await).await.1.unwrap()
    } else {
        model.generate(&request).await.unwrap_err()
    };
    assert!(
        matches!(error, ProviderError::Timeout { phase: TimeoutPhase::FirstByte, after } if after == Duration::from_millis(200)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(mock.request_count(), 1, "a first-byte timeout is not retried");
}

pub async fn hang_hits_the_total_timeout(wire: Wire) {
    let mock = start().await;
    let mut impatient = settings(&mock, wire);
    impatient.total_timeout = Duration::from_millis(300);
    mock.push(Reply::Fault(Fault::Hang));
    let error = build(wire, impatient).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Timeout { phase: TimeoutPhase::Total, .. }), "{error:?}");
}

pub async fn reset_is_retried(wire: Wire, streamed: bool) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::Reset));
    mock.push(Reply::Text("after the reset".to_owned()));
    let model = model(&mock, wire);
    let request = simple_request("Hello");
    let text = if streamed {
        let (events, error) = collect(model.stream(&request).await).await;
        assert!(error.is_none(), "{error:?}");
        finish(&events).text.clone()
    } else {
        model.generate(&request).await.unwrap().text
    };
    assert_eq!(text, "after the reset");
    assert_eq!(mock.request_count(), 2);
}

pub async fn resets_exhaust_retries(wire: Wire) {
    let mock = start().await;
    let mut one_retry = settings(&mock, wire);
    one_retry.max_retries = 1;
    mock.push(Reply::Fault(Fault::Reset));
    mock.push(Reply::Fault(Fault::Reset));
    let error = build(wire, one_retry).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Connection { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some(), "the transport error is kept as the source");
    assert_eq!(mock.request_count(), 2);
}

pub async fn unreachable_server_is_a_connection_error(wire: Wire) {
    let mock = start().await;
    let mut unreachable = settings(&mock, wire);
    unreachable.base_url = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let error = build(wire, unreachable).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Connection { .. }), "{error:?}");
    assert!(error.is_retryable());
}

pub async fn malformed_json_is_reported(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::MalformedJson));
    let error = model(&mock, wire).generate(&simple_request("Hello")).await.unwrap_err();
    assert!(matches!(error, ProviderError::MalformedResponse { source: Some(_), .. }), "{error:?}");
    assert_eq!(mock.request_count(), 1);
}

pub async fn malformed_sse_is_reported(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::MalformedSse));
    let (events, error) = collect(model(&mock, wire).stream(&simple_request("Hello")).await).await;
    assert!(events.iter().all(|event| !matches!(event, ModelEvent::Finish(_))));
    assert!(matches!(error, Some(ProviderError::MalformedResponse { .. })), "{error:?}");
    assert_eq!(mock.request_count(), 1);
}

pub async fn cut_stream_is_interrupted_and_not_retried(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::CutStream));
    mock.push(Reply::Text("must not be used".to_owned()));
    let (events, error) = collect(model(&mock, wire).stream(&simple_request("Hello")).await).await;
    assert_eq!(events, vec![ModelEvent::TextDelta("Partial".to_owned()), ModelEvent::TextDelta(" answer".to_owned())]);
    assert!(matches!(error, Some(ProviderError::StreamInterrupted { .. })), "{error:?}");
    assert_eq!(mock.request_count(), 1, "no retry once output was yielded");
}

/// Fails for every model request, so `stream()` must report it.
pub async fn streamed_errors_before_output_come_from_stream(wire: Wire) {
    let mock = start().await;
    mock.push(Reply::Fault(Fault::BadRequest));
    let started = model(&mock, wire).stream(&simple_request("Hello")).await;
    assert!(matches!(started, Err(ProviderError::BadRequest { status: 400, .. })));
}

/// A whole tool round trip with the mock's default `mock-tool` behaviour: the model calls the
/// tool, the result goes back in the provider's format, the model answers with it.
pub async fn tool_round_trip(wire: Wire) {
    use glassbox_core::Message;

    let mock = start().await;
    let mut tool_model = settings(&mock, wire);
    tool_model.model = "mock-tool".to_owned();
    let model = build(wire, tool_model);
    let mut request = tool_request("Weather in Oslo?");
    let first = model.generate(&request).await.unwrap();
    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    let call = first.tool_calls[0].clone();
    assert_eq!(call.name, "get_weather");
    assert_eq!(call.arguments, json!({"city": "test"}));

    request.messages.push(Message::Assistant { text: first.text.clone(), tool_calls: vec![call.clone()] });
    request.messages.push(Message::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: r#"{"celsius":21}"#.to_owned(),
        is_error: false,
    });
    let (events, error) = collect(model.stream(&request).await).await;
    assert!(error.is_none(), "{error:?}");
    let answer = finish(&events);
    assert_eq!(answer.text, r#"Tool result: {"celsius":21}"#);
    assert_eq!(answer.finish_reason, FinishReason::Stop);
}

/// Generates one `#[tokio::test]` per shared scenario for a wire format.
macro_rules! scenario_tests {
    ($wire:expr) => {
        #[tokio::test]
        async fn plain_text() {
            crate::scenarios::plain_text($wire).await
        }
        #[tokio::test]
        async fn output_limit_is_sent_and_length_reported() {
            crate::scenarios::output_limit_is_sent_and_length_reported($wire).await
        }
        #[tokio::test]
        async fn streamed_text_with_cached_usage() {
            crate::scenarios::streamed_text_with_cached_usage($wire).await
        }
        #[tokio::test]
        async fn tool_calls_plain() {
            crate::scenarios::tool_calls_plain($wire).await
        }
        #[tokio::test]
        async fn tool_calls_streamed() {
            crate::scenarios::tool_calls_streamed($wire).await
        }
        #[tokio::test]
        async fn tool_round_trip() {
            crate::scenarios::tool_round_trip($wire).await
        }
        #[tokio::test]
        async fn rate_limit_is_retried() {
            crate::scenarios::rate_limit_is_retried($wire, false).await
        }
        #[tokio::test]
        async fn rate_limit_is_retried_streamed() {
            crate::scenarios::rate_limit_is_retried($wire, true).await
        }
        #[tokio::test]
        async fn rate_limit_without_retries_left() {
            crate::scenarios::rate_limit_without_retries_left($wire).await
        }
        #[tokio::test]
        async fn retry_after_beyond_the_budget_gives_up() {
            crate::scenarios::retry_after_beyond_the_budget_gives_up($wire).await
        }
        #[tokio::test]
        async fn server_errors_are_retried() {
            crate::scenarios::server_errors_are_retried($wire, false).await
        }
        #[tokio::test]
        async fn server_errors_are_retried_streamed() {
            crate::scenarios::server_errors_are_retried($wire, true).await
        }
        #[tokio::test]
        async fn server_errors_exhaust_retries() {
            crate::scenarios::server_errors_exhaust_retries($wire).await
        }
        #[tokio::test]
        async fn unauthorized_is_not_retried() {
            crate::scenarios::unauthorized_is_not_retried($wire, false).await
        }
        #[tokio::test]
        async fn unauthorized_is_not_retried_streamed() {
            crate::scenarios::unauthorized_is_not_retried($wire, true).await
        }
        #[tokio::test]
        async fn bad_request_is_not_retried() {
            crate::scenarios::bad_request_is_not_retried($wire).await
        }
        #[tokio::test]
        async fn hang_times_out_on_first_byte() {
            crate::scenarios::hang_times_out_on_first_byte($wire, false).await
        }
        #[tokio::test]
        async fn hang_times_out_on_first_byte_streamed() {
            crate::scenarios::hang_times_out_on_first_byte($wire, true).await
        }
        #[tokio::test]
        async fn hang_hits_the_total_timeout() {
            crate::scenarios::hang_hits_the_total_timeout($wire).await
        }
        #[tokio::test]
        async fn reset_is_retried() {
            crate::scenarios::reset_is_retried($wire, false).await
        }
        #[tokio::test]
        async fn reset_is_retried_streamed() {
            crate::scenarios::reset_is_retried($wire, true).await
        }
        #[tokio::test]
        async fn resets_exhaust_retries() {
            crate::scenarios::resets_exhaust_retries($wire).await
        }
        #[tokio::test]
        async fn unreachable_server_is_a_connection_error() {
            crate::scenarios::unreachable_server_is_a_connection_error($wire).await
        }
        #[tokio::test]
        async fn malformed_json_is_reported() {
            crate::scenarios::malformed_json_is_reported($wire).await
        }
        #[tokio::test]
        async fn malformed_sse_is_reported() {
            crate::scenarios::malformed_sse_is_reported($wire).await
        }
        #[tokio::test]
        async fn cut_stream_is_interrupted_and_not_retried() {
            crate::scenarios::cut_stream_is_interrupted_and_not_retried($wire).await
        }
        #[tokio::test]
        async fn streamed_errors_before_output_come_from_stream() {
            crate::scenarios::streamed_errors_before_output_come_from_stream($wire).await
        }
    };
}
