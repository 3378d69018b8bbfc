//! The real `glassbox` binary, killed with SIGKILL while one background run is mid-way and
//! another is suspended, then restarted on the same store: the first completes, the second
//! resumes, and no step that had completed runs again (only the interrupted one does).
//! Workflows come from the config (tool, template and suspend steps); an HTTP tool server in
//! the test counts every call per step.

use crate::helpers::start_server;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, u32>>>);

impl Calls {
    fn of(&self, step: &str) -> u32 {
        self.0.lock().unwrap().get(step).copied().unwrap_or(0)
    }
}

/// `POST /{step}`: counts the call; `slow` takes 1.5 s.
async fn spawn_tool_server() -> (String, Calls) {
    let calls = Calls::default();
    let app = axum::Router::new()
        .route(
            "/{step}",
            post(|State(calls): State<Calls>, Path(step): Path<String>, Json(body): Json<Value>| async move {
                *calls.0.lock().unwrap().entry(step.clone()).or_default() += 1;
                if step == "slow" {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                Json(json!({ "step": step, "got": body, "n": 7 }))
            }),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn config(dir: &std::path::Path, tools: &str) -> String {
    let tool = |id: &str| {
        format!(
            r#"
[tools.{id}]
description = "step {id}"
url = "{tools}/{id}"
parameters = {{ type = "object" }}
"#
        )
    };
    format!(
        r#"
[store]
sqlite_path = "{db}"
spool_dir = "{spool}"
{first}{slow}{last}{before}
[workflows.pipeline]
[[workflows.pipeline.steps]]
id = "first"
tool = "first"
input = {{ user = "{{{{input.user}}}}" }}
[[workflows.pipeline.steps]]
id = "slow"
tool = "slow"
input = {{ n = "{{{{steps.first.n}}}}" }}
[[workflows.pipeline.steps]]
id = "last"
tool = "last"
input = {{ previous = "{{{{steps.slow.step}}}}" }}

[workflows.approval]
[[workflows.approval.steps]]
id = "before"
tool = "before"
[[workflows.approval.steps]]
id = "approve"
suspend = {{ question = "ok for {{{{input.user}}}}?" }}
resume_schema = {{ type = "object", properties = {{ ok = {{ type = "boolean" }} }}, required = ["ok"] }}
[[workflows.approval.steps]]
id = "after"
template = {{ approved = "{{{{steps.approve.ok}}}}", before = "{{{{steps.before.step}}}}" }}
"#,
        db = dir.join("glassbox.db").display(),
        spool = dir.join("spool").display(),
        first = tool("first"),
        slow = tool("slow"),
        last = tool("last"),
        before = tool("before"),
    )
}

async fn post_json(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn run_of(client: &reqwest::Client, base: &str, workflow: &str, run_id: &str) -> Value {
    let response = client.get(format!("{base}/api/workflows/{workflow}/runs/{run_id}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_continues_its_running_run_and_resumes_its_suspended_one() {
    let (tools, calls) = spawn_tool_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("glassbox.toml");
    std::fs::write(&config_path, config(dir.path(), &tools)).unwrap();
    glassbox_providers::install_crypto_provider();
    let client = reqwest::Client::new();

    let mut first = start_server(&config_path, &[]).await;
    let (status, suspended) = post_json(
        &client,
        format!("{}/api/workflows/approval/start-async", first.url),
        json!({ "inputData": { "user": "ann" } }),
    )
    .await;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["suspended"][0]["suspendPayload"]["question"], "ok for ann?");
    let suspended_id = suspended["runId"].as_str().unwrap().to_owned();

    let (status, started) = post_json(
        &client,
        format!("{}/api/workflows/pipeline/start", first.url),
        json!({ "inputData": { "user": "bo" } }),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    let running_id = started["runId"].as_str().unwrap().to_owned();
    // Kill it while `slow` is in flight: `first` has completed and been saved.
    for _ in 0..200 {
        if calls.of("slow") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls.of("slow"), 1, "the run reached its slow step");
    first.child.kill().await.unwrap();
    assert_eq!(calls.of("last"), 0);

    let second = start_server(&config_path, &[]).await;
    let mut done = Value::Null;
    for _ in 0..300 {
        done = run_of(&client, &second.url, "pipeline", &running_id).await;
        if done["status"] == "success" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["result"]["got"], json!({ "previous": "slow" }));
    assert_eq!(calls.of("first"), 1, "a completed step did not run again");
    assert_eq!(calls.of("slow"), 2, "the interrupted step ran again");
    assert_eq!(calls.of("last"), 1);

    let still = run_of(&client, &second.url, "approval", &suspended_id).await;
    assert_eq!(still["status"], "suspended");
    let (status, resumed) = post_json(
        &client,
        format!("{}/api/workflows/approval/resume-async?runId={suspended_id}", second.url),
        json!({ "step": "approve", "resumeData": { "ok": true } }),
    )
    .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "success");
    assert_eq!(resumed["result"], json!({ "approved": true, "before": "before" }));
    assert_eq!(calls.of("before"), 1, "the step before the suspension ran once");
}
