//! Retries with backoff, under one deduplication token that survives retries and the spool;
//! rejected batches are spooled, not hammered.

use std::time::Duration;

use glassbox_store::writer::{TelemetryWriter, WriterConfig};

use crate::support::{FakeBackend, config, ids, settle, span, spool_files, spool_tokens};

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_the_same_token() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().fail_next = 2;
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    let started = tokio::time::Instant::now();
    for n in 0..10 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    let calls = backend.calls();
    assert_eq!(calls.len(), 3, "two failures, then success");
    assert!(calls.iter().all(|call| call.token == calls[0].token), "{calls:?}");
    assert_eq!(backend.span_ids(), ids(0..10));
    // Backoff: about 200 ms, then about 400 ms (each with jitter down to half).
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited <= Duration::from_millis(600), "{waited:?}");
    let stats = writer.stats();
    assert_eq!((stats.written_rows, stats.spooled_rows, stats.dropped_rows), (10, 0, 0));
    assert!(spool_files(dir.path()).is_empty());
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_stored_but_reported_failed_is_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().commit_then_fail_next = 1;
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    for n in 0..10 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    let calls = backend.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].token, calls[1].token, "the retry reuses the token");
    assert_eq!(backend.span_ids(), ids(0..10), "each row once");
    assert_eq!(backend.committed().len(), 1);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded_then_the_batch_is_spooled_under_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().fail_next = 100;
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    for n in 0..10 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    let calls = backend.calls();
    assert_eq!(calls.len(), 4, "one attempt and retry_attempts (3) retries");
    assert_eq!(spool_tokens(dir.path()), vec![calls[0].token.clone()]);
    let stats = writer.stats();
    assert_eq!((stats.written_rows, stats.spooled_rows, stats.spool_files), (0, 10, 1));

    // The store is now taken as down: the next batch goes straight to the spool.
    for n in 10..20 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    assert_eq!(backend.calls().len(), 4);
    assert_eq!(writer.stats().spool_files, 2);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn slow_inserts_time_out_and_count_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().delay = Duration::from_secs(60);
    let config = WriterConfig { insert_timeout: Duration::from_secs(1), retry_attempts: 1, ..config(dir.path()) };
    let writer = TelemetryWriter::start(backend.clone(), config).await.unwrap();

    for n in 0..10 {
        writer.write_span(span(n));
    }
    let started = tokio::time::Instant::now();
    writer.flush().await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(backend.calls().len(), 2);
    assert_eq!(writer.stats().spooled_rows, 10);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_batch_is_spooled_and_replayed_with_backoff_not_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.state().reject = true;
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    for n in 0..10 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    assert_eq!(backend.calls().len(), 1, "a rejection is not retried");
    assert_eq!(writer.stats().spooled_rows, 10);
    let token = backend.calls()[0].token.clone();
    assert_eq!(spool_tokens(dir.path()), vec![token.clone()]);

    // Ten minutes at a 5 s replay interval: a loop would try 120 times; backoff a handful.
    settle(600_000).await;
    let attempts = backend.calls().iter().filter(|call| call.token == token).count();
    assert!((3..=8).contains(&attempts), "{attempts} attempts");
    assert!(backend.span_ids().is_empty());
    assert_eq!(spool_tokens(dir.path()), vec![token.clone()], "kept, not deleted");
    assert_eq!(writer.stats().dropped_rows, 0);

    // Once the store takes it (say, after a migration), it replays under its token.
    backend.state().reject = false;
    settle(3_600_000).await;
    assert_eq!(backend.span_ids(), ids(0..10));
    assert_eq!(backend.committed(), vec![token]);
    assert!(spool_files(dir.path()).is_empty());
    assert_eq!(writer.stats().replayed_rows, 10);
    writer.shutdown().await;
}
