//! ns per `write_span` (the request-path cost: enqueue, and row construction) for 1M spans
//! against a no-op backend, next to a plain bounded `tokio::sync::mpsc` send of the same row.
//!
//! `cargo bench -p glassbox-store --bench writer`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use glassbox_store::{Backend, MigrationReport, SpanRow, StatusCode, StoreError, UsageRow};

const N_SPANS: usize = 1_000_000;
const CHUNK: usize = 10_000;

struct NoopBackend;

#[async_trait]
impl Backend for NoopBackend {
    fn name(&self) -> &'static str {
        "noop"
    }
    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        Ok(MigrationReport::default())
    }
    async fn insert_spans(&self, rows: &[SpanRow], _dedup_token: &str) -> Result<(), StoreError> {
        black_box(rows);
        Ok(())
    }
    async fn insert_usage(&self, rows: &[UsageRow], _dedup_token: &str) -> Result<(), StoreError> {
        black_box(rows);
        Ok(())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A typical `chat` span: ids, a dozen attributes, no events.
fn template_span() -> SpanRow {
    let attributes = [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "gpt-4o-mini"),
        ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        ("gen_ai.response.finish_reasons", "[\"stop\"]"),
        ("gen_ai.usage.input_tokens", "1234"),
        ("gen_ai.usage.output_tokens", "256"),
        ("gen_ai.agent.name", "support"),
        ("gen_ai.conversation.id", "thread_0123456789"),
        ("glassbox.tenant", "acme"),
        ("glassbox.api_key_id", "key_01"),
        ("glassbox.cost_usd", "0.000338"),
    ];
    SpanRow {
        timestamp_ns: 1_750_000_000_000_000_000,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        parent_span_id: "a3ce929d0e0e4736".into(),
        trace_state: String::new(),
        span_name: "chat gpt-4o-mini".into(),
        span_kind: "Client".into(),
        service_name: "glassbox".into(),
        resource_attributes: vec![("service.name".into(), "glassbox".into())],
        scope_name: "glassbox".into(),
        scope_version: "0.1.0".into(),
        span_attributes: attributes.iter().map(|(k, v)| ((*k).to_owned().into(), (*v).into())).collect(),
        duration_ns: 812_000_000,
        status_code: StatusCode::Ok,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

/// Runs `send` over pre-built rows in chunks; returns the time spent in `send` only.
fn time_sends(template: &SpanRow, mut send: impl FnMut(SpanRow)) -> Duration {
    let mut total = Duration::ZERO;
    let mut chunk: Vec<SpanRow> = Vec::with_capacity(CHUNK);
    for _ in 0..N_SPANS / CHUNK {
        chunk.extend(std::iter::repeat_n(template, CHUNK).cloned());
        let started = Instant::now();
        for row in chunk.drain(..) {
            send(row);
        }
        total += started.elapsed();
    }
    total
}

/// Builds each row (a clone of the template, as an exporter converting span data would) and
/// sends it.
fn time_build_and_send(template: &SpanRow, mut send: impl FnMut(SpanRow)) -> Duration {
    let started = Instant::now();
    for _ in 0..N_SPANS {
        send(template.clone());
    }
    started.elapsed()
}

fn ns_per_span(elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64 / N_SPANS as f64
}

/// Best and median of `ROUNDS` rounds, in ns per span.
fn summary(mut rounds: Vec<Duration>) -> String {
    rounds.sort();
    format!("best {:>6.0} median {:>6.0}", ns_per_span(rounds[0]), ns_per_span(rounds[rounds.len() / 2]))
}

const ROUNDS: usize = 5;

fn main() {
    // Test runners list targets with `--list`; this is not a test.
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    // One worker runs the consumer; the bench's main thread is the producer: two busy threads
    // for the machine's two cores.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let template = template_span();

    // Building the row alone (what the caller pays before `write_span`).
    let mut build_only = Vec::new();
    for _ in 0..ROUNDS {
        let mut sink: Vec<SpanRow> = Vec::with_capacity(CHUNK);
        let mut total = Duration::ZERO;
        for _ in 0..N_SPANS / CHUNK {
            let started = Instant::now();
            for _ in 0..CHUNK {
                sink.push(black_box(template.clone()));
            }
            total += started.elapsed();
            sink.clear();
        }
        build_only.push(total);
    }

    // Baseline: the same rows into a plain bounded channel drained by a task that drops them
    // in batches, as the writer does.
    let (baseline_enqueue, baseline_build, baseline_full) = runtime.block_on(async {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<SpanRow>(100_000);
        let drain = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(1000);
            while receiver.recv_many(&mut batch, 256).await > 0 {
                if batch.len() >= 1000 {
                    black_box(&batch);
                    batch.clear();
                }
            }
        });
        let mut full = 0u64;
        let (mut enqueue, mut build) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            enqueue.push(time_sends(&template, |row| {
                if let Err(error) = sender.try_send(row) {
                    full += 1;
                    black_box(error);
                }
            }));
            build.push(time_build_and_send(&template, |row| {
                if let Err(error) = sender.try_send(row) {
                    full += 1;
                    black_box(error);
                }
            }));
        }
        drop(sender);
        drain.await.unwrap();
        (enqueue, build, full)
    });

    let (writer_enqueue, writer_build, stats) = runtime.block_on(async {
        let config = WriterConfig::new(spool_dir.path());
        let writer = TelemetryWriter::start(Arc::new(NoopBackend), config).await.unwrap();
        let (mut enqueue, mut build) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            enqueue.push(time_sends(&template, |row| writer.write_span(row)));
            build.push(time_build_and_send(&template, |row| writer.write_span(row)));
        }
        writer.flush().await;
        let stats = writer.stats();
        writer.shutdown().await;
        (enqueue, build, stats)
    });

    println!("write_span: {N_SPANS} spans per round, {ROUNDS} rounds, no-op backend, ns per span");
    println!("  build row only (clone of a 12-attribute span)    {}", summary(build_only));
    println!(
        "  enqueue only (rows pre-built)   writer   {}   baseline mpsc {}",
        summary(writer_enqueue),
        summary(baseline_enqueue)
    );
    println!(
        "  build row + enqueue             writer   {}   baseline mpsc {}",
        summary(writer_build),
        summary(baseline_build)
    );
    println!(
        "  writer: written {} spooled {} dropped {}; baseline: {} sends found the channel full",
        stats.written_rows, stats.spooled_rows, stats.dropped_rows, baseline_full
    );
}
