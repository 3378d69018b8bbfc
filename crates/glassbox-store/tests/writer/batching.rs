//! Batches are cut by size and by age, spans and usage separately, and `flush` waits for them.

use std::time::Duration;

use glassbox_store::writer::{TelemetryWriter, WriterConfig, WriterStats};

use crate::support::{FakeBackend, config, ids, settle, span, usage};

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_at_once_the_rest_waits_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    for n in 0..25 {
        writer.write_span(span(n));
    }
    settle(1).await;
    let sizes: Vec<usize> = backend.calls().iter().map(|call| call.rows).collect();
    assert_eq!(sizes, [10, 10], "two full batches go at once; five rows wait");
    assert_eq!(writer.stats().queued_rows, 5);

    // The remainder goes when its oldest row is a flush interval (1 s) old, not before.
    settle(990).await;
    assert_eq!(backend.calls().len(), 2);
    settle(20).await;
    let sizes: Vec<usize> = backend.calls().iter().map(|call| call.rows).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(backend.span_ids(), ids(0..25));

    let stats = writer.stats();
    assert_eq!(stats, WriterStats { written_rows: 25, ..WriterStats::default() });
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn batching_by_time_alone() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let config = WriterConfig { batch_rows: Some(1000), flush_interval: Duration::from_millis(250), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    writer.write_span(span(1));
    settle(100).await;
    writer.write_span(span(2));
    settle(100).await;
    assert!(backend.calls().is_empty(), "the batch is younger than the flush interval");
    settle(60).await;
    assert_eq!(backend.calls().len(), 1);
    assert_eq!(backend.span_ids(), ids(1..3));

    // A new batch starts its own clock.
    writer.write_span(span(3));
    settle(249).await;
    assert_eq!(backend.calls().len(), 1);
    settle(2).await;
    assert_eq!(backend.calls().len(), 2);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn spans_and_usage_are_separate_batches_with_separate_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    for n in 0..7 {
        writer.write_span(span(n));
        writer.write_usage(usage(n));
    }
    for n in 7..10 {
        writer.write_usage(usage(n));
    }
    settle(1).await;
    // Ten usage rows make a full batch; seven spans wait.
    let calls = backend.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].kind, calls[0].rows), ("usage", 10));

    writer.flush().await;
    let calls = backend.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[1].kind, calls[1].rows), ("spans", 7));
    assert_ne!(calls[0].token, calls[1].token);
    assert_eq!(backend.usage_ids(), ids(0..10));
    assert_eq!(backend.span_ids(), ids(0..7));
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn flush_returns_once_everything_before_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().delay = Duration::from_millis(300);
    let config = WriterConfig { flush_interval: Duration::from_secs(3600), ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    for n in 0..33 {
        writer.write_span(span(n));
    }
    writer.write_usage(usage(1));
    let started = tokio::time::Instant::now();
    writer.flush().await;
    assert_eq!(backend.span_ids(), ids(0..33));
    assert_eq!(backend.usage_ids(), ids(1..2));
    // Five slow batches, one after another.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let stats = writer.stats();
    assert_eq!((stats.queued_rows, stats.written_rows, stats.spooled_rows), (0, 34, 0));

    // Nothing queued: returns at once.
    let started = tokio::time::Instant::now();
    writer.flush().await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();
    let other = writer.clone();
    let from_task = tokio::spawn({
        let writer = writer.clone();
        async move {
            for n in 100..150 {
                writer.write_span(span(n));
            }
        }
    });
    for n in 0..50 {
        other.write_span(span(n));
    }
    from_task.await.unwrap();
    writer.flush().await;
    let mut expected = ids(0..50);
    expected.extend(ids(100..150));
    expected.sort();
    assert_eq!(backend.span_ids(), expected);
    assert_eq!(other.stats().written_rows, 100);
    other.shutdown().await;
}

/// Without a batch size of its own, the writer cuts batches at the store's
/// (`Backend::batch_rows`: 1,000 for this fake, the trait's default).
#[tokio::test(start_paused = true)]
async fn an_unset_batch_size_is_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    let config = WriterConfig { batch_rows: None, ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    for n in 0..1005 {
        writer.write_span(span(n));
    }
    settle(1).await;
    let sizes: Vec<usize> = backend.calls().iter().map(|call| call.rows).collect();
    assert_eq!(sizes, [1000], "a full batch of the store's size goes at once; five rows wait");
    writer.shutdown().await;
}
