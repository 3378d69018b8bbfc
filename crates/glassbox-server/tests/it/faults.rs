//! Losing telemetry is a bug: ClickHouse killed and restarted while 2,000 requests run, and
//! every span and usage row of every completed request is stored exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use glassbox_server::HttpOptions;
use glassbox_server::telemetry::{self, Telemetry};
use glassbox_store::Backend;
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use glassbox_testkit::ClickHouseFixture;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::helpers::{BASE_CONFIG, spawn_app_with, start_server};

const REQUESTS: usize = 2000;
const CONCURRENCY: usize = 16;

/// A telemetry writer into a migrated ClickHouse `database`, spooling to `spool` with
/// short retries, and the telemetry layer installed as this test process's subscriber (each
/// nextest test runs in its own process, so the global subscriber is the test's alone).
pub(crate) async fn clickhouse_telemetry(
    fixture: &ClickHouseFixture,
    database: &str,
    spool: &std::path::Path,
    flush_interval: Duration,
    replay_interval: Duration,
) -> (TelemetryWriter, Telemetry) {
    let backend: Arc<dyn Backend> = Arc::new(
        ClickHouseBackend::new(ClickHouseSettings {
            url: fixture.url(),
            database: database.to_owned(),
            request_timeout: Duration::from_secs(5),
            ..ClickHouseSettings::default()
        })
        .unwrap(),
    );
    backend.migrate().await.unwrap();
    let mut writer_config = WriterConfig::new(spool);
    writer_config.flush_interval = flush_interval;
    writer_config.replay_interval = replay_interval;
    writer_config.retry_attempts = 2;
    writer_config.retry_base = Duration::from_millis(20);
    writer_config.insert_timeout = Duration::from_secs(2);
    let writer = TelemetryWriter::start(Arc::clone(&backend), writer_config).await.unwrap();
    let telemetry =
        Telemetry::new("glassbox-fault", Some(writer.clone()), Arc::new(telemetry::pricing_table(&[])), None).unwrap();
    tracing_subscriber::registry().with(telemetry::layer(&telemetry)).init();
    (writer, telemetry)
}

fn count(text: &str) -> u64 {
    text.trim().parse().unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_killed_under_load_loses_and_doubles_nothing() {
    let mut fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (writer, telemetry) =
        clickhouse_telemetry(&fixture, &database, spool.path(), Duration::from_millis(100), Duration::from_millis(300)).await;
    let app = Arc::new(spawn_app_with(BASE_CONFIG, HttpOptions::default(), &|_| None).await);

    let done = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (app, done, next) = (Arc::clone(&app), Arc::clone(&done), Arc::clone(&next));
            tokio::spawn(async move {
                let mut trace_ids = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                    let response = app.post_json("/api/agents/echo/generate", json!({"messages": "count me"})).await;
                    assert_eq!(response.status(), 200, "the API keeps answering while ClickHouse is down");
                    let body: Value = response.json().await.unwrap();
                    trace_ids.push(body["traceId"].as_str().unwrap().to_owned());
                    done.fetch_add(1, Ordering::SeqCst);
                }
                trace_ids
            })
        })
        .collect();

    while done.load(Ordering::SeqCst) < REQUESTS / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fixture.kill().await;
    while done.load(Ordering::SeqCst) < REQUESTS * 3 / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spooled_while_down = writer.stats().spooled_rows;
    fixture.restart().await.expect("the fixture restarts on its data");

    let mut trace_ids = Vec::new();
    for worker in workers {
        trace_ids.extend(worker.await.unwrap());
    }
    assert_eq!(trace_ids.len(), REQUESTS);

    // Every request's three spans (request, agent, model call) and one usage row.
    let expected_spans = 3 * REQUESTS as u64;
    let expected_usage = REQUESTS as u64;
    let mut last = (0, 0);
    for _ in 0..300 {
        telemetry.flush().await;
        let spans = count(&fixture.query_text(&format!("SELECT count() FROM {database}.spans")).await.unwrap_or_default());
        let usage = count(&fixture.query_text(&format!("SELECT count() FROM {database}.usage")).await.unwrap_or_default());
        last = (spans, usage);
        if spans >= expected_spans && usage >= expected_usage && writer.stats().spool_files == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = writer.stats();
    assert!(spooled_while_down > 0, "the outage must have sent rows to the spool: {stats:?}");
    assert_eq!(stats.dropped_rows, 0, "{stats:?}");
    assert_eq!(last, (expected_spans, expected_usage), "rows after recovery (spans, usage); {stats:?}");
    let distinct_spans =
        count(&fixture.query_text(&format!("SELECT uniqExact(TraceId, SpanId) FROM {database}.spans")).await.unwrap());
    let distinct_usage = count(&fixture.query_text(&format!("SELECT uniqExact(SpanId) FROM {database}.usage")).await.unwrap());
    assert_eq!(distinct_spans, expected_spans, "no span doubled");
    assert_eq!(distinct_usage, expected_usage, "no usage row doubled");
    let traces = count(&fixture.query_text(&format!("SELECT uniqExact(TraceId) FROM {database}.spans")).await.unwrap());
    assert_eq!(traces, REQUESTS as u64, "every completed request's trace is there");
    telemetry.shutdown().await;
}

const PROVIDER_KEY: &str = "sk-fault-test-provider-key-9f8e7d6c5b4a";

/// Rows held in the spool's batch files: (spans, usage), from each file's header.
/// A config for the kill tests: one agent `echo` on the mock (its key in
/// `FAULT_TEST_PROVIDER_KEY`), ClickHouse as the store, the spool at `spool`, 100 ms flushes.
pub(crate) fn write_spool_config(
    path: &std::path::Path,
    clickhouse_url: &str,
    database: &str,
    spool: &std::path::Path,
    mock_url: &str,
    model: &str,
) {
    let spool = spool.display();
    let text = format!(
        r#"
[store]
clickhouse_url = "{clickhouse_url}"
clickhouse_database = "{database}"
spool_dir = "{spool}"
flush_interval_ms = 100

[models.main]
provider = "openai"
model = "{model}"
base_url = "{mock_url}"
api_key_env = "FAULT_TEST_PROVIDER_KEY"

[agents.echo]
instructions = "Repeat."
model = "main"
"#
    );
    std::fs::write(path, text).unwrap();
}

pub(crate) fn spooled_rows(spool: &std::path::Path) -> (u64, u64) {
    let mut totals = (0, 0);
    for entry in std::fs::read_dir(spool).into_iter().flatten() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let Some(header) = text.lines().next().and_then(|line| serde_json::from_str::<Value>(line).ok()) else { continue };
        let rows = header["rows"].as_u64().unwrap_or(0);
        if name.starts_with("spans-") {
            totals.0 += rows;
        } else if name.starts_with("usage-") {
            totals.1 += rows;
        }
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_replays_its_spool_exactly_once_after_restart() {
    const N: usize = 200;
    let mock = glassbox_mockllm::MockLlm::start().await.unwrap();
    let mut fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let config = dir.path().join("glassbox.toml");
    write_spool_config(&config, &fixture.url(), &database, &spool, &mock.openai_base_url(), "spool-test-model");
    let mut server = start_server(&config, &[("FAULT_TEST_PROVIDER_KEY", PROVIDER_KEY)]).await;
    fixture.kill().await;

    glassbox_providers::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut trace_ids = Vec::new();
    for _ in 0..N {
        let response =
            client.post(format!("{}/api/agents/echo/generate", server.url)).json(&json!({"messages": "hi"})).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        trace_ids.push(body["traceId"].as_str().unwrap().to_owned());
    }
    // With ClickHouse down, every row ends up in the spool.
    let expected = (3 * N as u64, N as u64);
    let mut spooled = (0, 0);
    for _ in 0..200 {
        spooled = spooled_rows(&spool);
        if spooled == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spooled, expected, "spooled (spans, usage) before the kill");
    assert_eq!(mock.request_count(), N, "every request reached the provider with its key");
    for entry in std::fs::read_dir(&spool).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(PROVIDER_KEY), "the provider key leaked into the spool file {}", path.display());
        assert!(!text.to_lowercase().contains("bearer"), "an authorization header leaked into {}", path.display());
    }

    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
    fixture.restart().await.unwrap();
    let mut restarted = start_server(&config, &[("FAULT_TEST_PROVIDER_KEY", PROVIDER_KEY)]).await;

    let mut stored = (0, 0);
    for _ in 0..300 {
        let spans = fixture.query_text(&format!("SELECT count() FROM {database}.spans")).await.unwrap_or_default();
        let usage = fixture.query_text(&format!("SELECT count() FROM {database}.usage")).await.unwrap_or_default();
        stored = (count(&spans), count(&usage));
        if stored == expected && spooled_rows(&spool) == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, expected, "replayed (spans, usage) after the restart");
    assert_eq!(spooled_rows(&spool), (0, 0), "the spool is empty once replayed");
    let distinct = count(&fixture.query_text(&format!("SELECT uniqExact(TraceId, SpanId) FROM {database}.spans")).await.unwrap());
    assert_eq!(distinct, expected.0, "no span doubled");
    let traces = count(&fixture.query_text(&format!("SELECT uniqExact(TraceId) FROM {database}.spans")).await.unwrap());
    assert_eq!(traces, N as u64);
    let first = &trace_ids[0];
    let first_spans =
        count(&fixture.query_text(&format!("SELECT count() FROM {database}.spans WHERE TraceId = '{first}'")).await.unwrap());
    assert_eq!(first_spans, 3);
    for table in ["spans", "usage"] {
        let dump = fixture.query_text(&format!("SELECT * FROM {database}.{table} FORMAT TSV")).await.unwrap();
        assert!(!dump.contains(PROVIDER_KEY), "the provider key leaked into {table}");
    }
    restarted.child.start_kill().unwrap();
}
