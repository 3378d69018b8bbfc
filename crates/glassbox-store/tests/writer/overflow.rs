//! A full queue spills to the spool instead of blocking or dropping; rows are dropped only when
//! the spool is at its limit, and then counted.

use std::time::Duration;

use glassbox_store::writer::{TelemetryWriter, WriterConfig};

use crate::support::{FakeBackend, config, ids, settle, span, spool_files, usage};

#[tokio::test(start_paused = true)]
async fn a_full_queue_spills_to_the_spool_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let config = WriterConfig { max_queued_rows: 10, batch_rows: Some(5), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    // Nothing else runs between these calls (one thread, no await): the queue takes ten.
    for n in 0..100 {
        writer.write_span(span(n));
    }
    for n in 0..7 {
        writer.write_usage(usage(n));
    }
    assert_eq!(writer.stats().queued_rows, 107, "accepted, none lost");
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!(stats.queued_rows, 0);
    assert_eq!(stats.dropped_rows, 0);
    assert_eq!(stats.written_rows, 10);
    assert_eq!(stats.spooled_rows, 97);
    assert!(stats.spool_files >= 97 / 5);

    // The spilled rows reach the store by replay (every 5 s).
    settle(6_000).await;
    assert_eq!(backend.span_ids(), ids(0..100));
    assert_eq!(backend.usage_ids(), ids(0..7));
    assert_eq!(writer.stats().replayed_rows, 97);
    assert!(spool_files(dir.path()).is_empty());
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn overflow_is_spilled_in_the_background_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().delay = Duration::from_secs(3600);
    let config = WriterConfig { max_queued_rows: 10, batch_rows: Some(5), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    for n in 0..50 {
        writer.write_span(span(n));
    }
    // The store hangs on the first batch; the spiller still runs.
    settle(1_100).await;
    let stats = writer.stats();
    assert_eq!(stats.spooled_rows, 40);
    assert_eq!(stats.dropped_rows, 0);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rows_are_dropped_only_when_the_spool_is_full_and_then_counted() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.set_down(true);
    let config = WriterConfig { spool_max_bytes: 8 * 1024, ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    for n in 0..200 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!(stats.queued_rows, 0);
    assert_eq!(stats.written_rows, 0);
    assert!(stats.spooled_rows > 0 && stats.dropped_rows > 0, "{stats:?}");
    assert_eq!(stats.spooled_rows + stats.dropped_rows, 200, "every row accounted for");
    assert!(stats.spool_bytes <= 8 * 1024);
    let on_disk: u64 =
        spool_files(dir.path()).iter().map(|name| std::fs::metadata(dir.path().join(name)).unwrap().len()).sum();
    assert_eq!(on_disk, stats.spool_bytes);

    // What was spooled arrives; what was dropped does not come back.
    backend.set_down(false);
    settle(5_000).await;
    assert_eq!(backend.span_ids().len() as u64, stats.spooled_rows);
    assert_eq!(writer.stats().replayed_rows, stats.spooled_rows);
    assert_eq!(writer.stats().spool_bytes, 0);

    // With room again, nothing more is dropped.
    backend.set_down(true);
    for n in 1000..1010 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    assert_eq!(writer.stats().dropped_rows, stats.dropped_rows);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_with_a_full_spool_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let config = WriterConfig { max_queued_rows: 10, spool_max_bytes: 2 * 1024, ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    for n in 0..100 {
        writer.write_span(span(n));
    }
    let stats = writer.stats();
    assert!(stats.dropped_rows > 50, "{stats:?}");
    assert_eq!(stats.queued_rows + stats.dropped_rows, 100);
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!(stats.written_rows + stats.spooled_rows + stats.dropped_rows, 100);
    assert_eq!(stats.written_rows, 10);
    writer.shutdown().await;
}


#[tokio::test(start_paused = true)]
async fn losses_are_logged_at_error_level_but_not_once_per_row() {
    let logs = glassbox_testkit::CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.writer())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.set_down(true);
    let config = WriterConfig { spool_max_bytes: 16 * 1024, ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    for n in 0..300 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    let stats = writer.stats();
    assert!(stats.spooled_rows > 0 && stats.dropped_rows >= 200, "{stats:?}");

    let lost: Vec<String> = logs.lines().into_iter().filter(|line| line.contains("TELEMETRY LOST")).collect();
    // Many batches were lost within one LOSS_LOG_INTERVAL: one line says so, with the count.
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert!(lost[0].contains("ERROR"), "{}", lost[0]);
    assert!(lost[0].contains("spool is full"), "the cause is in the line: {}", lost[0]);
    assert!(lost[0].contains("total_dropped_rows=10 "), "{}", lost[0]);

    // The losses folded into that interval are still said, at the latest at shutdown.
    writer.shutdown().await;
    let lost: Vec<String> = logs.lines().into_iter().filter(|line| line.contains("TELEMETRY LOST")).collect();
    assert_eq!(lost.len(), 2, "{lost:#?}");
    let rest = stats.dropped_rows - 10;
    assert!(lost[1].contains(&format!("rows_since_last_log={rest} ")), "{}", lost[1]);
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_bounded_in_bytes_as_well_as_rows() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    // Rows with a captured prompt of 100 kB each: a 1 MiB queue holds about ten of them,
    // however many rows it could count.
    let config = WriterConfig { max_queued_rows: 100_000, max_queued_bytes: 1 << 20, batch_rows: Some(5), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    let prompt = "x".repeat(100_000);
    for n in 0..40 {
        let mut row = span(n);
        row.span_attributes.push(("gen_ai.input.messages".into(), prompt.as_str().into()));
        writer.write_span(row);
    }
    assert_eq!(writer.stats().queued_rows, 40, "accepted, none lost");
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!(stats.dropped_rows, 0);
    assert_eq!(stats.written_rows, 10, "the rows that fit in 1 MiB went straight to the store");
    assert_eq!(stats.spooled_rows, 30, "the rest waited in the spool");

    settle(6_000).await;
    assert_eq!(backend.span_ids(), ids(0..40));
    assert_eq!(writer.stats().replayed_rows, 30);
    writer.shutdown().await;
}

/// A span carrying a captured prompt of about 100 kB.
fn big_span(n: u64) -> glassbox_store::SpanRow {
    let mut row = span(n);
    row.span_attributes.push(("gen_ai.input.messages".into(), "x".repeat(100_000).into()));
    row
}

#[tokio::test(start_paused = true)]
async fn admit_holds_intake_while_the_queue_is_nearly_full_and_never_past_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    // Each insert takes 2 s: the batcher is busy while rows pile up in the queue.
    backend.state().delay = Duration::from_secs(2);
    let config = WriterConfig { max_queued_bytes: 1 << 20, batch_rows: Some(5), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    let started = tokio::time::Instant::now();
    writer.admit(Duration::from_secs(60)).await;
    assert_eq!(started.elapsed(), Duration::ZERO, "an empty queue admits at once");

    // Five rows start an insert; the next nine (about 0.9 MiB, over three quarters of the
    // bound) wait in the queue behind it.
    for n in 0..5 {
        writer.write_span(span(n));
    }
    tokio::task::yield_now().await;
    for n in 5..14 {
        writer.write_span(big_span(n));
    }
    let started = tokio::time::Instant::now();
    writer.admit(Duration::from_millis(250)).await;
    assert_eq!(started.elapsed(), Duration::from_millis(250), "never waits past max_wait");

    let started = tokio::time::Instant::now();
    writer.admit(Duration::from_secs(60)).await;
    let waited = started.elapsed();
    assert!(waited > Duration::ZERO && waited <= Duration::from_secs(2), "admitted once the batcher made room: {waited:?}");

    writer.flush().await;
    let stats = writer.stats();
    assert_eq!((stats.written_rows, stats.spooled_rows, stats.dropped_rows), (14, 0, 0), "{stats:?}");
    writer.shutdown().await;
}
