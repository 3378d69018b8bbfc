//! Evals through the server: online scorers after `generate`, `stream` and the
//! OpenAI-compatible `chat/completions` (scores in the store and as
//! `evaluation` spans on the request's trace; a panicking or slow scorer is an errored score
//! and the request is unaffected), and the `glassbox eval` command on the shipped suites.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glassbox_evals::online::{AgentEvals, OnlineEvals};
use glassbox_evals::{ConfiguredScorer, Score, ScoreInput, Scorer, ScorerError, ScorerSpec};
use glassbox_mockllm::{MockLlm, Reply};
use glassbox_server::store::Store;
use glassbox_server::telemetry::{self, Telemetry};
use glassbox_server::{runtime, serve};
use glassbox_store::EvalScoreRow;
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

struct Panics;

#[async_trait]
impl Scorer for Panics {
    fn kind(&self) -> &str {
        "panics"
    }
    async fn score(&self, _input: &ScoreInput) -> Result<Score, ScorerError> {
        panic!("bad scorer")
    }
}

/// Passes after sleeping this long.
struct Sleeps(Duration);

#[async_trait]
impl Scorer for Sleeps {
    fn kind(&self) -> &str {
        "sleeps"
    }
    async fn score(&self, _input: &ScoreInput) -> Result<Score, ScorerError> {
        tokio::time::sleep(self.0).await;
        Ok(Score::pass("took its time"))
    }
}

fn builtin(table: serde_json::Value) -> ConfiguredScorer {
    ScorerSpec::from_json(&table, "test").unwrap().build("test", &|_| None).unwrap()
}

/// The online scores of `trace_id` once `count` of them are stored (scorers run after the
/// response); fails after 5 s with what is there.
async fn scores_of(store: &Store, trace_id: &str, count: usize) -> Vec<EvalScoreRow> {
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = store.evals.eval_scores(&[trace_id.to_owned()]).await.unwrap();
        if rows.len() == count {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} scores of {trace_id} after 5 s, not {count}: {rows:#?}", rows.len())
}

#[tokio::test]
async fn online_scores_reach_the_store_and_the_trace_without_touching_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.unwrap());
    let store = Store { backend: backend.clone(), reader: backend.clone(), evals: backend, description: String::from("test") };
    store.backend.migrate().await.unwrap();
    let mut writer_config = WriterConfig::new(dir.path().join("spool"));
    writer_config.flush_interval = Duration::from_millis(100);
    let writer = TelemetryWriter::start(Arc::clone(&store.backend), writer_config).await.unwrap();
    let telemetry = Telemetry::new("glassbox-test", Some(writer), Arc::new(telemetry::pricing_table(&[])), None).unwrap();
    let _subscriber = tracing_subscriber::registry().with(telemetry::layer(&telemetry)).set_default();

    let mock = MockLlm::start().await.unwrap();
    let base = mock.openai_base_url();
    let env = move |name: &str| match name {
        "MOCK_URL" => Some(base.clone()),
        "KEY" => Some(String::from("sk-test")),
        _ => None,
    };
    let text = "[models.main]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"${MOCK_URL}\"\napi_key_env = \"KEY\"\nmax_retries = 0\n\
                [agents.assistant]\ninstructions = \"Be brief.\"\nmodel = \"main\"\n\
                [online_evals.assistant]\nsample_rate = 1.0\ntimeout_ms = 200\nscorers = [{ type = \"contains\", value = \"Oslo\" }, { type = \"contains\", name = \"paris\", value = \"Paris\" }]\n";
    glassbox_providers::install_crypto_provider();
    let config = glassbox_config::parse(text, "test.toml", &env).unwrap();
    let (agents, _) = runtime::build(&config, &env).unwrap();
    // The config's scorers, plus two custom ones that misbehave.
    let from_config = glassbox_server::evals::online_evals(&config, None, &env).unwrap().unwrap();
    assert!(from_config.sampled("assistant", "0123456789abcdef0123456789abcdef"));
    let mut scorers = vec![builtin(json!({ "type": "contains", "value": "Oslo" })), builtin(json!({ "type": "contains", "name": "paris", "value": "Paris" }))];
    scorers.push(ConfiguredScorer::new("panics", 0.5, Arc::new(Panics)));
    scorers.push(ConfiguredScorer::new("sleeps", 0.5, Arc::new(Sleeps(Duration::from_secs(600)))));
    let online = OnlineEvals::new(
        [(String::from("assistant"), AgentEvals { sample_rate: 1.0, timeout: Duration::from_millis(200), scorers })].into(),
        Some(Arc::clone(&store.evals)),
        Arc::new(telemetry::pricing_table(&[])),
    )
    .with_linger(Duration::from_millis(100));
    let app = glassbox_server::router_with_evals(agents, glassbox_server::HttpOptions::default(), Some(Arc::new(online)));
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve::serve(listener, app, std::future::pending(), Duration::from_secs(1)));

    mock.push(Reply::Text("Sunny in Oslo.".into()));
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/agents/assistant/generate"))
        .json(&json!({ "messages": "weather in Oslo?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the request is unaffected by its scorers");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["text"], "Sunny in Oslo.");
    let trace_id = body["traceId"].as_str().unwrap().to_owned();

    let rows = scores_of(&store, &trace_id, 4).await;
    let by_name = |name: &str| rows.iter().find(|row| row.scorer == name).unwrap_or_else(|| panic!("no {name} score"));
    assert_eq!((by_name("contains").score, by_name("contains").passed), (Some(1.0), true));
    assert_eq!((by_name("paris").score, by_name("paris").passed), (Some(0.0), false));
    assert_eq!(by_name("panics").error, "scorer panicked: bad scorer");
    assert_eq!(by_name("panics").score, None);
    assert_eq!(by_name("sleeps").error, "scorer timed out after 200ms");
    assert!(rows.iter().all(|row| row.agent == "assistant" && row.span_id.len() == 16));

    // The same scores as spans of the request's trace.
    let mut evaluation_spans = Vec::new();
    for _ in 0..100 {
        telemetry.flush().await;
        let spans = store.reader.trace_spans(&trace_id).await.unwrap();
        evaluation_spans = spans.into_iter().filter(|span| span.span_name.starts_with("evaluation ")).collect::<Vec<_>>();
        if evaluation_spans.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(evaluation_spans.len(), 4, "{evaluation_spans:#?}");
    let oslo = evaluation_spans.iter().find(|span| span.span_name == "evaluation contains").unwrap();
    assert_eq!(oslo.attribute("gen_ai.evaluation.name"), Some("contains"));
    assert_eq!(oslo.attribute("gen_ai.evaluation.score.value"), Some("1"));
    assert_eq!(oslo.attribute("gen_ai.evaluation.score.label"), Some("pass"));
    let panicked = evaluation_spans.iter().find(|span| span.span_name == "evaluation panics").unwrap();
    assert_eq!(panicked.attribute("error.type"), Some("scorer_error"));
    assert_eq!(panicked.attribute("gen_ai.evaluation.score.value"), None);

    // A streamed run is scored too, once it finished.
    mock.push(Reply::Text("Rain in Oslo.".into()));
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/agents/assistant/stream"))
        .json(&json!({ "messages": "weather in Oslo?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let stream_trace = traceparent.split('-').nth(1).unwrap().to_owned();
    assert!(response.text().await.unwrap().contains("Rain in Oslo."));
    let rows = scores_of(&store, &stream_trace, 4).await;
    assert!(rows.iter().any(|row| row.scorer == "contains" && row.passed));

    // The OpenAI-compatible route samples and scores the same way, answered whole or streamed.
    for stream in [false, true] {
        mock.push(Reply::Text("Fog in Oslo.".into()));
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&json!({ "model": "assistant", "stream": stream, "messages": [{ "role": "user", "content": "weather in Oslo?" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
        let trace = traceparent.split('-').nth(1).unwrap().to_owned();
        let text = response.text().await.unwrap();
        // Streamed, the text comes in deltas; the `contains` score below checks it whole.
        assert!(text.contains(if stream { "[DONE]" } else { "Fog in Oslo." }), "{text}");
        let rows = scores_of(&store, &trace, 4).await;
        assert!(rows.iter().any(|row| row.scorer == "contains" && row.passed), "stream: {stream}: {rows:#?}");
        assert!(rows.iter().any(|row| row.scorer == "paris" && !row.passed), "stream: {stream}: {rows:#?}");
    }
    telemetry.shutdown().await;
    mock.shutdown().await;
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn glassbox(args: &[&str], dir: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(args)
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("CI", "1")
        .output()
        .expect("run glassbox");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn shipped_suites_pass_in_replay_and_a_changed_prompt_fails_with_a_diff() {
    let root = workspace();
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let json = out.path().join("report.json");
    let store = out.path().join("store.db");
    // Its own store file, through the config copy below, so runs never touch the repo's.
    let config = std::fs::read_to_string(root.join("glassbox.toml")).unwrap();
    let config = format!("[store]\nsqlite_path = \"{}\"\nspool_dir = \"{}\"\n{config}", store.display(), out.path().join("spool").display());
    let config_path = out.path().join("glassbox.toml");
    std::fs::write(&config_path, &config).unwrap();

    let (code, stdout, stderr) = glassbox(
        &["eval", "run", "evals/", "--config", config_path.to_str().unwrap(), "--junit", junit.to_str().unwrap(), "--json", json.to_str().unwrap()],
        &root,
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for suite in ["assistant", "extractor", "researcher"] {
        assert!(stdout.contains(&format!("== {suite} (agent {suite}, replay) ==")), "{stdout}");
    }
    let reports: Vec<glassbox_evals::Report> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|report| report.total >= 25 && report.passed == report.total));
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<testsuite name=\"researcher\""));
    let db = rusqlite::Connection::open(&store).unwrap();
    let runs = db.query_row("SELECT count(*) FROM eval_runs WHERE GatePassed = 1", [], |row| row.get::<_, i64>(0)).unwrap();
    assert_eq!(runs, 3, "every suite run is in the store");
    // And every case with its texts, for the dashboard's run page.
    let cases: usize = reports.iter().map(|report| report.cases.len()).sum();
    let stored = db
        .query_row("SELECT count(*) FROM eval_cases WHERE Input <> '' AND Output <> ''", [], |row| row.get::<_, i64>(0))
        .unwrap();
    assert_eq!(stored as usize, cases, "every case's input and output is stored");

    let changed = config.replace(
        "You are a concise, friendly assistant. Answer in at most three sentences.",
        "You are a pirate. Answer like a pirate.",
    );
    assert_ne!(changed, config, "the example agent's instructions changed; update this test");
    std::fs::write(&config_path, changed).unwrap();
    let (code, stdout, _) = glassbox(&["eval", "run", "evals/assistant.toml", "--config", config_path.to_str().unwrap(), "--no-store"], &root);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED assistant-01"), "{stdout}");
    assert!(stdout.contains("-       \"content\": \"You are a concise, friendly assistant. Answer in at most three sentences.\","), "{stdout}");
    assert!(stdout.contains("+       \"content\": \"You are a pirate. Answer like a pirate.\","), "{stdout}");
    assert!(stdout.contains("gate FAILED"), "{stdout}");
}

#[test]
fn a_broken_suite_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("glassbox.toml"), "[models.m]\nprovider = \"mock\"\nmodel = \"mock-echo\"\n[agents.a]\ninstructions = \"x\"\nmodel = \"m\"\n").unwrap();
    std::fs::write(dir.path().join("cases.jsonl"), "{\"input\": \"hi\"}\n").unwrap();
    std::fs::write(dir.path().join("suite.toml"), "target = { agent = \"missing\" }\ndataset = \"cases.jsonl\"\n[[scorers]]\ntype = \"no_pii\"\n").unwrap();
    let (code, _, stderr) = glassbox(&["eval", "run", "suite.toml", "--no-store"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown agent \"missing\" (the config has: a)"), "{stderr}");
    std::fs::write(dir.path().join("suite.toml"), "target = { agent = \"a\" }\ndataset = \"cases.jsonl\"\n[[scorers]]\ntype = \"nope\"\n").unwrap();
    let (code, _, stderr) = glassbox(&["eval", "run", "suite.toml", "--no-store"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown variant `nope`"), "{stderr}");
}

/// `OnlineEvals::flush` (at shutdown) waits for the requests being scored and stores their
/// scores with those waiting for their group, under a linger far longer than the test.
#[tokio::test]
async fn a_flush_stores_the_scores_of_requests_still_being_scored() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.unwrap());
    glassbox_store::Backend::migrate(backend.as_ref()).await.unwrap();
    let scorers = vec![ConfiguredScorer::new("slow", 0.5, Arc::new(Sleeps(Duration::from_millis(300))))];
    let online = Arc::new(
        OnlineEvals::new(
            [(String::from("assistant"), AgentEvals { sample_rate: 1.0, timeout: Duration::from_secs(5), scorers })]
                .into(),
            Some(backend.clone()),
            Arc::new(telemetry::pricing_table(&[])),
        )
        .with_linger(Duration::from_secs(3600)),
    );
    let trace_id = "0123456789abcdef0123456789abcdef";
    let request = glassbox_evals::online::ScoredRequest {
        agent: "assistant".into(),
        trace_id: trace_id.into(),
        span_id: "0123456789abcdef".into(),
        provider: "openai".into(),
        model: "test-model".into(),
        input: ScoreInput {
            input: "weather in Oslo?".into(),
            output: "Sunny in Oslo.".into(),
            object: None,
            expected: None,
            tool_calls: Vec::new(),
            usage: Default::default(),
            latency: Duration::from_millis(5),
            cost_usd: Some(0.0),
            metadata: serde_json::Value::Null,
        },
    };
    let scoring = tokio::spawn(Arc::clone(&online).evaluate(request));
    // Let the scorer start, then flush while it sleeps.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!scoring.is_finished(), "the scorer is still running when the flush starts");
    online.flush(Duration::from_secs(10)).await;
    let rows = glassbox_store::EvalStore::eval_scores(backend.as_ref(), &[trace_id.to_owned()]).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert!(rows[0].passed && rows[0].scorer == "slow");
}
