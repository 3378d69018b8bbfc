//! Recovery of the span journal a killed process left (`span_journal::recover`), against a real
//! SQLite store: each span and usage row it holds is written back once unless the store has it
//! already or a spooled batch holds it, and every usage row written back is told to the
//! budgets' observer; then the segment is deleted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glassbox_server::span_journal;
use glassbox_store::spool::{BatchRows, Spool};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use glassbox_store::{Backend, SpanRow, TraceReader, UsageRow};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn span(span_id: &str) -> SpanRow {
    SpanRow {
        timestamp_ns: 1_790_000_000_000_000_000,
        trace_id: TRACE.into(),
        span_id: span_id.into(),
        span_name: format!("chat {span_id}"),
        span_kind: "Client".into(),
        service_name: "glassbox".into(),
        duration_ns: 1_000,
        ..SpanRow::default()
    }
}

fn usage(span_id: &str) -> UsageRow {
    UsageRow {
        timestamp_ns: 1_790_000_000_000_000_000,
        trace_id: TRACE.into(),
        span_id: span_id.into(),
        tenant: "acme".into(),
        api_key_id: "key_1".into(),
        model: "gpt-4o-mini".into(),
        input_tokens: 10,
        output_tokens: 2,
        status: "ok".into(),
        ..UsageRow::default()
    }
}

#[tokio::test]
async fn recovery_writes_back_each_missing_row_once_and_tells_the_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.unwrap());
    backend.migrate().await.unwrap();
    // Stored before the kill: span and usage row 1.
    backend.insert_spans(&[span("0000000000000001")], "stored").await.unwrap();
    backend.insert_usage(&[usage("0000000000000001")], "stored").await.unwrap();
    // Spooled before the kill (the spool the recovery checks): span and usage row 2.
    let spooled = dir.path().join("spooled");
    let spool = Spool::open(&spooled, u64::MAX).unwrap();
    spool.write("spans-token", &BatchRows::Spans(vec![span("0000000000000002")])).unwrap();
    spool.write("usage-token", &BatchRows::Usage(vec![usage("0000000000000002")])).unwrap();
    // The killed process's journal: rows 1 to 3 of each kind, as requests write them.
    let journal_dir = dir.path().join("journal");
    let (journal, _) = span_journal::open(&journal_dir).unwrap();
    for n in 1..=3 {
        let id = format!("{n:016x}");
        let mut lines = Vec::new();
        span_journal::encode_into(&span(&id), &mut lines);
        span_journal::encode_usage_into(&usage(&id), &mut lines);
        journal.append(&lines);
    }
    drop(journal);
    let (_next, leftover) = span_journal::open(&journal_dir).unwrap();
    assert_eq!(leftover.len(), 1, "the killed process's segment: {leftover:?}");

    let mut config = WriterConfig::new(dir.path().join("writer-spool"));
    config.flush_interval = Duration::from_millis(20);
    let writer = TelemetryWriter::start(Arc::clone(&backend) as Arc<dyn Backend>, config).await.unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let observer: glassbox_server::telemetry::UsageObserver = {
        let heard = Arc::clone(&heard);
        Arc::new(move |row: &UsageRow| heard.lock().unwrap().push(row.span_id.clone()))
    };
    let reader = Arc::clone(&backend) as Arc<dyn TraceReader>;
    span_journal::recover(leftover.clone(), spooled, Arc::clone(&reader), writer.clone(), Some(observer)).await;
    writer.flush().await;

    let mut spans: Vec<String> = reader.trace_spans(TRACE).await.unwrap().into_iter().map(|row| row.span_id).collect();
    spans.sort();
    let kept = "the stored span kept, the spooled one left to the spool";
    assert_eq!(spans, ["0000000000000001", "0000000000000003"], "{kept}");
    let mut usage_ids: Vec<String> =
        reader.trace_usage(TRACE).await.unwrap().into_iter().map(|row| row.span_id).collect();
    usage_ids.sort();
    assert_eq!(usage_ids, ["0000000000000001", "0000000000000003"]);
    assert_eq!(*heard.lock().unwrap(), ["0000000000000003"], "the budgets hear the usage row written back, once");
    assert!(!leftover[0].exists(), "the recovered segment is deleted");
    writer.shutdown().await;
}
