//! The example's own routes and the nested Glassbox routes, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

async fn spawn() -> String {
    glassbox_providers::install_crypto_provider();
    let agent = embedding_example::build_agent(None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, embedding_example::app(agent)).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn own_handler_calls_the_agent() {
    let base = spawn().await;
    let client = reqwest::Client::new();
    let reply: Value = client
        .post(format!("{base}/api/assistant"))
        .json(&json!({"message": "where is my order?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply["reply"].as_str().unwrap().contains("where is my order?"), "{reply}");

    let body = client
        .post(format!("{base}/api/assistant/stream"))
        .json(&json!({"message": "stream please"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let text: String = body
        .split("\n\n")
        .filter(|event| !event.contains("event:"))
        .filter_map(|event| event.strip_prefix("data: "))
        .collect();
    assert!(text.contains("stream please"), "{body}");
    assert!(body.contains("event: done"), "{body}");
}

#[tokio::test]
async fn glassbox_routes_are_nested_next_to_your_own() {
    let base = spawn().await;
    let client = reqwest::Client::new();
    let agents: Value = client.get(format!("{base}/glassbox/api/agents")).send().await.unwrap().json().await.unwrap();
    assert_eq!(agents["assistant"]["name"], "Support assistant");
    let answer: Value = client
        .post(format!("{base}/glassbox/api/agents/assistant/generate"))
        .json(&json!({"messages": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["finishReason"], "stop");
}
