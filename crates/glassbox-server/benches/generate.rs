//! `POST /api/agents/{id}/generate` through the whole server against the mock LLM server (no
//! added latency), side by side with a bare axum pass-through proxy to the same mock: the
//! floor any gateway pays for one extra HTTP hop.
//!
//! Run: `cargo bench -p glassbox-server --bench generate` (set `BENCH_SECONDS`,
//! `BENCH_CONNECTIONS` to change the defaults of 10 s and 32 connections).
//!
//! Glassbox runs as `glassbox serve` does, with the whole pipeline on (`BENCH_PIPELINE=full`,
//! the default): an API key checked on every request, its tenant's rate limit and day/month
//! budgets, input processors (normalize, length, PII, injection), a topic guardrail, output
//! guardrails (PII, length), a per-request budget, every span and usage row written to the
//! embedded SQLite store through the telemetry writer, `/metrics` and log layers, and online
//! evals sampling 10% of requests. `BENCH_PIPELINE=bare` serves a plain agent instead, with
//! telemetry on (or off with `BENCH_TELEMETRY=off`). `BENCH_STORE=discard` replaces the
//! SQLite span/usage store with one that drops rows, to separate producing telemetry from
//! storing it.
//! `BENCH_JOURNAL=off|usage|on` (default `on`) sets which kill-safety journals
//! run beside the writer: none, usage rows, or usage rows and spans (`span_journal`).
//!
//! Each component gets its own Tokio runtime, as if it were its own process: the mock (1
//! thread), the target under test (2 threads) and the load generator (2 threads). On a
//! 2-core machine they share the CPU, so compare the two targets' figures with each other,
//! not with figures from other machines.
//!
//! CPU per request is the on-CPU time of the target runtime's threads (workers and blocking
//! threads, named `target`; Linux `schedstat`) while that target is driven, warm-up included,
//! over the requests answered in that time (the warm-up's at the measured rate).

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

fn discard_store() -> bool {
    std::env::var("BENCH_STORE").is_ok_and(|v| v == "discard")
}

/// The store, writer and OpenTelemetry layer of `glassbox serve`, on a temporary SQLite file.
async fn start_telemetry(dir: &std::path::Path) -> glassbox_server::telemetry::Telemetry {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let backend: Arc<dyn glassbox_store::Backend> = if discard_store() {
        Arc::new(DiscardStore)
    } else {
        Arc::new(
            glassbox_store::sqlite::SqliteBackend::open(glassbox_store::sqlite::SqliteSettings { path: dir.join("bench.db") })
                .await
                .unwrap(),
        )
    };
    let telemetry = telemetry_pipeline(dir, backend, &[]).await;
    tracing_subscriber::registry().with(glassbox_server::telemetry::layer(&telemetry)).init();
    telemetry
}

/// The span/usage store's writer and the OpenTelemetry pipeline.
async fn telemetry_pipeline(
    dir: &std::path::Path,
    backend: Arc<dyn glassbox_store::Backend>,
    pricing: &[glassbox_config::PricingConfig],
) -> glassbox_server::telemetry::Telemetry {
    backend.migrate().await.unwrap();
    let writer = glassbox_store::writer::TelemetryWriter::start(backend, glassbox_store::writer::WriterConfig::new(dir.join("spool")))
        .await
        .unwrap();
    let telemetry = glassbox_server::telemetry::Telemetry::new(
        "glassbox-bench",
        Some(writer),
        Arc::new(glassbox_server::telemetry::pricing_table(pricing)),
        None,
    )
    .unwrap();
    // The kill-safety journals: `BENCH_JOURNAL=off` (none), `usage` (usage rows alone, as JSON
    // lines: a library's option) or `on` (the span journal with the usage rows' records in it,
    // as the binary runs it; the default).
    let journals = std::env::var("BENCH_JOURNAL").unwrap_or_else(|_| "on".to_owned());
    if journals != "off" {
        let writer = telemetry.writer().unwrap().clone();
        let (journal, _) = match journals.as_str() {
            "usage" => glassbox_server::usage_journal::UsageJournal::open(dir.join("journal")).unwrap(),
            _ => glassbox_server::span_journal::open(dir.join("journal")).unwrap(),
        };
        match journals.as_str() {
            "usage" => telemetry.journal_usage(Arc::clone(&journal)),
            _ => telemetry.journal_spans(Arc::clone(&journal)),
        };
        glassbox_server::usage_journal::spawn_rotation(journal, writer);
    }
    println!("journals: {journals}");
    telemetry
}

/// The API key the full pipeline's requests present.
const BENCH_KEY: &str = "gbk_bench_0123456789abcdef0123456789abcdef";

/// The agent, tenant, key and online evals of the full pipeline, as a user would write them.
const FULL_CONFIG: &str = r#"
[store]
sqlite_path = "${BENCH_DIR}/bench.db"
spool_dir = "${BENCH_DIR}/spool"

[[pricing]]
pattern = "bench-model"
provider = "openai"
input_per_million = 0.15
output_per_million = 0.6

[models.bench]
provider = "openai"
model = "bench-model"
base_url = "${MOCK_URL}"
max_retries = 0

[agents.bench]
instructions = "You are a benchmark."
model = "bench"
max_output_tokens = 256
on_block = "tripwire"
processors = [
  { type = "normalize" },
  { type = "length", max_chars = 8000, max_tokens = 2000, strategy = "truncate" },
  { type = "pii", strategy = "redact" },
  { type = "injection", threshold = 0.5, strategy = "block" },
]
guardrails.input = [{ type = "topic", deny = ["stock tips", "crypto signals"] }]
guardrails.output = [
  { type = "pii", id = "pii-out", mode = "mask" },
  { type = "length", id = "max-output", max_chars = 4000, strategy = "truncate" },
]
budget = { max_input_tokens = 8000, max_total_tokens = 20000, max_cost_usd = 0.05 }

[tenants.bench]
requests_per_minute = 1000000000
burst = 1000000
daily_usd = 1000000.0
monthly_tokens = 100000000000

[keys.bench-key]
tenant = "bench"
key_env = "BENCH_KEY"
daily_tokens = 100000000000

[online_evals.bench]
sample_rate = 0.1
timeout_ms = 5000
scorers = [{ type = "no_pii" }, { type = "tokens", max_tokens = 2000 }]
"#;

/// Glassbox as `glassbox serve` builds it from [`FULL_CONFIG`]: keys, rate limits, budgets,
/// processors, guardrails, the store, `/metrics`, logs and online evals.
async fn start_full(mock_url: String, dir: &std::path::Path) -> (SocketAddr, glassbox_server::telemetry::Telemetry) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let bench_dir = dir.display().to_string();
    let env = move |name: &str| match name {
        "MOCK_URL" => Some(mock_url.clone()),
        "BENCH_DIR" => Some(bench_dir.clone()),
        "BENCH_KEY" => Some(BENCH_KEY.to_owned()),
        _ => None,
    };
    let config = glassbox_config::parse(FULL_CONFIG, "bench.toml", &env).unwrap();
    let (agents, _) = runtime::build(&config, &env).unwrap();
    let store = glassbox_server::store::open(&config.store, &env).await.unwrap();
    store.backend.migrate().await.unwrap();
    // As in `glassbox serve`: the writer and the online evals share the store's connection.
    let backend: Arc<dyn glassbox_store::Backend> =
        if discard_store() { Arc::new(DiscardStore) } else { Arc::clone(&store.backend) };
    let telemetry = telemetry_pipeline(dir, backend, &config.pricing).await;
    let pricing = Arc::new(glassbox_server::telemetry::pricing_table(&config.pricing));
    let key_store = glassbox_server::store::open_key_store(&config.store, &env).await.unwrap();
    let access = Arc::new(glassbox_server::access::Access::load(&config, key_store.as_ref(), &env, pricing).await.unwrap());
    let settling = Arc::clone(&access);
    telemetry.observe_usage(Arc::new(move |row| settling.settle(row)));
    // The layers of `glassbox serve` with its default filter, logging to standard error.
    tracing_subscriber::registry()
        .with(glassbox_server::logging::TraceIdLayer)
        .with(glassbox_server::telemetry::layer_with_logs(
            &telemetry,
            glassbox_server::logging::LogLines::stderr(glassbox_server::logging::LogFormat::Text),
            tracing_subscriber::EnvFilter::new("info,glassbox_core=warn"),
        ))
        .init();
    if let Some(writer) = telemetry.writer() {
        glassbox_server::metrics::watch_writer(writer);
    }
    let online_evals = glassbox_server::evals::online_evals(&config, Some(Arc::clone(&store.evals)), &env).unwrap();
    assert!(online_evals.is_some(), "the full pipeline samples online evals");
    let app = glassbox_server::build_router(
        agents,
        HttpOptions::default(),
        glassbox_server::RouterParts {
            access: Some(access),
            workflows: None,
            dashboard: None,
            online_evals,
            telemetry: telemetry.writer().cloned(),
        },
    );
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve::serve(listener, app, std::future::pending(), Duration::from_secs(1)));
    (addr, telemetry)
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
async fn drive(
    url: String,
    body: &'static str,
    authorization: Option<&'static str>,
    connections: usize,
    duration: Duration,
) -> Figures {
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
                    let mut request = client.post(url.as_str()).header("content-type", "application/json").body(body);
                    if let Some(authorization) = authorization {
                        request = request.header("authorization", authorization);
                    }
                    let ok = match request.send().await {
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

/// Nanoseconds on CPU of this process's threads named `target` (the target runtime's
/// workers and blocking threads), from `/proc/self/task/*/schedstat`; 0 off Linux.
fn target_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.starts_with("target")))
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()))
        .sum()
}

/// CPU per request of a drive (warm-up second included, counted at the measured rate).
fn cpu_us_per_request(cpu_ns: u64, figures: &Figures) -> f64 {
    let requests = figures.rps() * (figures.elapsed.as_secs_f64() + 1.0);
    cpu_ns as f64 / 1000.0 / requests
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
    let full = std::env::var("BENCH_PIPELINE").map_or(true, |value| value != "bare");
    let telemetry_on = full || std::env::var("BENCH_TELEMETRY").map_or(true, |value| value != "off");
    let (glassbox_addr, telemetry) = if full {
        let (addr, telemetry) = target_runtime.block_on(start_full(mock_base, telemetry_dir.path()));
        (addr, Some(telemetry))
    } else {
        let telemetry = telemetry_on.then(|| target_runtime.block_on(start_telemetry(telemetry_dir.path())));
        (target_runtime.block_on(start_glassbox(mock_base)), telemetry)
    };
    let authorization: Option<&'static str> =
        full.then(|| &*Box::leak(format!("Bearer {BENCH_KEY}").into_boxed_str()));

    let proxy_body = r#"{"model":"bench-model","messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"hello"}]}"#;
    let glassbox_body = r#"{"messages":"hello"}"#;

    let store = if discard_store() { "discarding store" } else { "SQLite store" };
    println!(
        "generate benchmark: {connections} connections, {seconds} s per target after 1 s warm-up, pipeline {}, telemetry {}",
        if full { "full (key, rate limit, budgets, processors, guardrails, 10% online evals)" } else { "bare" },
        if telemetry_on { format!("on ({store})") } else { "off".to_owned() }
    );
    let cpu_before_floor = target_cpu_ns();
    let floor = load_runtime.block_on(drive(
        format!("http://{proxy_addr}/v1/chat/completions"),
        proxy_body,
        None,
        connections,
        duration,
    ));
    let cpu_floor = target_cpu_ns() - cpu_before_floor;
    let cpu_before_glassbox = target_cpu_ns();
    let glassbox = load_runtime.block_on(drive(
        format!("http://{glassbox_addr}/api/agents/bench/generate"),
        glassbox_body,
        authorization,
        connections,
        duration,
    ));
    let cpu_glassbox = target_cpu_ns() - cpu_before_glassbox;

    println!();
    println!("| target | requests/s | p50 ms | p99 ms | errors | target CPU µs/request |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, figures, cpu_ns) in
        [("pass-through proxy (floor)", &floor, cpu_floor), ("glassbox generate", &glassbox, cpu_glassbox)]
    {
        println!(
            "| {name} | {:.0} | {:.3} | {:.3} | {} | {:.1} |",
            figures.rps(),
            figures.percentile_ms(0.50),
            figures.percentile_ms(0.99),
            figures.errors,
            cpu_us_per_request(cpu_ns, figures)
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
    // The whole process: the mock, both targets and the load generator.
    if let Some(peak) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find(|line| line.starts_with("VmHWM:")).map(str::to_owned))
    {
        println!("peak RSS of the benchmark process (mock + floor + glassbox + load): {}", peak.trim_start_matches("VmHWM:").trim());
    }
}
