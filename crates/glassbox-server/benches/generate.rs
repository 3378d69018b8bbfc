//! `POST /api/agents/{id}/generate` through the whole server against the mock LLM server (no
//! added latency), side by side with a bare axum pass-through proxy to the same mock: the
//! floor any gateway pays for one extra HTTP hop.
//!
//! Run: `cargo bench -p glassbox-server --bench generate` (set `BENCH_SECONDS`,
//! `BENCH_CONNECTIONS` to change the defaults of 10 s and 32 connections).
//!
//! Glassbox runs as `glassbox serve` does by default: every span and usage row goes to the
//! embedded SQLite store through the telemetry writer (set `BENCH_TELEMETRY=off` to measure
//! without it). `BENCH_JOURNAL=off|usage|on` (default `on`) sets which kill-safety journals
//! run beside the writer: none, usage rows, or usage rows and spans (`span_journal`).
//!
//! Each component gets its own Tokio runtime, as if it were its own process: the mock (1
//! thread), the target under test (2 threads) and the load generator (2 threads). On a
//! 2-core machine they share the CPU, so compare the two targets' figures with each other,
//! not with figures from other machines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use glassbox_mockllm::MockLlm;
use glassbox_server::{HttpOptions, runtime, serve};

fn runtime_with(threads: usize, name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build().unwrap()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone)]
struct Proxy {
    client: reqwest::Client,
    upstream: String,
}

/// The floor: forwards the body to the mock unparsed and returns the answer unparsed.
async fn pass_through(State(proxy): State<Proxy>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut request = proxy.client.post(&proxy.upstream).body(body);
    if let Some(content_type) = headers.get("content-type") {
        request = request.header("content-type", content_type);
    }
    match request.send().await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = response.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn start_proxy(upstream: String) -> SocketAddr {
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(pass_through))
        .with_state(Proxy { client: reqwest::Client::new(), upstream });
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve::serve(listener, app, std::future::pending(), Duration::from_secs(1)));
    addr
}

/// A store that accepts and discards rows: isolates the cost of producing telemetry from the
/// cost of storing it (`BENCH_STORE=discard`).
struct DiscardStore;

#[async_trait::async_trait]
impl glassbox_store::Backend for DiscardStore {
    fn name(&self) -> &'static str {
        "discard"
    }
    async fn migrate(&self) -> Result<glassbox_store::MigrationReport, glassbox_store::StoreError> {
        Ok(glassbox_store::MigrationReport::default())
    }
    async fn insert_spans(&self, rows: &[glassbox_store::SpanRow], _: &str) -> Result<(), glassbox_store::StoreError> {
        std::hint::black_box(rows);
        Ok(())
    }
    async fn insert_usage(&self, rows: &[glassbox_store::UsageRow], _: &str) -> Result<(), glassbox_store::StoreError> {
        std::hint::black_box(rows);
        Ok(())
    }
    async fn ping(&self) -> Result<(), glassbox_store::StoreError> {
        Ok(())
    }
}

/// The store, writer and OpenTelemetry layer of `glassbox serve`, on a temporary SQLite file.
async fn start_telemetry(dir: &std::path::Path) -> glassbox_server::telemetry::Telemetry {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let backend: Arc<dyn glassbox_store::Backend> = if std::env::var("BENCH_STORE").is_ok_and(|v| v == "discard") {
        Arc::new(DiscardStore)
    } else {
        Arc::new(
            glassbox_store::sqlite::SqliteBackend::open(glassbox_store::sqlite::SqliteSettings { path: dir.join("bench.db") })
                .await
                .unwrap(),
        )
    };
    backend.migrate().await.unwrap();
    let writer = glassbox_store::writer::TelemetryWriter::start(backend, glassbox_store::writer::WriterConfig::new(dir.join("spool")))
        .await
        .unwrap();
    let telemetry = glassbox_server::telemetry::Telemetry::new(
        "glassbox-bench",
        Some(writer),
        Arc::new(glassbox_server::telemetry::pricing_table(&[])),
        None,
    )
    .unwrap();
    // The kill-safety journals, as the binary runs them: `BENCH_JOURNAL=off` (none), `usage`
    // (usage rows only) or `on` (usage rows and spans, the default).
    let journals = std::env::var("BENCH_JOURNAL").unwrap_or_else(|_| "on".to_owned());
    if journals != "off" {
        let writer = telemetry.writer().unwrap().clone();
        let (usage, _) = glassbox_server::usage_journal::UsageJournal::open(dir.join("journal")).unwrap();
        telemetry.journal_usage(Arc::clone(&usage));
        glassbox_server::usage_journal::spawn_rotation(usage, writer.clone());
        if journals != "usage" {
            let (spans, _) = glassbox_server::span_journal::open(dir.join("journal")).unwrap();
            telemetry.journal_spans(Arc::clone(&spans));
            glassbox_server::usage_journal::spawn_rotation(spans, writer);
        }
    }
    println!("journals: {journals}");
    tracing_subscriber::registry().with(glassbox_server::telemetry::layer(&telemetry)).init();
    telemetry
}

async fn start_glassbox(mock_url: String) -> SocketAddr {
    let config_text = r#"
[models.bench]
provider = "openai"
model = "bench-model"
base_url = "${MOCK_URL}"
max_retries = 0

[agents.bench]
instructions = "You are a benchmark."
model = "bench"
"#;
    let env = move |name: &str| (name == "MOCK_URL").then(|| mock_url.clone());
    let config = glassbox_config::parse(config_text, "bench.toml", &env).unwrap();
    let (agents, _) = runtime::build(&config, &env).unwrap();
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = glassbox_server::router(agents, HttpOptions::default());
    tokio::spawn(serve::serve(listener, app, std::future::pending(), Duration::from_secs(1)));
    addr
}

struct Figures {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Figures {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }
}

/// Closed-loop load: `connections` workers, each sending the next request when the last
/// answered, for `duration` after a one-second warm-up.
async fn drive(url: String, body: &'static str, connections: usize, duration: Duration) -> Figures {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).tcp_nodelay(true).build().unwrap();
    let warm_up_end = Instant::now() + Duration::from_secs(1);
    let end = warm_up_end + duration;
    let url = Arc::new(url);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url) = (client.clone(), Arc::clone(&url));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                loop {
                    let start = Instant::now();
                    if start >= end {
                        break;
                    }
                    let ok = match client.post(url.as_str()).header("content-type", "application/json").body(body).send().await {
                        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if start >= warm_up_end {
                        if ok {
                            latencies.push(start.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, worker_errors) = worker.await.unwrap();
        all.extend(latencies);
        errors += worker_errors;
    }
    all.sort_unstable();
    Figures { requests: all.len(), errors, elapsed: duration, latencies_us: all }
}

fn main() {
    // Test runners list the targets of a workspace with `--list`; this is not a test.
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let seconds = env_or("BENCH_SECONDS", 10);
    let connections = env_or("BENCH_CONNECTIONS", 32) as usize;
    let duration = Duration::from_secs(seconds);
    glassbox_providers::install_crypto_provider();

    let mock_runtime = runtime_with(1, "mock");
    let target_runtime = runtime_with(2, "target");
    let load_runtime = runtime_with(2, "load");

    let mock = mock_runtime.block_on(MockLlm::start()).unwrap();
    let mock_base = mock.openai_base_url();
    let proxy_addr = target_runtime.block_on(start_proxy(format!("{mock_base}/chat/completions")));
    let telemetry_dir = tempfile::tempdir().unwrap();
    let telemetry_on = std::env::var("BENCH_TELEMETRY").map_or(true, |value| value != "off");
    let telemetry = telemetry_on.then(|| target_runtime.block_on(start_telemetry(telemetry_dir.path())));
    let glassbox_addr = target_runtime.block_on(start_glassbox(mock_base));

    let proxy_body = r#"{"model":"bench-model","messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"hello"}]}"#;
    let glassbox_body = r#"{"messages":"hello"}"#;

    println!(
        "generate benchmark: {connections} connections, {seconds} s per target after 1 s warm-up, telemetry {}",
        if telemetry_on { "on (SQLite store)" } else { "off" }
    );
    let floor = load_runtime.block_on(drive(format!("http://{proxy_addr}/v1/chat/completions"), proxy_body, connections, duration));
    let glassbox = load_runtime.block_on(drive(
        format!("http://{glassbox_addr}/api/agents/bench/generate"),
        glassbox_body,
        connections,
        duration,
    ));

    println!();
    println!("| target | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for (name, figures) in [("pass-through proxy (floor)", &floor), ("glassbox generate", &glassbox)] {
        println!(
            "| {name} | {:.0} | {:.3} | {:.3} | {} |",
            figures.rps(),
            figures.percentile_ms(0.50),
            figures.percentile_ms(0.99),
            figures.errors
        );
    }
    println!();
    println!("throughput ratio glassbox / floor: {:.1}%", 100.0 * glassbox.rps() / floor.rps());
    println!("added p50: {:+.3} ms", glassbox.percentile_ms(0.50) - floor.percentile_ms(0.50));
    println!("added p99: {:+.3} ms", glassbox.percentile_ms(0.99) - floor.percentile_ms(0.99));
    if let Some(telemetry) = telemetry {
        target_runtime.block_on(telemetry.flush());
        if let Some(writer) = telemetry.writer() {
            let stats = writer.stats();
            println!(
                "telemetry: {} rows written, {} spooled, {} dropped",
                stats.written_rows, stats.spooled_rows, stats.dropped_rows
            );
        }
    }
}
