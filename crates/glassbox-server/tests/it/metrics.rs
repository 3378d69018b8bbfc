//! `GET /metrics`: its output passes `promtool check metrics` (Debian's `prometheus` package),
//! and its counters move exactly by the traffic the test sends — requests by route and status,
//! model calls, tokens and cost equal to the usage rows — while the pipeline-overhead
//! histogram leaves out the time spent waiting on the provider.
//!
//! The recorder is process-wide, so every check compares a scrape before the traffic with
//! one after it.

use std::collections::HashMap;
use std::time::Duration;

use glassbox_mockllm::Reply;
use serde_json::json;

use crate::telemetry::{Traced, spawn_traced, sqlite_store, wait_for_trace};

/// One scrape: `name{labels}` (labels in the exporter's order) to value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse::<f64>().ok()?))
            })
            .collect();
        Self(values)
    }

    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }
}

async fn scrape(traced: &Traced) -> (String, Scrape) {
    let response = traced.app.client.get(traced.app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let parsed = Scrape::parse(&text);
    (text, parsed)
}

async fn promtool_check(text: &str) {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run promtool ({error}): install Debian's `prometheus` package (./tests/run.sh --setup-only does)")
        });
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const GENERATE: &str = "/api/agents/{agent_id}/generate";
const STREAM: &str = "/api/agents/{agent_id}/stream";
const CHAT: &str = "/v1/chat/completions";

fn requests(route: &str, method: &str, status: u16) -> String {
    format!("glassbox_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
}

fn model_series(name: &str, extra: &str) -> String {
    format!("{name}{{agent=\"assistant\",provider=\"openai\",model=\"test-model\"{extra}}}")
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_pass_promtool_and_count_the_traffic_sent() {
    let dir = tempfile::tempdir().unwrap();
    let traced = spawn_traced(sqlite_store(&dir).await, dir.path().join("spool")).await;
    // Every model call waits 300 ms on the provider, which the overhead must not include.
    let provider_wait = Duration::from_millis(300);
    traced.mock.set_latency(provider_wait);
    let (_, before) = scrape(&traced).await;

    let mut trace_ids = Vec::new();
    let send = async |path: &str, body: serde_json::Value, expected: u16| {
        let response = traced.app.post_json(path, body).await;
        assert_eq!(response.status(), expected, "{path}");
        let trace_id = response.headers()["traceparent"].to_str().unwrap().split('-').nth(1).unwrap().to_owned();
        let _ = response.bytes().await.unwrap();
        trace_id
    };
    for index in 0..3 {
        traced.mock.push(Reply::Text(format!("answer {index}")));
        trace_ids.push(send("/api/agents/assistant/generate", json!({"messages": "hi"}), 200).await);
    }
    traced.mock.push(Reply::Text("streamed".into()));
    trace_ids.push(send("/api/agents/assistant/stream", json!({"messages": "hi"}), 200).await);
    for index in 0..2 {
        traced.mock.push(Reply::Text(format!("facade {index}")));
        let body = json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]});
        trace_ids.push(send("/v1/chat/completions", body, 200).await);
    }
    send("/api/agents/nobody/generate", json!({"messages": "hi"}), 404).await;
    send("/api/agents/assistant/generate", json!({"messages": 5}), 400).await;
    let unmatched = traced.app.client.get(traced.app.url("/no/such/route")).send().await.unwrap();
    assert_eq!(unmatched.status(), 404);

    // Every usage row is written, so the writer's counters have moved too.
    let mut usage = Vec::new();
    for trace_id in &trace_ids {
        usage.extend(wait_for_trace(&traced, trace_id, 3, 1).await.1);
    }
    assert_eq!(usage.len(), 6);
    // The request span closes when the body is dropped, just after the client has read it.
    let overhead_count = |scrape: &Scrape| {
        [GENERATE, STREAM, CHAT]
            .iter()
            .map(|route| scrape.get(&format!("glassbox_pipeline_overhead_seconds_count{{route=\"{route}\"}}")))
            .sum::<f64>()
    };
    let mut after = scrape(&traced).await;
    for _ in 0..100 {
        if overhead_count(&after.1) - overhead_count(&before) >= 8.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&traced).await;
    }
    let (text, after) = after;
    promtool_check(&text).await;
    let delta = |series: &str| after.get(series) - before.get(series);

    assert_eq!(delta(&requests(GENERATE, "POST", 200)), 3.0, "{text}");
    assert_eq!(delta(&requests(STREAM, "POST", 200)), 1.0);
    assert_eq!(delta(&requests(CHAT, "POST", 200)), 2.0);
    assert_eq!(delta(&requests(GENERATE, "POST", 404)), 1.0);
    assert_eq!(delta(&requests(GENERATE, "POST", 400)), 1.0);
    assert_eq!(delta(&requests("unmatched", "GET", 404)), 1.0);
    let duration_count =
        |route: &str| format!("glassbox_http_request_duration_seconds_count{{route=\"{route}\",method=\"POST\"}}");
    assert_eq!(delta(&duration_count(GENERATE)), 5.0);
    assert_eq!(delta(&duration_count(STREAM)), 1.0);
    assert_eq!(delta(&duration_count(CHAT)), 2.0);

    // Model calls, tokens and cost agree with the usage rows.
    assert_eq!(delta(&model_series("glassbox_model_calls_total", ",status=\"ok\"")), 6.0);
    let input: u64 = usage.iter().map(|row| row.input_tokens).sum();
    let output: u64 = usage.iter().map(|row| row.output_tokens).sum();
    let cost: i64 = usage.iter().map(|row| row.cost_nano_usd).sum();
    assert!(input > 0 && output > 0 && cost > 0);
    assert_eq!(delta(&model_series("glassbox_model_tokens_total", ",type=\"input\"")), input as f64);
    assert_eq!(delta(&model_series("glassbox_model_tokens_total", ",type=\"output\"")), output as f64);
    assert_eq!(delta(&model_series("glassbox_model_cost_nano_usd_total", "")), cost as f64);
    assert_eq!(delta(&model_series("glassbox_model_call_duration_seconds_count", "")), 6.0);
    let waited = delta(&model_series("glassbox_model_call_duration_seconds_sum", ""));
    assert!(waited >= 6.0 * provider_wait.as_secs_f64(), "provider time {waited}");

    // Overhead: one observation per request, and the provider's 300 ms per call taken out.
    let overhead_route =
        |route: &str, what: &str| delta(&format!("glassbox_pipeline_overhead_seconds_{what}{{route=\"{route}\"}}"));
    assert_eq!(overhead_route(GENERATE, "count"), 5.0);
    assert_eq!(overhead_route(STREAM, "count"), 1.0);
    assert_eq!(overhead_route(CHAT, "count"), 2.0);
    let request_time: f64 = [GENERATE, STREAM, CHAT]
        .iter()
        .map(|route| delta(&format!("glassbox_http_request_duration_seconds_sum{{route=\"{route}\",method=\"POST\"}}")))
        .sum();
    let overhead: f64 = [GENERATE, STREAM, CHAT].iter().map(|route| overhead_route(route, "sum")).sum();
    assert!(
        overhead < request_time - 0.9 * waited,
        "overhead {overhead} s must exclude the {waited} s spent waiting on the provider (requests took {request_time} s)"
    );

    // The telemetry writer: rows written, none dropped, nothing left queued after the flush.
    assert!(delta("glassbox_telemetry_written_rows_total") > 0.0, "{text}");
    assert_eq!(after.get("glassbox_telemetry_dropped_rows_total"), 0.0);
    assert!(text.contains("# TYPE glassbox_telemetry_spool_bytes gauge"));
    assert!(text.contains("# TYPE glassbox_telemetry_queue_rows gauge"));
    traced.telemetry.shutdown().await;
}
