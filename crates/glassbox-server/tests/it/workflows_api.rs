//! The workflow routes over real HTTP, on Rust-defined workflows and a SQLite run store:
//! describe, start-async, background runs polled to completion, suspend and resume (also
//! from a second host on the same store), cancel, wrong states, schema violations, streams,
//! run lists, recovery of runs left `running`, and 200 concurrent runs with complete traces.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use glassbox_core::workflow::{Condition, Node, RunSnapshot, StepRecord, StepStatus};
use glassbox_core::{Agent, Message, RetryPolicy, Step, StepError, Workflow};
use glassbox_providers::MockModel;
use glassbox_server::workflow_host::{WorkflowHost, WorkflowLimits};
use glassbox_server::{AgentRegistry, HttpOptions, serve};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::{Backend, RunRecord, RunStore, TraceFilter, TraceReader};
use serde_json::{Value, json};

use crate::helpers::{TestApp, parse_chunks, sse_data};

/// Calls of each step, across runs.
#[derive(Default)]
struct Counters {
    fetch: AtomicU32,
    approve: AtomicU32,
    first: AtomicU32,
    last: AtomicU32,
}

fn echo_agent() -> Agent {
    Agent::builder("summarizer", Arc::new(MockModel::new("mock-echo").unwrap()))
        .instructions("Summarize the numbers.")
        .build()
        .unwrap()
}

/// The weekly report: fetch, summarize with an agent, branch on the number of visits, and
/// suspend for approval when there are many.
fn report(counters: &Arc<Counters>) -> Workflow {
    let fetch_counter = Arc::clone(counters);
    let fetch = Step::new("fetch", move |context| {
        fetch_counter.fetch.fetch_add(1, Ordering::SeqCst);
        async move {
            let user = context.input["userId"].as_str().unwrap_or_default().to_owned();
            Ok(json!({ "userId": user, "visits": user.len() * 10 }))
        }
    })
    .output_schema(json!({ "type": "object", "required": ["visits"] }));
    let agent = echo_agent();
    let summarize = Step::new("summarize", move |context| {
        let agent = agent.clone();
        async move {
            let text = format!("visits: {}", context.input["visits"]);
            let output = agent
                .generate(vec![Message::user(text)], Default::default())
                .await
                .map_err(|error| StepError::with_source("the summarizer failed", error))?;
            Ok(json!({ "summary": output.text, "visits": context.input["visits"] }))
        }
    });
    let approve_counter = Arc::clone(counters);
    let approve = Step::new("approve", move |context| {
        approve_counter.approve.fetch_add(1, Ordering::SeqCst);
        async move {
            match &context.resume_data {
                None => Err(context.suspend(json!({ "reason": "many visits", "summary": context.input["summary"] }))),
                Some(data) => Ok(json!({ "summary": context.input["summary"], "approved": data["approved"] })),
            }
        }
    })
    .resume_schema(json!({
        "type": "object",
        "properties": { "approved": { "type": "boolean" } },
        "required": ["approved"]
    }));
    let many: Condition = Arc::new(|value: &Value| value["visits"].as_u64().unwrap_or(0) > 50);
    Workflow::builder("report")
        .description("Weekly analytics report")
        .input_schema(json!({
            "type": "object",
            "properties": { "startDate": { "type": "string" }, "endDate": { "type": "string" }, "userId": { "type": "string" } },
            "required": ["startDate", "endDate", "userId"]
        }))
        .then(fetch)
        .then(summarize)
        .branch([(many, Node::from(approve))])
        .build()
        .unwrap()
}

/// `first`, a sleep of `input.ms` milliseconds, `last`.
fn slow(counters: &Arc<Counters>) -> Workflow {
    let first_counter = Arc::clone(counters);
    let last_counter = Arc::clone(counters);
    Workflow::builder("slow")
        .then(Step::new("first", move |context| {
            first_counter.first.fetch_add(1, Ordering::SeqCst);
            async move { Ok(context.input) }
        }))
        .then(Step::new("wait", |context| async move {
            let ms = context.input["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(context.input)
        }))
        .then(Step::new("last", move |context| {
            last_counter.last.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!({ "done": context.input["ms"] })) }
        }))
        .build()
        .unwrap()
}

/// Fails twice, then succeeds; and a step that always fails.
fn flaky() -> Workflow {
    Workflow::builder("flaky")
        .default_retry(RetryPolicy::new(3, Duration::from_millis(5)))
        .then(Step::new("sometimes", |context| async move {
            if context.attempt < 3 { Err(StepError::failed("not yet")) } else { Ok(json!(context.attempt)) }
        }))
        .then(Step::new("never", |context| async move {
            if *context.workflow_input == json!("fail") {
                Err(StepError::failed("always broken"))
            } else {
                Ok(context.input)
            }
        }))
        .build()
        .unwrap()
}

struct Env {
    app: TestApp,
    host: WorkflowHost,
    store: Arc<SqliteBackend>,
    counters: Arc<Counters>,
    dir: tempfile::TempDir,
}

async fn open_store(dir: &tempfile::TempDir) -> Arc<SqliteBackend> {
    let store = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.unwrap());
    store.migrate().await.unwrap();
    store
}

fn workflows(counters: &Arc<Counters>) -> Vec<Workflow> {
    vec![report(counters), slow(counters), flaky()]
}

async fn spawn_host(host: WorkflowHost) -> TestApp {
    glassbox_providers::install_crypto_provider();
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let app = glassbox_server::router_with_workflows(AgentRegistry::default(), host, HttpOptions::default());
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        async move {
            let _ = shutdown_rx.await;
        },
        Duration::from_secs(5),
    ));
    TestApp::from_parts(addr, shutdown_tx, server)
}

async fn env_with(limits: WorkflowLimits) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let counters = Arc::new(Counters::default());
    let host = WorkflowHost::new(workflows(&counters), store.clone(), limits);
    let app = spawn_host(host.clone()).await;
    Env { app, host, store, counters, dir }
}

async fn env() -> Env {
    env_with(WorkflowLimits { wait_timeout: Duration::from_secs(10), ..WorkflowLimits::default() }).await
}

fn report_input(user: &str) -> Value {
    json!({ "inputData": { "startDate": "2025-06-01", "endDate": "2025-06-07", "userId": user } })
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap();
    (status, body)
}

impl Env {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        json_of(self.app.post_json(path, body).await).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        json_of(self.app.client.get(self.app.url(path)).send().await.unwrap()).await
    }

    /// Polls one run until `done` holds on it.
    async fn poll(&self, workflow: &str, run_id: &str, done: impl Fn(&str) -> bool) -> Value {
        for _ in 0..400 {
            let (status, body) = self.get(&format!("/api/workflows/{workflow}/runs/{run_id}")).await;
            assert_eq!(status, 200, "{body}");
            if done(body["status"].as_str().unwrap()) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {run_id} did not reach the expected status");
    }
}

#[tokio::test]
async fn workflows_are_listed_and_described_with_their_schemas() {
    let env = env().await;
    let (status, all) = env.get("/api/workflows").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_object().unwrap().keys().collect::<Vec<_>>(), ["flaky", "report", "slow"]);
    let (status, report) = env.get("/api/workflows/report").await;
    assert_eq!(status, 200);
    assert_eq!(report["inputSchema"]["required"], json!(["startDate", "endDate", "userId"]));
    assert_eq!(report["steps"]["approve"]["resumeSchema"]["required"], json!(["approved"]));
    assert_eq!(report["stepGraph"][2]["type"], "branch");
    let (status, missing) = env.get("/api/workflows/nope").await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("workflow_not_found")));
    assert!(missing["error"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn start_async_runs_to_the_end_and_bad_input_names_the_field() {
    let env = env().await;
    let (status, body) = env.post("/api/workflows/report/start-async", report_input("ann")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    // 3 visits per letter * 10: 30, not above 50, so no approval step.
    assert_eq!(body["result"]["visits"], 30);
    assert!(body["result"]["summary"].as_str().unwrap().contains("visits: 30"), "{body}");
    assert_eq!(body["steps"]["fetch"]["status"], "success");
    assert!(body["steps"].get("approve").is_none());

    let (status, body) = env
        .post(
            "/api/workflows/report/start-async",
            json!({ "inputData": { "startDate": 7, "endDate": "x", "userId": "u" } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["field"], "inputData.startDate");
    let (status, body) = env.post("/api/workflows/report/start-async", json!({ "inputData": { "userId": "u" } })).await;
    assert_eq!((status, body["details"]["field"].as_str()), (400, Some("inputData")));
    assert!(body["error"].as_str().unwrap().contains("startDate"), "{body}");
    let (status, body) = env.post("/api/workflows/report/start-async", json!({ "inputData": 1, "extra": [] })).await;
    assert_eq!(status, 400, "{body}");
    let response = env.app.post_raw("/api/workflows/report/start-async", "{not json").await;
    assert_eq!(response.status(), 400);
    let (status, _) = env.post("/api/workflows/nope/start-async", report_input("a")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn retries_and_step_failures_show_in_the_run() {
    let env = env().await;
    let (status, body) = env.post("/api/workflows/flaky/start-async", json!({ "inputData": "ok" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["steps"]["sometimes"]["attempts"], 3);

    let (status, body) = env.post("/api/workflows/flaky/start-async", json!({ "inputData": "fail" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert!(body["error"].as_str().unwrap().contains("always broken"), "{body}");
    assert_eq!(body["steps"]["never"]["status"], "failed");
    assert_eq!(body["steps"]["never"]["attempts"], 3);
}

#[tokio::test]
async fn a_background_run_is_polled_to_completion() {
    let env = env().await;
    let (status, created) = env.post("/api/workflows/slow/create-run", json!({})).await;
    assert_eq!(status, 200);
    let run_id = created["runId"].as_str().unwrap().to_owned();
    let (status, pending) = env.get(&format!("/api/workflows/slow/runs/{run_id}")).await;
    assert_eq!((status, pending["status"].as_str()), (200, Some("pending")));

    let (status, started) =
        env.post(&format!("/api/workflows/slow/start?runId={run_id}"), json!({ "inputData": { "ms": 300 } })).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["runId"], run_id.as_str());
    let running = env.poll("slow", &run_id, |status| status == "running").await;
    assert_eq!(running["status"], "running");
    // Starting it again is a state error that says what the state is.
    let (status, again) = env.post(&format!("/api/workflows/slow/start?runId={run_id}"), json!({})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["details"]["status"], "running");

    let done = env.poll("slow", &run_id, |status| status == "success").await;
    assert_eq!(done["result"], json!({ "done": 300 }));
    assert_eq!(done["steps"].as_object().unwrap().len(), 3);

    let (status, again) = env.post(&format!("/api/workflows/slow/start?runId={run_id}"), json!({})).await;
    assert_eq!((status, again["details"]["status"].as_str()), (409, Some("success")));
    let (status, missing) = env.post("/api/workflows/slow/start?runId=nobody", json!({})).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("run_not_found")));
    let (status, _) = env.get(&format!("/api/workflows/report/runs/{run_id}")).await;
    assert_eq!(status, 404, "a run is found only under its own workflow");
    let (status, duplicate) = env.post(&format!("/api/workflows/slow/create-run?runId={run_id}"), json!({})).await;
    assert_eq!(status, 409, "{duplicate}");
}

/// Found by schemathesis: the spec's `maxLength = 128` counts characters, the check counted
/// bytes, so a valid 128-character id of multi-byte characters got a 400.
#[tokio::test]
async fn run_ids_are_limited_in_characters_not_bytes() {
    let env = env().await;
    let long_id: String = "é".repeat(128);
    let (status, created) = env.post(&format!("/api/workflows/slow/create-run?runId={long_id}"), json!({})).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["runId"], long_id.as_str());
    let too_long: String = "é".repeat(129);
    let (status, refused) = env.post(&format!("/api/workflows/slow/create-run?runId={too_long}"), json!({})).await;
    assert_eq!((status, refused["details"]["field"].as_str()), (400, Some("runId")), "{refused}");
}

#[tokio::test]
async fn start_async_answers_202_with_the_run_id_after_its_timeout() {
    let env = env_with(WorkflowLimits { wait_timeout: Duration::from_millis(100), ..WorkflowLimits::default() }).await;
    let (status, body) = env.post("/api/workflows/slow/start-async", json!({ "inputData": { "ms": 800 } })).await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["runId"].as_str().unwrap().to_owned();
    let done = env.poll("slow", &run_id, |status| status == "success").await;
    assert_eq!(done["result"]["done"], 800);
}

#[tokio::test]
async fn suspend_and_resume_over_rest_with_the_resume_schema_checked() {
    let env = env().await;
    let (status, body) = env.post("/api/workflows/report/start-async", report_input("bartholomew")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "suspended");
    assert_eq!(body["suspended"][0]["step"], "approve");
    assert_eq!(body["suspended"][0]["suspendPayload"]["reason"], "many visits");
    let run_id = body["runId"].as_str().unwrap().to_owned();
    let resume = format!("/api/workflows/report/resume-async?runId={run_id}");

    let (status, bad) = env.post(&resume, json!({ "step": "approve", "resumeData": { "approved": "yes" } })).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["details"]["field"], "resumeData.approved");
    let (status, bad) = env.post(&resume, json!({ "step": "fetch", "resumeData": { "approved": true } })).await;
    assert_eq!((status, bad["details"]["field"].as_str()), (400, Some("step")), "{bad}");
    let (status, bad) = env.post(&resume, json!({ "resumeData": {} })).await;
    assert_eq!((status, bad["details"]["field"].as_str()), (400, Some("resumeData")), "{bad}");
    let (status, bad) = env.post("/api/workflows/report/resume-async", json!({ "resumeData": {} })).await;
    assert_eq!((status, bad["details"]["field"].as_str()), (400, Some("runId")), "{bad}");

    // Step given as Mastra's path form.
    let (status, done) = env.post(&resume, json!({ "step": ["approve"], "resumeData": { "approved": true } })).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "success");
    assert_eq!(done["result"]["approved"], true);
    assert_eq!(done["steps"]["approve"]["resumePayload"], json!({ "approved": true }));
    assert_eq!(env.counters.fetch.load(Ordering::SeqCst), 1, "fetch ran once across suspend and resume");

    let (status, again) = env.post(&resume, json!({ "step": "approve", "resumeData": { "approved": true } })).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["details"]["status"], "success");
}

#[tokio::test]
async fn a_suspended_run_resumes_on_another_host_of_the_same_store() {
    let env = env().await;
    let (_, body) = env.post("/api/workflows/report/start-async", report_input("bartholomew")).await;
    assert_eq!(body["status"], "suspended");
    let run_id = body["runId"].as_str().unwrap().to_owned();

    // Another process: its own store connection and workflow instances, same database file.
    let store = open_store(&env.dir).await;
    let counters = Arc::new(Counters::default());
    let other = spawn_host(WorkflowHost::new(workflows(&counters), store, WorkflowLimits::default())).await;
    let response = other
        .post_json(
            &format!("/api/workflows/report/resume?runId={run_id}"),
            json!({ "step": "approve", "resumeData": { "approved": false } }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let done = env.poll("report", &run_id, |status| status == "success").await;
    assert_eq!(done["result"]["approved"], false);
    assert_eq!(counters.fetch.load(Ordering::SeqCst), 0, "the other host ran no completed step");
    assert_eq!(counters.approve.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cancel_stops_a_running_run_and_refuses_a_finished_one() {
    let env = env().await;
    let (_, started) = env.post("/api/workflows/slow/start", json!({ "inputData": { "ms": 60000 } })).await;
    let run_id = started["runId"].as_str().unwrap().to_owned();
    env.poll("slow", &run_id, |status| status == "running").await;
    let (status, canceled) = env.post(&format!("/api/workflows/slow/runs/{run_id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    let stored = env.get(&format!("/api/workflows/slow/runs/{run_id}")).await.1;
    assert_eq!(stored["status"], "canceled");
    assert_eq!(env.counters.last.load(Ordering::SeqCst), 0);
    assert_eq!(env.host.live_runs(), 0);

    let (status, again) = env.post(&format!("/api/workflows/slow/runs/{run_id}/cancel"), json!({})).await;
    assert_eq!((status, again["details"]["status"].as_str()), (409, Some("canceled")));

    // A suspended run is canceled in the store; it can no longer be resumed.
    let (_, suspended) = env.post("/api/workflows/report/start-async", report_input("bartholomew")).await;
    let run_id = suspended["runId"].as_str().unwrap().to_owned();
    let (status, _) = env.post(&format!("/api/workflows/report/runs/{run_id}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    let (status, refused) = env
        .post(&format!("/api/workflows/report/resume?runId={run_id}"), json!({ "resumeData": { "approved": true } }))
        .await;
    assert_eq!((status, refused["details"]["status"].as_str()), (409, Some("canceled")));
    let (status, _) = env.post("/api/workflows/report/runs/nobody/cancel", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stream_sends_step_events_then_done() {
    let env = env().await;
    let response = env.app.post_json("/api/workflows/report/stream", report_input("bartholomew")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let data = sse_data(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = parse_chunks(&data);
    let kinds: Vec<(&str, &str)> = chunks
        .iter()
        .map(|chunk| (chunk["type"].as_str().unwrap(), chunk["payload"]["id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [
            ("step-start", "fetch"),
            ("step-result", "fetch"),
            ("step-start", "summarize"),
            ("step-result", "summarize"),
            ("step-start", "approve"),
            ("step-result", "approve"),
            ("suspended", ""),
            ("finish", ""),
        ]
    );
    assert_eq!(chunks[6]["payload"]["steps"][0]["id"], "approve");
    assert_eq!(chunks[7]["payload"]["status"], "suspended");
    assert!(chunks.iter().all(|chunk| chunk["runId"] == chunks[0]["runId"] && chunk["from"] == "WORKFLOW"));

    let response = env.app.post_json("/api/workflows/report/stream", json!({ "inputData": {} })).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn runs_are_listed_with_status_and_time_filters() {
    let env = env().await;
    for user in ["a", "bartholomew", "c"] {
        env.post("/api/workflows/report/start-async", report_input(user)).await;
    }
    let (status, all) = env.get("/api/workflows/report/runs").await;
    assert_eq!(status, 200);
    assert_eq!(all["total"], 3);
    let (_, suspended) = env.get("/api/workflows/report/runs?status=suspended").await;
    assert_eq!(suspended["total"], 1);
    assert_eq!(suspended["runs"][0]["inputData"]["userId"], "bartholomew");
    let (_, both) = env.get("/api/workflows/report/runs?status=success,suspended&limit=2").await;
    assert_eq!(both["total"], 2);
    let (_, future) = env.get("/api/workflows/report/runs?fromDate=2999-01-01").await;
    assert_eq!(future["total"], 0);
    let (_, past) = env.get("/api/workflows/report/runs?fromDate=2020-01-01T00:00:00Z&toDate=2999-01-01").await;
    assert_eq!(past["total"], 3);
    let (_, other) = env.get("/api/workflows/slow/runs").await;
    assert_eq!(other["total"], 0);
    for (query, field) in [("status=done", "status"), ("fromDate=last-week", "fromDate"), ("limit=0", "limit")] {
        let (status, body) = env.get(&format!("/api/workflows/report/runs?{query}")).await;
        assert_eq!((status, body["details"]["field"].as_str()), (400, Some(field)), "{query}: {body}");
    }
}

/// What a crash leaves: a `running` record whose snapshot has the first step done.
#[tokio::test]
async fn runs_left_running_are_continued_from_their_last_completed_step() {
    let env = env().await;
    let mut snapshot = RunSnapshot { version: 1, ..RunSnapshot::default() };
    snapshot.steps.insert(
        "first".into(),
        StepRecord {
            status: StepStatus::Success,
            input: json!({ "ms": 1 }),
            output: Some(json!({ "ms": 1 })),
            error: None,
            suspend_payload: None,
            resume_data: None,
            attempts: 1,
            started_ns: 1,
            ended_ns: 2,
        },
    );
    let record = RunRecord {
        run_id: "crashed".into(),
        workflow_id: "slow".into(),
        status: "running".into(),
        input: json!({ "ms": 1 }).to_string(),
        snapshot: snapshot.to_json().to_string(),
        result: String::new(),
        error: String::new(),
        created_ns: 1,
        updated_ns: 2,
        version: 3,
    };
    env.store.save_run(&record).await.unwrap();
    let continued = env.host.recover().await.unwrap();
    assert_eq!(continued, ["crashed"]);
    let done = env.poll("slow", "crashed", |status| status == "success").await;
    assert_eq!(done["result"], json!({ "done": 1 }));
    assert_eq!(env.counters.first.load(Ordering::SeqCst), 0, "the completed step did not run again");
    assert_eq!(env.counters.last.load(Ordering::SeqCst), 1);
    assert!(env.host.recover().await.unwrap().is_empty());
}

/// Memory figures of this process, from /proc (kB).
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 200 runs at once (an agent call each, 16 executing at a time, the rest queued) all
/// complete, each leaves one complete trace, and the host holds nothing once they are done.
#[tokio::test(flavor = "current_thread")]
async fn two_hundred_concurrent_runs_complete_with_complete_traces() {
    use glassbox_server::telemetry::{self, Telemetry};
    use glassbox_store::writer::{TelemetryWriter, WriterConfig};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    const RUNS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let mut writer_config = WriterConfig::new(dir.path().join("spool"));
    writer_config.flush_interval = Duration::from_millis(100);
    let writer = TelemetryWriter::start(store.clone() as Arc<dyn Backend>, writer_config).await.unwrap();
    let telemetry =
        Telemetry::new("glassbox-test", Some(writer), Arc::new(telemetry::pricing_table(&[])), None).unwrap();
    let _subscriber = tracing_subscriber::registry().with(telemetry::layer(&telemetry)).set_default();

    let counters = Arc::new(Counters::default());
    let limits =
        WorkflowLimits { max_concurrent_runs: 16, queue_capacity: RUNS, wait_timeout: Duration::from_secs(60) };
    let host = WorkflowHost::new(workflows(&counters), store.clone(), limits);
    let app = spawn_host(host.clone()).await;

    let before = memory_kb();
    let mut batch_after = Vec::new();
    for batch in 0..2 {
        let requests = (0..RUNS).map(|n| {
            let app = &app;
            async move {
                let response = app.post_json("/api/workflows/report/start-async", report_input(&format!("u{n}"))).await;
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
        });
        let results = futures::future::join_all(requests).await;
        for (status, body) in &results {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(body["status"], "success", "{body}");
        }
        assert_eq!(host.live_runs(), 0);
        batch_after.push(memory_kb());
        if batch == 0 {
            telemetry.flush().await;
        }
    }
    eprintln!(
        "workflow load: {} runs in 2 batches of {RUNS}; RSS before {} kB, after batch 1 {} kB, after batch 2 {} kB; peak {} kB",
        2 * RUNS,
        before.0,
        batch_after[0].0,
        batch_after[1].0,
        batch_after[1].1
    );

    // Every run is one trace: invoke_workflow, three step attempts (fetch, summarize and no
    // branch arm), and the agent's invoke_agent and chat spans inside `summarize`.
    let reader: Arc<dyn TraceReader> = store.clone();
    let mut traces = Vec::new();
    for _ in 0..200 {
        telemetry.flush().await;
        let page = reader
            .list_traces(&TraceFilter::default(), &glassbox_store::PageRequest { after: None, limit: 1000 })
            .await
            .unwrap();
        // The HTTP requests are traces of their own; a run is its own trace.
        traces = page.items.into_iter().filter(|trace| trace.root_span_name.starts_with("invoke_workflow")).collect();
        if traces.len() >= 2 * RUNS && traces.iter().all(|trace| trace.span_count >= 5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(traces.len(), 2 * RUNS);
    for trace in &traces {
        assert_eq!(trace.root_span_name, "invoke_workflow report");
        assert_eq!(trace.span_count, 5, "{trace:?}");
    }
    let spans = reader.trace_spans(&traces[0].trace_id).await.unwrap();
    let by_name =
        |name: &str| spans.iter().find(|span| span.span_name == name).unwrap_or_else(|| panic!("{name} missing"));
    let root = by_name("invoke_workflow report");
    let step = by_name("workflow_step summarize");
    let agent = by_name("invoke_agent summarizer");
    assert_eq!(step.parent_span_id, root.span_id);
    assert_eq!(agent.parent_span_id, step.span_id, "the agent call nests inside its step");
    let attribute = |span: &glassbox_store::SpanRow, key: &str| {
        span.span_attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone())
    };
    assert_eq!(attribute(root, "glassbox.workflow.status").as_deref(), Some("success"));
    assert!(attribute(root, "glassbox.workflow.run_id").is_some());
    assert_eq!(attribute(step, "glassbox.workflow.step.attempt").as_deref(), Some("1"));
    telemetry.shutdown().await;
}
