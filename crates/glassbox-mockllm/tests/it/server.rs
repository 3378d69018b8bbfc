//! The handle's behaviour: script order, recording, latency, shutdown, and the binary.

use std::io::BufRead;
use std::time::{Duration, Instant};

use glassbox_mockllm::{Fault, MockLlm, Reply};
use serde_json::{Value, json};

use crate::helpers::{anthropic_request, client, openai_request, post_anthropic, post_openai};

async fn openai_text(mock: &MockLlm, user_text: &str) -> String {
    let completion: Value = post_openai(mock, &openai_request("gpt-test", user_text)).await.json().await.unwrap();
    completion["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn scripted_replies_are_served_in_order_across_formats_then_the_default() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Text("one".to_owned()));
    mock.push(Reply::Fault(Fault::ServerError));
    mock.push(Reply::Text("three".to_owned()));

    assert_eq!(openai_text(&mock, "a").await, "one");
    let response = post_anthropic(&mock, &anthropic_request("claude-test", "b")).await;
    assert_eq!(response.status(), 500);
    let message: Value = post_anthropic(&mock, &anthropic_request("claude-test", "c")).await.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "three");
    assert_eq!(openai_text(&mock, "d").await, "Mock reply to: d");
}

#[tokio::test]
async fn every_request_is_recorded_in_order() {
    let mock = MockLlm::start().await.unwrap();
    openai_text(&mock, "first").await;
    post_anthropic(&mock, &anthropic_request("claude-test", "second")).await;
    let response = client()
        .post(format!("{}/v1/embeddings", mock.base_url()))
        .json(&json!({"input": "third"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unknown_url");

    assert_eq!(mock.request_count(), 3);
    let requests = mock.requests();
    let paths: Vec<&str> = requests.iter().map(|request| request.path.as_str()).collect();
    assert_eq!(paths, ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"]);
    assert_eq!(requests[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(requests[0].body, openai_request("gpt-test", "first"));
    assert_eq!(requests[1].body["messages"][0]["content"], "second");
    assert_eq!(requests[2].body, json!({"input": "third"}));

    mock.clear_requests();
    assert_eq!(mock.request_count(), 0);
    let response = post_openai(&mock, &openai_request("gpt-test", "fourth")).await;
    assert_eq!(response.headers()["x-request-id"], "req_mock4", "ids keep counting after a clear");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn requests_not_kept_are_still_numbered_and_keeping_them_again_works() {
    let mock = MockLlm::start().await.unwrap();
    openai_text(&mock, "kept").await;
    mock.keep_requests(false);
    assert_eq!(mock.request_count(), 0, "switching keeping off forgets what was kept");
    let response = post_openai(&mock, &openai_request("gpt-test", "not kept")).await;
    assert_eq!(response.headers()["x-request-id"], "req_mock2", "ids count every request");
    assert_eq!(openai_text(&mock, "also not kept").await, "Mock reply to: also not kept");
    assert_eq!(mock.request_count(), 0);
    mock.keep_requests(true);
    openai_text(&mock, "kept again").await;
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["messages"][0]["content"], "kept again");
}

#[tokio::test]
async fn latency_delays_the_response_until_set_back_to_zero() {
    let mock = MockLlm::start().await.unwrap();
    let latency = Duration::from_millis(300);
    mock.set_latency(latency);
    let started = Instant::now();
    openai_text(&mock, "slow").await;
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());

    // Faults wait too.
    mock.push(Reply::Fault(Fault::ServerError));
    let started = Instant::now();
    let response = post_anthropic(&mock, &anthropic_request("claude-test", "slow")).await;
    assert_eq!(response.status(), 500);
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());

    mock.set_latency(Duration::ZERO);
    let started = Instant::now();
    openai_text(&mock, "fast").await;
    assert!(started.elapsed() < latency, "{:?}", started.elapsed());
}

#[tokio::test]
async fn shutdown_closes_hanging_requests_and_the_listener() {
    let mock = MockLlm::start().await.unwrap();
    let addr = mock.addr();
    assert_eq!(mock.base_url(), format!("http://{addr}"));
    assert_eq!(mock.openai_base_url(), format!("http://{addr}/v1"));
    assert_eq!(mock.anthropic_base_url(), format!("http://{addr}/v1"));
    assert!(addr.ip().is_loopback());

    mock.push(Reply::Fault(Fault::Hang));
    let hanging = tokio::spawn(
        client()
            .post(format!("{}/chat/completions", mock.openai_base_url()))
            .json(&openai_request("gpt-test", "hi"))
            .timeout(Duration::from_secs(10))
            .send(),
    );
    while mock.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mock.shutdown().await;

    let error = hanging.await.unwrap().unwrap_err();
    assert!(!error.is_timeout(), "the hanging request should end at shutdown: {error:?}");
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn the_binary_prints_its_url_and_serves() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_glassbox-mockllm"))
        .args(["--listen", "127.0.0.1:0", "--latency-ms", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url = url.trim_end().to_owned();

    let response = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&openai_request("gpt-test", "from the binary"))
        .send()
        .await;
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let completion: Value = response.unwrap().json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Mock reply to: from the binary");
}
