//! Shutdown delivers what it can, spools the rest, stops the tasks, and is idempotent.

use std::time::Duration;

use glassbox_store::writer::{TelemetryWriter, WriterConfig};

use crate::support::{FakeBackend, config, ids, settle, span, spool_files, usage};

#[tokio::test(start_paused = true)]
async fn shutdown_delivers_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let config = WriterConfig { batch_rows: Some(1000), flush_interval: Duration::from_secs(3600), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    for n in 0..2500 {
        writer.write_span(span(n));
    }
    for n in 0..10 {
        writer.write_usage(usage(n));
    }
    writer.shutdown().await;
    assert_eq!(backend.span_ids(), ids(0..2500));
    assert_eq!(backend.usage_ids(), ids(0..10));
    let mut sizes: Vec<usize> = backend.calls().iter().map(|call| call.rows).collect();
    sizes.sort();
    assert_eq!(sizes, [10, 500, 1000, 1000]);
    let stats = writer.stats();
    assert_eq!((stats.queued_rows, stats.written_rows, stats.spooled_rows, stats.dropped_rows), (0, 2510, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_spools_what_the_store_does_not_take_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().delay = Duration::from_secs(3600);
    let config = WriterConfig { flush_interval: Duration::from_secs(3600), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    for n in 0..35 {
        writer.write_span(span(n));
    }
    let started = tokio::time::Instant::now();
    writer.shutdown().await;
    // The hanging first attempt gets 2 s more, then is abandoned; the other batches get one 2 s
    // attempt each.
    assert!(started.elapsed() <= Duration::from_secs(4 * 2 + 1), "{:?}", started.elapsed());
    let stats = writer.stats();
    assert_eq!((stats.queued_rows, stats.written_rows, stats.spooled_rows, stats.dropped_rows), (0, 0, 35, 0));
    assert_eq!(spool_files(dir.path()).len(), 4);
    // At most one attempt per batch.
    assert!(backend.calls().len() <= 4, "{:?}", backend.calls());
}

/// A batch whose insert is under way when shutdown starts is not abandoned at once: the store
/// was about to take it, and a spooled batch waits for the next start to reach the store.
#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_insert_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().delay = Duration::from_millis(500);
    let config = WriterConfig { flush_interval: Duration::from_millis(50), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    writer.write_usage(usage(1));
    while backend.calls().is_empty() {
        settle(10).await;
    }
    let started = tokio::time::Instant::now();
    writer.shutdown().await;
    assert!(started.elapsed() <= Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!(backend.usage_ids(), ids(1..2));
    let stats = writer.stats();
    assert_eq!((stats.written_rows, stats.spooled_rows, stats.dropped_rows), (1, 0, 0));
    assert_eq!(backend.calls().len(), 1, "one attempt: {:?}", backend.calls());
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_the_store_down_spools_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.set_down(true);
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();
    for n in 0..10 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    let calls = backend.calls().len();
    for n in 10..40 {
        writer.write_span(span(n));
    }
    let started = tokio::time::Instant::now();
    writer.shutdown().await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(backend.calls().len(), calls, "known down: no attempts");
    assert_eq!(writer.stats().spooled_rows, 40);
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_idempotent_and_later_rows_are_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();
    writer.write_span(span(1));
    let other = writer.clone();
    tokio::join!(writer.shutdown(), other.shutdown());
    writer.shutdown().await;
    assert_eq!(backend.span_ids(), ids(1..2));

    writer.write_span(span(2));
    writer.write_usage(usage(3));
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!((stats.written_rows, stats.dropped_rows, stats.queued_rows), (1, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_still_drains_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let config = WriterConfig { flush_interval: Duration::from_secs(3600), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    for n in 0..5 {
        writer.write_span(span(n));
    }
    drop(writer);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(backend.span_ids(), ids(0..5));
}
