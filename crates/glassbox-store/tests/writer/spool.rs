//! Outages go to the spool; the spool replays on recovery and at start, each batch exactly once
//! under its original token; corrupt files are set aside; a killed process loses nothing it had
//! spooled.

use std::time::Duration;

use glassbox_store::spool::{BatchRows, Spool};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};

use crate::support::{FakeBackend, config, ids, settle, span, spool_files, spool_tokens, usage};

#[tokio::test(start_paused = true)]
async fn an_outage_spools_and_recovery_replays_each_batch_once_under_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.set_down(true);
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();

    for n in 0..25 {
        writer.write_span(span(n));
    }
    writer.write_usage(usage(7));
    writer.flush().await;
    let failed_token = backend.calls()[0].token.clone();
    assert_eq!(backend.calls().len(), 4, "only the first batch waits out the retries");
    let spooled = spool_tokens(dir.path());
    assert_eq!(spooled.len(), 4, "10 + 10 + 5 spans, 1 usage");
    assert_eq!(spooled[0], failed_token, "the spooled batch keeps the token of its attempts");
    let stats = writer.stats();
    assert_eq!((stats.written_rows, stats.spooled_rows, stats.spool_files, stats.queued_rows), (0, 26, 4, 0));
    assert!(stats.spool_bytes > 0);

    // Still down at the next replay tick: nothing moves.
    settle(5_000).await;
    assert_eq!(spool_files(dir.path()).len(), 4);

    backend.set_down(false);
    settle(5_000).await;
    assert_eq!(backend.span_ids(), ids(0..25));
    assert_eq!(backend.usage_ids(), ids(7..8));
    assert_eq!(backend.committed(), spooled, "replayed in creation order, under the original tokens");
    let stats = writer.stats();
    assert_eq!((stats.replayed_rows, stats.spool_files, stats.spool_bytes, stats.dropped_rows), (26, 0, 0, 0));
    assert!(spool_files(dir.path()).is_empty());

    // Back to normal: new rows go straight to the store.
    for n in 100..110 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    assert_eq!(writer.stats().written_rows, 10);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_replay_stored_but_reported_failed_is_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new();
    backend.set_down(true);
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();
    for n in 0..10 {
        writer.write_span(span(n));
    }
    writer.flush().await;
    {
        let mut state = backend.state();
        state.down = false;
        state.commit_then_fail_next = 1;
    }
    settle(5_000).await;
    assert_eq!(spool_files(dir.path()).len(), 1, "the client saw a failure: the file stays");
    settle(5_000).await;
    assert!(spool_files(dir.path()).is_empty());
    assert_eq!(backend.span_ids(), ids(0..10), "each row once");
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_spool_left_by_an_earlier_writer_replays_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let down = FakeBackend::new();
    down.set_down(true);
    let first = TelemetryWriter::start(down.clone(), config(dir.path())).await.unwrap();
    for n in 0..30 {
        first.write_span(span(n));
        first.write_usage(usage(n));
    }
    first.shutdown().await;
    let tokens = spool_tokens(dir.path());
    assert_eq!(tokens.len(), 6);
    assert!(down.span_ids().is_empty());

    let backend = FakeBackend::new();
    let config = WriterConfig { replay_interval: Duration::from_secs(3600), ..config(dir.path()) };
    let second = TelemetryWriter::start(backend.clone(), config).await.unwrap();
    assert_eq!(second.stats().spool_files, 6, "counted at open");
    settle(1).await;
    assert_eq!(backend.span_ids(), ids(0..30));
    assert_eq!(backend.usage_ids(), ids(0..30));
    assert_eq!(backend.committed(), tokens);
    let stats = second.stats();
    assert_eq!((stats.replayed_rows, stats.spool_files), (60, 0));
    second.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_spool_file_is_set_aside_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    let down = FakeBackend::new();
    down.set_down(true);
    let first = TelemetryWriter::start(down.clone(), config(dir.path())).await.unwrap();
    for n in 0..20 {
        first.write_span(span(n));
    }
    first.shutdown().await;
    // Sorts first, so replay meets it before the good files.
    let corrupt = dir.path().join("spans-00000000000000000000000000000000.jsonl");
    std::fs::write(&corrupt, "{\"glassbox_spool\":1,\"kind\":\"spans\",\"token\":\"00000000000000000000000000000000\",\"rows\":2}\n{\"not\":\"a span\"}\n").unwrap();

    let backend = FakeBackend::new();
    let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();
    settle(1).await;
    assert_eq!(backend.span_ids(), ids(0..20));
    assert!(spool_files(dir.path()).is_empty());
    assert!(!corrupt.exists());
    let aside = dir.path().join("spans-00000000000000000000000000000000.jsonl.corrupt");
    assert!(aside.exists(), "set aside, never deleted");
    let stats = writer.stats();
    assert_eq!((stats.replayed_rows, stats.spool_files, stats.dropped_rows), (20, 0, 0));

    // Not retried at the next pass.
    let calls = backend.calls().len();
    settle(10_000).await;
    assert_eq!(backend.calls().len(), calls);
    writer.shutdown().await;
}

/// A process killed mid-write: the runtime is dropped with rows in flight and a spool write
/// cut short. Every batch that made it to the spool replays exactly once in the next process;
/// the cut-short file is set aside, never replayed.
#[test]
fn a_killed_writer_loses_nothing_it_had_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let down = FakeBackend::new();
    down.set_down(true);

    let first_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    first_runtime.block_on(async {
        let config = WriterConfig {
            flush_interval: Duration::from_millis(5),
            retry_base: Duration::from_millis(1),
            ..config(dir.path())
        };
        let writer = TelemetryWriter::start(down.clone(), config).await.unwrap();
        for n in 0..200 {
            writer.write_span(span(n));
        }
        writer.flush().await;
        // Keep writing from a task while the "process" dies.
        tokio::spawn(async move {
            for n in 200..100_000 {
                writer.write_span(span(n));
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
    });
    // kill -9, as far as the tasks can tell: dropped wherever they stand.
    first_runtime.shutdown_timeout(Duration::from_secs(5));
    // And a spool write that never finished.
    let partial = dir.path().join(".tmp-spans-ffffffffffffffffffffffffffffffff.jsonl");
    std::fs::write(&partial, "{\"glassbox_spool\":1,\"kind\":\"spans\",\"token\":\"ffffffffffffffffffffffffffffffff\",\"rows\":10}\n{\"timesta").unwrap();

    // What is durably in the spool now.
    let mut spooled_ids = Vec::new();
    let mut spooled_tokens = Vec::new();
    {
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        for entry in spool.list().unwrap() {
            let batch = spool.read(&entry).unwrap();
            spooled_tokens.push(batch.token.clone());
            let BatchRows::Spans(rows) = batch.rows else { panic!("only spans were written") };
            spooled_ids.extend(rows.into_iter().map(|row| row.span_id));
        }
    }
    spooled_ids.sort();
    assert!(spooled_ids.len() >= 200, "at least the flushed rows: {}", spooled_ids.len());
    assert!(spooled_ids[..200] == ids(0..200)[..], "the flushed rows are all there");
    assert!(dir.path().join("spans-ffffffffffffffffffffffffffffffff.jsonl.partial").exists());

    let backend = FakeBackend::new();
    let second_runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    second_runtime.block_on(async {
        let writer = TelemetryWriter::start(backend.clone(), config(dir.path())).await.unwrap();
        for _ in 0..100 {
            if writer.stats().spool_files == 0 {
                break;
            }
            settle(100).await;
        }
        assert_eq!(writer.stats().spool_files, 0);
        assert_eq!(writer.stats().replayed_rows, spooled_ids.len() as u64);
        writer.shutdown().await;
    });
    assert_eq!(backend.span_ids(), spooled_ids, "every spooled row, each exactly once");
    let mut committed = backend.committed();
    committed.sort();
    spooled_tokens.sort();
    assert_eq!(committed, spooled_tokens);
}
