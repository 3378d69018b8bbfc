//! Every injected fault as a client sees it, scripted and selected by a `fault-...` model name.

use std::time::Duration;

use glassbox_mockllm::{Fault, MockLlm, Reply};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{anthropic_request, client, openai_request, post_anthropic, post_openai, read_until_error};

#[tokio::test]
async fn rate_limit_sends_retry_after_and_provider_errors() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Fault(Fault::RateLimited { retry_after_secs: 7 }));
    mock.push(Reply::Fault(Fault::RateLimited { retry_after_secs: 2 }));

    let response = post_openai(&mock, &openai_request("gpt-test", "hi")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "requests");
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["param"], Value::Null);
    assert!(error["error"]["message"].is_string());

    let response = post_anthropic(&mock, &anthropic_request("claude-test", "hi")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert!(error["error"]["message"].is_string());
}

#[tokio::test]
async fn error_faults_answer_their_status_and_error_type() {
    let mock = MockLlm::start().await.unwrap();
    let cases = [
        (Fault::ServerError, 500, "server_error", Value::Null, "api_error"),
        (Fault::Unavailable, 503, "server_error", Value::Null, "overloaded_error"),
        (Fault::Unauthorized, 401, "invalid_request_error", json!("invalid_api_key"), "authentication_error"),
        (Fault::BadRequest, 400, "invalid_request_error", Value::Null, "invalid_request_error"),
    ];
    for (fault, status, openai_type, openai_code, anthropic_type) in cases {
        mock.push(Reply::Fault(fault.clone()));
        let response = post_openai(&mock, &openai_request("gpt-test", "hi")).await;
        assert_eq!(response.status(), status, "{fault:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], openai_type, "{fault:?}");
        assert_eq!(error["error"]["code"], openai_code, "{fault:?}");
        assert_eq!(error["error"]["param"], Value::Null, "{fault:?}");

        mock.push(Reply::Fault(fault.clone()));
        let response = post_anthropic(&mock, &anthropic_request("claude-test", "hi")).await;
        assert_eq!(response.status(), status, "{fault:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["type"], "error", "{fault:?}");
        assert_eq!(error["error"]["type"], anthropic_type, "{fault:?}");
    }
}

#[tokio::test]
async fn hang_never_answers_and_does_not_block_other_requests() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Fault(Fault::Hang));
    let hanging = client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .json(&openai_request("gpt-test", "hi"))
        .timeout(Duration::from_millis(300))
        .send();
    let hanging = tokio::spawn(hanging);
    // Wait until the hanging request has been received, so it is the one popping the fault.
    while mock.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let response = post_openai(&mock, &openai_request("gpt-test", "still there?")).await;
    assert_eq!(response.status(), 200);
    let error = hanging.await.unwrap().unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Fault(Fault::Reset));
    let error = client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .json(&openai_request("gpt-test", "hi"))
        .send()
        .await
        .unwrap_err();
    assert!(error.status().is_none(), "{error:?}");
    assert!(!error.is_timeout(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");

    // On a raw socket: the request is read, and what comes back is a TCP reset, not bytes.
    mock.push(Reply::Fault(Fault::Reset));
    let body = openai_request("gpt-test", "hi").to_string();
    let mut stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        mock.addr(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await.unwrap();
    assert!(received.is_empty(), "got bytes: {:?}", String::from_utf8_lossy(&received));
    assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);

    // The server keeps serving afterwards.
    let response = post_openai(&mock, &openai_request("gpt-test", "hi")).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn malformed_json_is_a_200_json_body_that_does_not_parse() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Fault(Fault::MalformedJson));
    mock.push(Reply::Fault(Fault::MalformedJson));
    let responses = [
        post_openai(&mock, &openai_request("gpt-test", "hi")).await,
        post_anthropic(&mock, &anthropic_request("claude-test", "hi")).await,
    ];
    for response in responses {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = response.text().await.unwrap();
        assert!(body.starts_with('{'), "{body}");
        assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    }
}

#[tokio::test]
async fn malformed_sse_has_a_data_line_that_is_not_json() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Fault(Fault::MalformedSse));
    mock.push(Reply::Fault(Fault::MalformedSse));
    let mut openai_body = openai_request("gpt-test", "hi");
    openai_body["stream"] = json!(true);
    let mut anthropic_body = anthropic_request("claude-test", "hi");
    anthropic_body["stream"] = json!(true);
    let responses = [post_openai(&mock, &openai_body).await, post_anthropic(&mock, &anthropic_body).await];
    for response in responses {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = crate::helpers::parse_sse(&response.text().await.unwrap());
        let unparsable = events
            .iter()
            .filter(|event| event.data != "[DONE]")
            .filter(|event| serde_json::from_str::<Value>(&event.data).is_err())
            .count();
        assert_eq!(unparsable, 1, "{events:?}");
    }
}

#[tokio::test]
async fn cut_stream_sends_valid_deltas_then_fails_the_body() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Fault(Fault::CutStream));
    let mut body = openai_request("gpt-test", "hi");
    body["stream"] = json!(true);
    let response = post_openai(&mock, &body).await;
    assert_eq!(response.status(), 200);
    let (received, error) = read_until_error(response).await;
    assert!(error.is_some(), "the body ended cleanly: {received}");
    let deltas: String = received
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str::<Value>(data).unwrap())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(deltas, "Partial answer");
    assert!(!received.contains("[DONE]"));

    mock.push(Reply::Fault(Fault::CutStream));
    let mut body = anthropic_request("claude-test", "hi");
    body["stream"] = json!(true);
    let response = post_anthropic(&mock, &body).await;
    assert_eq!(response.status(), 200);
    let (received, error) = read_until_error(response).await;
    assert!(error.is_some(), "the body ended cleanly: {received}");
    assert!(received.contains(r#""text":"Partial""#), "{received}");
    assert!(received.contains(r#""text":" answer""#), "{received}");
    assert!(!received.contains("message_stop"));
}

#[tokio::test]
async fn fault_model_names_select_faults_without_a_script() {
    let mock = MockLlm::start().await.unwrap();
    for (model, status) in
        [("fault-429", 429), ("fault-500", 500), ("fault-503", 503), ("fault-401", 401), ("fault-400", 400)]
    {
        let response = post_openai(&mock, &openai_request(model, "hi")).await;
        assert_eq!(response.status(), status, "{model}");
        if model == "fault-429" {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        let response = post_anthropic(&mock, &anthropic_request(model, "hi")).await;
        assert_eq!(response.status(), status, "{model}");
    }

    let response = post_openai(&mock, &openai_request("fault-malformed-json", "hi")).await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.is_err());

    let mut body = anthropic_request("fault-malformed-sse", "hi");
    body["stream"] = json!(true);
    let response = post_anthropic(&mock, &body).await;
    assert!(response.text().await.unwrap().contains(r#"{"type":"message_start","message":{"#));

    let mut body = openai_request("fault-cut-stream", "hi");
    body["stream"] = json!(true);
    let (_, error) = read_until_error(post_openai(&mock, &body).await).await;
    assert!(error.is_some());

    let error = client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .json(&openai_request("fault-reset", "hi"))
        .send()
        .await
        .unwrap_err();
    assert!(error.status().is_none(), "{error:?}");

    let error = client()
        .post(format!("{}/messages", mock.anthropic_base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_request("fault-hang", "hi"))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    let response = post_openai(&mock, &openai_request("fault-typo", "hi")).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("fault-cut-stream"));
}
