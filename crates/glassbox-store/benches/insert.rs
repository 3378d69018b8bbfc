//! Sustained rows per second into a real ClickHouse engine (the chDB test fixture) and into
//! the embedded SQLite store, through the backends directly and through the writer.
//!
//! `cargo bench -p glassbox-store --bench insert` (needs the fixture: `./tests/run.sh
//! --setup-only` once). `BENCH_SPANS` changes the row count (default 100,000).
//!
//! The fixture runs one query at a time in front of chDB and keeps bodies in memory, so its
//! figure is a floor for a real ClickHouse server, not a measure of one.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use glassbox_store::{Backend, SpanRow, StatusCode};
use glassbox_testkit::ClickHouseFixture;

const BATCH: usize = 5_000;

fn span(index: usize) -> SpanRow {
    let trace = index / 5;
    SpanRow {
        timestamp_ns: 1_790_000_000_000_000_000 + index as i64 * 1_000_000,
        trace_id: format!("{trace:032x}"),
        span_id: format!("{index:016x}"),
        parent_span_id: if index.is_multiple_of(5) { String::new() } else { format!("{:016x}", index - index % 5) },
        trace_state: String::new(),
        span_name: if index.is_multiple_of(5) { "POST /api/agents/{agent_id}/generate".into() } else { "chat gpt-4o-mini".into() },
        span_kind: "Internal".into(),
        service_name: "glassbox".into(),
        resource_attributes: vec![("service.name".into(), "glassbox".into())],
        scope_name: "glassbox".into(),
        scope_version: String::new(),
        span_attributes: vec![
            ("gen_ai.operation.name".into(), "chat".into()),
            ("gen_ai.provider.name".into(), "openai".into()),
            ("gen_ai.request.model".into(), "gpt-4o-mini".into()),
            ("gen_ai.agent.name".into(), "assistant".into()),
            ("gen_ai.usage.input_tokens".into(), "812".into()),
            ("gen_ai.usage.output_tokens".into(), "95".into()),
            ("glassbox.cost_usd".into(), "0.000178800".into()),
            ("gen_ai.input.messages".into(), "[{\"role\":\"user\",\"content\":\"what is the weather in Oslo today?\"}]".into()),
        ],
        duration_ns: 1_500_000,
        status_code: StatusCode::Ok,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

async fn direct(backend: &dyn Backend, rows: &[SpanRow]) -> f64 {
    let start = Instant::now();
    for (index, batch) in rows.chunks(BATCH).enumerate() {
        backend.insert_spans(batch, &format!("bench-{index}")).await.unwrap();
    }
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

async fn through_writer(backend: Arc<dyn Backend>, rows: &[SpanRow]) -> f64 {
    let spool = tempfile::tempdir().unwrap();
    let mut config = WriterConfig::new(spool.path());
    config.batch_rows = Some(BATCH);
    config.flush_interval = Duration::from_millis(200);
    let writer = TelemetryWriter::start(backend, config).await.unwrap();
    let start = Instant::now();
    for row in rows {
        writer.write_span(row.clone());
    }
    writer.flush().await;
    let elapsed = start.elapsed();
    let stats = writer.stats();
    assert_eq!(stats.written_rows as usize, rows.len(), "{stats:?}");
    writer.shutdown().await;
    rows.len() as f64 / elapsed.as_secs_f64()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let n: usize = std::env::var("BENCH_SPANS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let rows: Vec<SpanRow> = (0..n).map(span).collect();
        let fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture (./tests/run.sh --setup-only)");
        let mut figures = Vec::new();
        for label in ["direct", "writer"] {
            let database = fixture.fresh_database().await.unwrap();
            let backend = Arc::new(
                ClickHouseBackend::new(ClickHouseSettings { url: fixture.url(), database, ..ClickHouseSettings::default() })
                    .unwrap(),
            );
            backend.migrate().await.unwrap();
            let rate = if label == "direct" { direct(backend.as_ref(), &rows).await } else { through_writer(backend, &rows).await };
            figures.push((format!("clickhouse (chDB fixture), {label}"), rate));
        }
        for label in ["direct", "writer"] {
            let dir = tempfile::tempdir().unwrap();
            let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("bench.db") }).await.unwrap());
            backend.migrate().await.unwrap();
            let rate = if label == "direct" { direct(backend.as_ref(), &rows).await } else { through_writer(backend, &rows).await };
            figures.push((format!("sqlite, {label}"), rate));
        }
        println!("sustained span inserts, {n} rows in batches of {BATCH}");
        println!("| store | rows/s |");
        println!("|---|---:|");
        for (label, rate) in figures {
            println!("| {label} | {rate:.0} |");
        }
    });
}
