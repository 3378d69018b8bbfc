//! Config-declared HTTP tools against a small axum server on 127.0.0.1.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{any, get};
use glassbox_core::{Tool, ToolError, ToolSpec};
use glassbox_providers::{BuildError, HttpMethod, HttpTool};
use serde_json::{Value, json};

/// Serves `/echo` (any method: the method, query, JSON body and `x-token` header back),
/// `/text` (plain text), `/fail` (a 502 with a long body) and `/slow` (answers after 5 s).
async fn spawn_server() -> String {
    async fn echo(
        method: Method,
        headers: HeaderMap,
        Query(query): Query<BTreeMap<String, String>>,
        body: String,
    ) -> axum::Json<Value> {
        let body: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::String(body)) };
        let token = headers.get("x-token").and_then(|value| value.to_str().ok()).map(str::to_owned);
        axum::Json(json!({"method": method.as_str(), "query": query, "body": body, "token": token}))
    }
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/text", get(|| async { "plain words" }))
        .route("/fail", get(|| async { (StatusCode::BAD_GATEWAY, format!("upstream broke {}", "x".repeat(2000))) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn spec() -> ToolSpec {
    ToolSpec { name: "lookup".into(), description: "Looks things up".into(), parameters: json!({"type": "object"}) }
}

fn tool(base: &str, path: &str, method: HttpMethod) -> HttpTool {
    HttpTool::new(
        spec(),
        format!("{base}{path}"),
        method,
        Duration::from_secs(2),
        vec![("x-token".into(), "secret-token".into())],
    )
    .unwrap()
}

#[tokio::test]
async fn get_sends_scalar_arguments_as_query_parameters() {
    let base = spawn_server().await;
    let lookup = tool(&base, "/echo?fixed=1", HttpMethod::Get);
    assert_eq!(lookup.spec().name, "lookup");
    let result = lookup
        .call(
            json!({"city": "Oslo & Bergen", "days": 3, "metric": true, "nested": {"a": 1}, "list": [1], "none": null}),
        )
        .await
        .unwrap();
    assert_eq!(result["method"], "GET");
    assert_eq!(result["query"], json!({"fixed": "1", "city": "Oslo & Bergen", "days": "3", "metric": "true"}));
    assert_eq!(result["body"], Value::Null);
    assert_eq!(result["token"], "secret-token");
}

#[tokio::test]
async fn other_methods_send_a_json_body() {
    let base = spawn_server().await;
    let arguments = json!({"name": "widget", "tags": ["a"], "size": {"w": 2}});
    for (method, name) in [
        (HttpMethod::Post, "POST"),
        (HttpMethod::Put, "PUT"),
        (HttpMethod::Patch, "PATCH"),
        (HttpMethod::Delete, "DELETE"),
    ] {
        let result = tool(&base, "/echo", method).call(arguments.clone()).await.unwrap();
        assert_eq!(result["method"], name);
        assert_eq!(result["body"], arguments);
        assert_eq!(result["query"], json!({}));
    }
}

#[tokio::test]
async fn text_responses_are_wrapped() {
    let base = spawn_server().await;
    let result = tool(&base, "/text", HttpMethod::Get).call(json!({})).await.unwrap();
    assert_eq!(result, json!({"text": "plain words"}));
}

#[tokio::test]
async fn error_statuses_fail_with_status_and_truncated_body() {
    let base = spawn_server().await;
    let error = tool(&base, "/fail", HttpMethod::Get).call(json!({})).await.unwrap_err();
    match &error {
        ToolError::Failed { tool, message, .. } => {
            assert_eq!(tool, "lookup");
            assert!(message.starts_with("HTTP 502: upstream broke"), "{message}");
            assert!(message.chars().count() < 600, "the body is truncated: {} chars", message.chars().count());
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_endpoints_time_out() {
    let base = spawn_server().await;
    let slow =
        HttpTool::new(spec(), format!("{base}/slow"), HttpMethod::Get, Duration::from_millis(200), Vec::new()).unwrap();
    let started = std::time::Instant::now();
    let error = slow.call(json!({})).await.unwrap_err();
    assert!(matches!(error, ToolError::Timeout { ref tool } if tool == "lookup"), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreachable_endpoints_fail_with_the_cause_kept() {
    let port = crate::support::closed_port().await;
    let error = tool(&format!("http://127.0.0.1:{port}"), "/echo", HttpMethod::Post).call(json!({})).await.unwrap_err();
    assert!(matches!(error, ToolError::Failed { source: Some(_), .. }), "{error:?}");
}

#[test]
fn invalid_configuration_is_a_build_error() {
    let bad_url = HttpTool::new(spec(), "nope".into(), HttpMethod::Get, Duration::from_secs(1), Vec::new());
    assert!(matches!(bad_url, Err(BuildError::InvalidUrl { .. })));
    let bad_header = HttpTool::new(
        spec(),
        "http://127.0.0.1:1/".into(),
        HttpMethod::Get,
        Duration::from_secs(1),
        vec![("bad header".into(), "v".into())],
    );
    assert!(matches!(bad_header, Err(BuildError::InvalidHeader { .. })));
}
