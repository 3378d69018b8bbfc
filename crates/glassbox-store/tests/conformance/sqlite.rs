//! The shared scenarios against SQLite (a fresh temp file per test, and the in-memory
//! variant), then what only SQLite has: migration locking between processes, an edited
//! migration, reopening a file, WAL mode, concurrent readers and writers, and deduplication
//! that holds whatever the token.

use std::path::Path;
use std::sync::Arc;

use glassbox_store::sqlite::{MIGRATIONS, SqliteBackend, SqliteSettings, WriterPolicy, WriterPriority};
use glassbox_store::{Backend, RunStore, StoreError, TraceFilter, TraceReader, UsageBy};

use crate::suite::{self, Dataset, Subject, assert_summaries_eq, everything, page_of};

/// A new database file in a temp dir of its own, below directories that do not exist yet.
async fn fresh_sqlite() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = open(&dir.path().join("nested").join(".glassbox").join("glassbox.db")).await;
    Subject::new(Arc::new(backend), dir)
}

async fn open(path: &Path) -> SqliteBackend {
    SqliteBackend::open(SqliteSettings { path: path.to_owned() }).await.expect("open sqlite")
}

conformance_tests!(fresh_sqlite().await);

mod runs {
    use super::*;
    use glassbox_store::RunStore;

    async fn fresh_runs() -> (Arc<dyn Backend>, Arc<dyn RunStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = Arc::new(open(&dir.path().join("glassbox.db")).await);
        (backend.clone(), backend, dir)
    }

    runs_scenarios!(fresh_runs().await);
}

mod in_memory {
    use super::*;

    async fn fresh_in_memory() -> Subject {
        Subject::new(Arc::new(SqliteBackend::open_in_memory().await.expect("open in memory")), ())
    }

    conformance_tests!(fresh_in_memory().await);
}

fn all_versions() -> Vec<u32> {
    MIGRATIONS.iter().map(|migration| migration.version).collect()
}

#[tokio::test]
async fn default_settings_point_into_dot_glassbox() {
    assert_eq!(SqliteSettings::default().path, Path::new(".glassbox").join("glassbox.db"));
}

#[tokio::test]
async fn a_fresh_file_gets_every_migration_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a").join("b").join("glassbox.db");
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, all_versions());
    assert!(report.already_applied.is_empty());
    assert_eq!(backend.name(), "sqlite");

    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let mode: String = raw.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("journal mode");
    assert_eq!(mode, "wal");
    let mut statement =
        raw.prepare("SELECT version, name, checksum, applied_at FROM glassbox_migrations").expect("sql");
    let records: Vec<(u32, String, String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(records.len(), MIGRATIONS.len());
    for ((version, name, checksum, applied_at), migration) in records.iter().zip(MIGRATIONS) {
        assert_eq!(
            (*version, name.as_str(), checksum.clone()),
            (migration.version, migration.name, migration.checksum())
        );
        assert!(applied_at.starts_with("20") && applied_at.ends_with('Z'), "{applied_at}");
    }
}

#[tokio::test]
async fn an_edited_migration_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let backend = open(&path).await;
    backend.migrate().await.expect("migrate");
    // What an edited file looks like from the database: the recorded checksum differs.
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    raw.execute("UPDATE glassbox_migrations SET checksum = ?1 WHERE version = 2", ["0".repeat(64)]).expect("edit");
    match backend.migrate().await {
        Err(StoreError::MigrationEdited { version, name, applied, current }) => {
            assert_eq!((version, name.as_str(), applied), (2, "usage", "0".repeat(64)));
            assert_eq!(current, MIGRATIONS[1].checksum());
        }
        other => panic!("expected MigrationEdited, got {other:?}"),
    }
    let count: i64 = raw.query_row("SELECT count(*) FROM glassbox_migrations", [], |row| row.get(0)).expect("count");
    assert_eq!(count, MIGRATIONS.len() as i64);
}

/// Two servers starting at once on the same file: both succeed, each migration is applied
/// exactly once, and neither sees a half-migrated schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_on_one_file_apply_each_version_once() {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("glassbox.db");
        let (first, second) = tokio::join!(open(&path), open(&path));
        let (a, b) = tokio::join!(first.migrate(), second.migrate());
        let (a, b) = (a.expect("first migrate"), b.expect("second migrate"));
        let mut applied: Vec<u32> = a.applied.iter().chain(&b.applied).copied().collect();
        applied.sort_unstable();
        assert_eq!(applied, all_versions(), "round {round}: {a:?} {b:?}");
        for report in [&a, &b] {
            let mut seen: Vec<u32> = report.applied.iter().chain(&report.already_applied).copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, all_versions(), "round {round}: {report:?}");
        }
        // Both work on the result.
        let dataset = Dataset::standard();
        let backend: Arc<dyn Backend> = Arc::new(first);
        suite::insert(&backend, &dataset, "race").await;
        let page = second.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
        assert_eq!(page.items.len(), dataset.trace_ids().len());
    }
}

#[tokio::test]
async fn reopening_keeps_data_and_migrations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let dataset = Dataset::standard();
    {
        let backend = open(&path).await;
        backend.migrate().await.expect("migrate");
        suite::insert(&(Arc::new(backend) as Arc<dyn Backend>), &dataset, "before-reopen").await;
    }
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate again");
    assert!(report.applied.is_empty());
    assert_eq!(report.already_applied, all_versions());
    let page = backend.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
    assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
    let groups = backend.usage_by(UsageBy::Model, &everything()).await.expect("usage_by");
    assert_eq!(groups, dataset.expected_usage_by(UsageBy::Model, &everything()));
}

/// SQLite deduplicates by key, not only by token: a span or usage row stored once is never
/// stored or counted again, whatever batch or token brings it back.
#[tokio::test]
async fn rows_are_deduplicated_by_key_whatever_the_token() {
    let subject = fresh_sqlite().await;
    suite::migrate(&subject.backend).await;
    let dataset = Dataset::standard();
    suite::insert(&subject.backend, &dataset, "first").await;
    // Again under other tokens, in other batches, with duplicates inside one batch.
    let doubled: Vec<_> = dataset.spans.iter().chain(&dataset.spans).cloned().collect();
    subject.backend.insert_spans(&doubled, "doubled").await.expect("spans");
    let doubled_usage: Vec<_> = dataset.usage.iter().chain(&dataset.usage).cloned().collect();
    subject.backend.insert_usage(&doubled_usage, "doubled").await.expect("usage");
    let stats_once = subject.reader.request_stats(&everything(), 3600).await.expect("request stats");
    // Replayed once more, shuffled into batches that split each trace's spans otherwise: every
    // trace gets groups after its first, none holding a span it has.
    let mut shuffled = dataset.spans.clone();
    suite::Rng::new(7).shuffle(&mut shuffled);
    for (index, batch) in shuffled.chunks(7).enumerate() {
        subject.backend.insert_spans(batch, &format!("regrouped-{index}")).await.expect("spans");
    }
    let page = subject.reader.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
    assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
    let groups = subject.reader.usage_by(UsageBy::Agent, &everything()).await.expect("usage_by");
    assert_eq!(groups, dataset.expected_usage_by(UsageBy::Agent, &everything()));
    for trace_id in dataset.trace_ids() {
        let mut stored: Vec<String> =
            subject.reader.trace_spans(&trace_id).await.expect("trace spans").into_iter().map(|s| s.span_id).collect();
        let mut expected: Vec<String> = dataset.spans_of(&trace_id).into_iter().map(|span| span.span_id).collect();
        stored.sort();
        expected.sort();
        assert_eq!(stored, expected, "trace {trace_id}: each span once");
    }
    let stats = subject.reader.request_stats(&everything(), 3600).await.expect("request stats");
    assert_eq!(stats, stats_once, "the overview counts each request and block once");

    // A fresh store given only the doubled batch counts each span once too.
    let fresh = fresh_sqlite().await;
    suite::migrate(&fresh.backend).await;
    fresh.backend.insert_spans(&doubled, "only-doubled").await.expect("spans");
    let page = fresh.reader.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
    assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
}

/// Writers and readers at the same time, from several tasks and two backends on one file:
/// nothing fails with "database is locked" and every row lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let first = Arc::new(open(&path).await);
    let second = Arc::new(open(&path).await);
    first.migrate().await.expect("migrate");
    let dataset = Dataset::generate(5, 64);
    let trace_ids = dataset.trace_ids();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, trace_id) in trace_ids.iter().enumerate() {
        let writer = if index % 2 == 0 { Arc::clone(&first) } else { Arc::clone(&second) };
        let reader = if index % 2 == 0 { Arc::clone(&second) } else { Arc::clone(&first) };
        let spans = dataset.spans_of(trace_id);
        let usage = dataset.usage_of(trace_id);
        tasks.spawn(async move {
            writer.insert_spans(&spans, &format!("spans-{index}")).await.expect("spans");
            writer.insert_usage(&usage, &format!("usage-{index}")).await.expect("usage");
            reader.list_traces(&TraceFilter::default(), &page_of(10)).await.expect("list");
            reader.usage_by(UsageBy::Tenant, &everything()).await.expect("usage_by");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    let page = first.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
    assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
    let groups = second.usage_by(UsageBy::Day, &everything()).await.expect("usage_by");
    assert_eq!(groups, dataset.expected_usage_by(UsageBy::Day, &everything()));
}

#[tokio::test]
async fn an_unopenable_path_is_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The database path is an existing directory.
    let error = SqliteBackend::open(SqliteSettings { path: dir.path().to_owned() }).await.expect_err("a directory");
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn sqlite_batches_are_250_rows_unless_configured() {
    let backend = SqliteBackend::open_in_memory().await.expect("open");
    assert_eq!(backend.batch_rows(), 250);
}

/// The checkpoint thread beside the write thread, not the write connection (whose own
/// checkpoint waits for 20,000 pages, 80 MB of WAL), copies committed pages into the database
/// file within a few of its 100 ms intervals, and the rows read back.
#[tokio::test]
async fn committed_pages_reach_the_database_file_from_the_checkpoint_thread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let settings = SqliteSettings { path: path.clone() };
    let priority = WriterPriority { nice: 0, policy: WriterPolicy::Normal };
    let backend = SqliteBackend::open_with_priority(settings, priority).await.expect("open sqlite");
    backend.migrate().await.expect("migrate");
    let filler = "x".repeat(4_000);
    let rows: Vec<_> = (0..100_i64)
        .map(|i| {
            let attributes = suite::attrs(&[("filler", filler.as_str())]);
            suite::span(&format!("{i:032x}"), &format!("{i:016x}"), "", "filler", 1_000 + i, 1, attributes)
        })
        .collect();
    backend.insert_spans(&rows, "filler").await.expect("insert");
    let committed = 100 * 4_000;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&path).expect("the database file").len();
        if size >= committed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is {size} bytes 10 s after {committed} bytes of spans were committed: \
             no checkpoint copied them out of the WAL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let stored: i64 = raw.query_row("SELECT count(*) FROM spans", [], |row| row.get(0)).expect("count");
    assert_eq!(stored, 100);
}

#[tokio::test]
async fn writing_before_migrating_is_rejected() {
    let backend = SqliteBackend::open_in_memory().await.expect("open");
    let dataset = Dataset::standard();
    let error = backend.insert_spans(&dataset.spans[..1], "too-early").await.expect_err("no tables yet");
    assert!(matches!(error, StoreError::Rejected { .. }), "{error:?}");
}

/// The insert of a binary from before migration 10 (no `RequestOrBlock` column).
const OLD_INSERT_SPAN: &str = "INSERT INTO spans (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, \
     SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, \
     StatusMessage, Events, Links) \
     VALUES (?1, ?2, ?3, '', '', 'span', ?4, 'glassbox', '{}', 'glassbox', '', ?5, 1000000, 'Unset', '', '[]', '[]')";

/// Migration 10 on a file written under migration 9: the request and block spans already
/// there are marked for the overview's index, the others are not (migration 15 copies the
/// marked ones into `request_spans`), and the overview counts them as before.
#[tokio::test]
async fn migration_10_marks_the_request_and_block_spans_already_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    {
        // The schema of migrations 1 to 9, recorded as applied, and spans in its columns.
        let raw = file_migrated_through(&path, 9);
        let spans = [
            ("a1", "Server", r#"{"glassbox.request":"true","http.response.status_code":"200"}"#),
            ("a2", "Internal", r#"{"gen_ai.operation.name":"invoke_agent"}"#),
            ("b1", "Server", r#"{"glassbox.request":"true","http.response.status_code":"200"}"#),
            ("b2", "Internal", r#"{"glassbox.tripwire.processor":"topic"}"#),
            ("c1", "Client", r#"{"gen_ai.operation.name":"chat"}"#),
        ];
        for (n, (span_id, kind, attributes)) in spans.iter().enumerate() {
            raw.execute(
                OLD_INSERT_SPAN,
                rusqlite::params![1_000_000_000 + n as i64, format!("trace-{}", &span_id[..1]), span_id, kind, attributes],
            )
            .expect("old span");
        }
    }
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, vec![10, 11, 12, 13, 14, 15]);
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let mut statement = raw.prepare("SELECT SpanId FROM request_spans ORDER BY SpanId").expect("sql");
    let marked: Vec<String> =
        statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
    assert_eq!(marked, ["a1", "b1", "b2"]);
    let stats = backend
        .request_stats(&glassbox_store::TimeRange { from_ns: 0, to_ns: 2_000_000_000 }, 3600)
        .await
        .expect("request stats");
    assert_eq!((stats.requests, stats.blocked), (2, 1), "{stats:?}");
}

/// A file with migrations 1 to `through` applied and recorded, as an older binary left it.
fn file_migrated_through(path: &Path, through: u32) -> rusqlite::Connection {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    raw.execute_batch(
        "CREATE TABLE glassbox_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '2026-11-01T00:00:00Z')",
    )
    .expect("migrations table");
    for migration in MIGRATIONS.iter().filter(|migration| migration.version <= through) {
        raw.execute_batch(migration.sql).expect("old migration");
        raw.execute(
            "INSERT INTO glassbox_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
            rusqlite::params![migration.version, migration.name, migration.checksum()],
        )
        .expect("record");
    }
    raw
}

/// Every column of every row of `table`, in the column order of migration 2's and 3's tables.
fn all_rows(raw: &rusqlite::Connection, table: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let columns = match table {
        "usage" => "Timestamp, TraceId, SpanId, Tenant, ApiKeyId, Agent, Workflow, Provider, Model, InputTokens, \
                    OutputTokens, CachedInputTokens, ReasoningTokens, CostNanoUsd, CostUnknown, LatencyNs, \
                    TimeToFirstTokenNs, Status, ErrorType",
        _ => "TraceId, StartNs, EndNs, RootSpanName, RootSpanId, Agent, AgentTimestamp, AgentSpanId, Tenant, \
              TenantTimestamp, TenantSpanId, HasError, SpanCount, InputTokens, OutputTokens, CostNanoUsd",
    };
    rows_of(raw, &format!("SELECT {columns} FROM {table} ORDER BY TraceId"))
}

/// Three trace index rows (traces `0001aa`, `0002bb`, `0003cc`) in the columns of migration 13's
/// table, then `more` (the columns a later migration added, as SQL values).
fn add_old_trace_index_rows(raw: &rusqlite::Connection, more: &str) {
    let sql = format!(
        "INSERT INTO trace_index VALUES (?1, ?2, ?3, 'root', 'root-span', 'agent', 0, '', 'acme', 0, '', 0, 1, 0, 0, \
         0{more})"
    );
    for (n, trace) in ["0001aa", "0002bb", "0003cc"].iter().enumerate() {
        let n = n as i64;
        raw.execute(&sql, rusqlite::params![trace, 1_000_000_000 + n, 1_500_000_000 + n]).expect("old trace index row");
    }
}

/// (trace id, `column`) of every trace index row, by trace id.
fn trace_index_column(raw: &rusqlite::Connection, column: &str) -> Vec<(String, String)> {
    let sql = format!("SELECT TraceId, {column} FROM trace_index ORDER BY TraceId");
    let mut statement = raw.prepare(&sql).expect("sql");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// The ids of the traces `filter` lists (one page of up to 10).
async fn listed(backend: &SqliteBackend, filter: TraceFilter) -> Vec<String> {
    let page = backend.list_traces(&filter, &page_of(10)).await.expect("list");
    page.items.into_iter().map(|trace| trace.trace_id).collect()
}

/// Migration 11 on a file written under migration 10: every column of the usage rows already
/// there is kept (a distinct value in each, so a swapped pair would show), the trace index is
/// untouched, the store reads both back, and usage is keyed by (trace, span): a retry is still
/// ignored, the same span id in another trace is now kept.
#[tokio::test]
async fn migration_11_keeps_the_usage_rows_and_keys_them_by_trace_and_span() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let before = {
        let raw = file_migrated_through(&path, 10);
        for (n, trace) in ["0001aa", "0002bb"].iter().enumerate() {
            let n = n as i64;
            raw.execute(
                "INSERT INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                 ?18, ?19)",
                rusqlite::params![
                    1_000_000_000 + n,
                    trace,
                    format!("span-{n}"),
                    format!("tenant-{n}"),
                    format!("key-{n}"),
                    format!("agent-{n}"),
                    format!("workflow-{n}"),
                    format!("provider-{n}"),
                    format!("model-{n}"),
                    10 + n,
                    20 + n,
                    30 + n,
                    40 + n,
                    1_500 + n,
                    n,
                    3_000_000 + n,
                    4_000 + n,
                    "ok",
                    format!("error-{n}"),
                ],
            )
            .expect("old usage row");
            raw.execute(
                "INSERT INTO trace_index VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                rusqlite::params![
                    trace,
                    1_000_000_000 + n,
                    1_500_000_000 + n,
                    format!("root-name-{n}"),
                    format!("root-{n}"),
                    format!("agent-{n}"),
                    1_100_000_000 + n,
                    format!("agent-span-{n}"),
                    format!("tenant-{n}"),
                    1_200_000_000 + n,
                    format!("tenant-span-{n}"),
                    n,
                    3 + n,
                    10 + n,
                    20 + n,
                    1_500 + n,
                ],
            )
            .expect("old trace index row");
        }
        (all_rows(&raw, "usage"), all_rows(&raw, "trace_index"))
    };
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, vec![11, 12, 13, 14, 15]);

    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    assert_eq!((all_rows(&raw, "usage"), all_rows(&raw, "trace_index")), before);
    let usage = backend.trace_usage("0002bb").await.expect("trace usage");
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!((usage[0].span_id.as_str(), usage[0].input_tokens, usage[0].cost_nano_usd), ("span-1", 11, 1501));
    let page = backend.list_traces(&TraceFilter::default(), &page_of(10)).await.expect("list");
    let listed: Vec<(&str, &str, u64, i64)> = page
        .items
        .iter()
        .map(|trace| (trace.trace_id.as_str(), trace.agent.as_str(), trace.input_tokens, trace.start_ns))
        .collect();
    assert_eq!(listed, [("0002bb", "agent-1", 11, 1_000_000_001), ("0001aa", "agent-0", 10, 1_000_000_000)]);

    let mut statement = raw.prepare("SELECT name FROM pragma_table_info('usage') WHERE pk > 0 ORDER BY pk").expect("sql");
    let key: Vec<String> =
        statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
    assert_eq!(key, ["TraceId", "SpanId"]);
    let mut statement = raw.prepare("SELECT name FROM pragma_index_list('usage') ORDER BY name").expect("sql");
    let indexes: Vec<String> =
        statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
    assert_eq!(indexes, ["sqlite_autoindex_usage_1", "usage_tenant_timestamp", "usage_timestamp"]);
    let insert = "INSERT OR IGNORE INTO usage VALUES (?1, ?2, 'span-0', 'acme', 'key-1', 'support', '', 'openai', \
                  'gpt-4o', 1, 1, 0, 0, 1, 0, 1, 0, 'ok', '')";
    assert_eq!(raw.execute(insert, rusqlite::params![5, "0001aa"]).expect("retry"), 0, "a retry is ignored");
    assert_eq!(raw.execute(insert, rusqlite::params![5, "0003cc"]).expect("other trace"), 1, "another trace keeps it");
}

/// Migration 12 on a file written under migration 11: the time index holds the workflow spans
/// only, already written ones included (migration 15 copies those into `workflow_spans`), and
/// the lookup of a run's traces finds them.
#[tokio::test]
async fn migration_12_indexes_only_the_workflow_spans_by_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    {
        let raw = file_migrated_through(&path, 11);
        let spans = [
            ("w1", "invoke_workflow onboard", r#"{"glassbox.workflow.run_id":"run-a"}"#),
            ("w2", "workflow_step fetch", r#"{"glassbox.workflow.run_id":"run-a"}"#),
            ("a1", "invoke_agent support", r#"{"gen_ai.operation.name":"invoke_agent"}"#),
            ("w3", "invoke_workflowX", r#"{"glassbox.workflow.run_id":"run-a"}"#),
            ("x1", "invoke workflow onboard", r#"{"glassbox.workflow.run_id":"run-a"}"#),
        ];
        for (n, (span_id, name, attributes)) in spans.iter().enumerate() {
            raw.execute(
                "INSERT INTO spans (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, \
                 ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, \
                 StatusMessage, Events, Links) VALUES (?1, ?2, ?3, '', '', ?4, 'Internal', 'glassbox', '{}', \
                 'glassbox', '', ?5, 1000, 'Unset', '', '[]', '[]')",
                rusqlite::params![1_000_000_000 + n as i64, format!("trace-{span_id}"), span_id, name, attributes],
            )
            .expect("old span");
        }
    }
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, vec![12, 13, 14, 15]);

    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    // `_` is escaped: "invoke_workflowX" matches, "invoke workflow onboard" does not.
    let mut statement = raw.prepare("SELECT SpanId FROM workflow_spans ORDER BY SpanId").expect("sql");
    let indexed: Vec<String> =
        statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
    assert_eq!(indexed, ["w1", "w3"]);
    let traces = backend.run_traces(&["run-a".to_owned()], 0).await.expect("run traces");
    let found: Vec<&str> = traces.iter().map(|trace| trace.trace_id.as_str()).collect();
    assert_eq!(found, ["trace-w1", "trace-w3"]);
}

/// Migration 13 on a file written under migration 12: `trace_index` is keyed by TraceId
/// without a rowid, each row carries its trace's models (from `trace_index_models`, which is
/// gone), and the model filter reads them.
#[tokio::test]
async fn migration_13_keys_the_trace_index_and_folds_in_its_models() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let before = {
        let raw = file_migrated_through(&path, 12);
        add_old_trace_index_rows(&raw, "");
        for (trace, model) in [("0001aa", "gpt-4o"), ("0001aa", "claude \"3\""), ("0002bb", "gpt-4o")] {
            raw.execute("INSERT INTO trace_index_models VALUES (?1, ?2)", [trace, model]).expect("old model row");
        }
        all_rows(&raw, "trace_index")
    };
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, vec![13, 14, 15]);

    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    assert_eq!(all_rows(&raw, "trace_index"), before);
    let models = trace_index_column(&raw, "Models");
    let expected = [("0001aa", r#"["claude \"3\"","gpt-4o"]"#), ("0002bb", r#"["gpt-4o"]"#), ("0003cc", "[]")];
    assert_eq!(models, expected.map(|(trace, models)| (trace.to_owned(), models.to_owned())));
    let without_rowid: bool = raw
        .query_row("SELECT wr FROM pragma_table_list WHERE name = 'trace_index'", [], |row| row.get(0))
        .expect("table list");
    assert!(without_rowid, "trace_index is a WITHOUT ROWID table");
    let mut statement = raw.prepare("SELECT name FROM pragma_index_list('trace_index') ORDER BY name").expect("sql");
    let indexes: Vec<String> =
        statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
    assert_eq!(indexes, ["sqlite_autoindex_trace_index_1", "trace_index_start", "trace_index_tenant_start"]);
    let gone: i64 = raw
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'trace_index_models%'", [], |row| row.get(0))
        .expect("schema");
    assert_eq!(gone, 0, "trace_index_models and its index are dropped");

    let by_model = [("gpt-4o", vec!["0002bb", "0001aa"]), ("claude \"3\"", vec!["0001aa"]), ("claude", vec![])];
    for (model, traces) in by_model {
        let found = listed(&backend, TraceFilter { model: Some(model.to_owned()), ..TraceFilter::default() }).await;
        assert_eq!(found, traces, "model {model:?}");
    }
}

/// Migration 14 on a file written under migration 13: each trace's row gets the distinct
/// non-empty API keys of its spans (sorted; `[]` when none has one), its other columns are
/// kept, and the traces list finds a trace under each of its keys.
#[tokio::test]
async fn migration_14_gives_each_trace_the_api_keys_of_its_spans() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let before = {
        let raw = file_migrated_through(&path, 13);
        add_old_trace_index_rows(&raw, ", '[]'");
        let spans = [
            ("0001aa", "a1", r#"{"glassbox.api_key_id":"key_b"}"#),
            ("0001aa", "a2", r#"{"glassbox.api_key_id":"key_a \"quoted\""}"#),
            ("0001aa", "a3", r#"{"glassbox.api_key_id":"key_b","other":"x"}"#),
            ("0002bb", "b1", r#"{"glassbox.api_key_id":""}"#),
            ("0002bb", "b2", r#"{"glassbox.api_key_id":"key_b"}"#),
            ("0003cc", "c1", r#"{"glassbox.tenant":"acme"}"#),
        ];
        for (n, (trace, span_id, attributes)) in spans.iter().enumerate() {
            raw.execute(
                "INSERT INTO spans (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, \
                 ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, \
                 StatusMessage, Events, Links) VALUES (?1, ?2, ?3, '', '', 'span', 'Internal', 'glassbox', '{}', \
                 'glassbox', '', ?4, 1, 'Unset', '', '[]', '[]')",
                rusqlite::params![1_000_000_000 + n as i64, trace, span_id, attributes],
            )
            .expect("old span");
        }
        all_rows(&raw, "trace_index")
    };
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, vec![14, 15]);

    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    assert_eq!(all_rows(&raw, "trace_index"), before);
    let keys = trace_index_column(&raw, "ApiKeys");
    let expected = [("0001aa", r#"["key_a \"quoted\"","key_b"]"#), ("0002bb", r#"["key_b"]"#), ("0003cc", "[]")];
    assert_eq!(keys, expected.map(|(trace, keys)| (trace.to_owned(), keys.to_owned())));

    let by_key = [("key_b", vec!["0002bb", "0001aa"]), ("key_a \"quoted\"", vec!["0001aa"]), ("key", vec![])];
    for (key, traces) in by_key {
        let found = listed(&backend, TraceFilter { api_key_id: Some(key.to_owned()), ..TraceFilter::default() }).await;
        assert_eq!(found, traces, "key {key:?}");
    }
}

/// Migration 15 on a file written under migration 14: each trace's spans move into one group,
/// the `spans` view shows every column of every span as the table held it, the store reads the
/// traces back, and the overview and the run lookup find the request, block and workflow spans.
#[tokio::test]
async fn migration_15_stores_each_traces_spans_as_one_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    const COLUMNS: &str = "Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, \
        ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage, Events, Links";
    let spans = [
        (
            "t1",
            "a1",
            "Server",
            "POST /api/agents/support/generate",
            r#"{"glassbox.request":"true","http.response.status_code":"429","glassbox.tenant":"acme"}"#,
            1,
        ),
        ("t1", "a2", "Internal", "invoke_agent support", r#"{"z":"first","a":"quote \" é 🚀","z":"duplicate"}"#, 0),
        ("t2", "b1", "Internal", "invoke_workflow onboard", r#"{"glassbox.workflow.run_id":"run-a"}"#, 0),
        ("t2", "b2", "Internal", "guardrail", r#"{"glassbox.tripwire.processor":"topic"}"#, 1),
        ("t3", "c1", "Client", "chat o3", r#"{}"#, 0),
    ];
    let before = {
        let raw = file_migrated_through(&path, 14);
        for (n, (trace, span_id, kind, name, attributes, marked)) in spans.iter().enumerate() {
            raw.execute(
                &format!(
                    "INSERT INTO spans ({COLUMNS}, RequestOrBlock) VALUES (?1, ?2, ?3, 'parent', 'x=1', ?4, ?5, \
                     'glassbox', '{{\"service.name\":\"glassbox\"}}', 'scope', '1', ?6, ?7, 'Error', 'bad', \
                     '[{{\"Timestamp\":5,\"Name\":\"e\",\"Attributes\":{{\"k\":\"v\"}}}}]', \
                     '[{{\"TraceId\":\"t\",\"SpanId\":\"s\",\"TraceState\":\"\",\"Attributes\":{{}}}}]', ?8)"
                ),
                rusqlite::params![
                    1_000_000_000 + n as i64,
                    trace,
                    span_id,
                    name,
                    kind,
                    attributes,
                    1_000 + n as i64,
                    marked
                ],
            )
            .expect("old span");
        }
        // A trace of 130 spans: more than a group holds.
        for n in 0..130_i64 {
            raw.execute(
                OLD_INSERT_SPAN,
                rusqlite::params![2_000_000_000 - n, "t4", format!("d{n:03}"), "Internal", "{}"],
            )
            .expect("old span");
        }
        rows_of(&raw, &format!("SELECT {COLUMNS} FROM spans ORDER BY TraceId, SpanId"))
    };
    let backend = open(&path).await;
    let report = backend.migrate().await.expect("migrate");
    assert_eq!(report.applied, vec![15]);

    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    assert_eq!(rows_of(&raw, &format!("SELECT {COLUMNS} FROM spans ORDER BY TraceId, SpanId")), before);
    let groups = rows_of(
        &raw,
        "SELECT TraceId, Part, json_array_length(Spans) FROM span_groups WHERE TraceId != 't4' ORDER BY TraceId",
    );
    let text = |value: &str| rusqlite::types::Value::Text(value.to_owned());
    let integer = rusqlite::types::Value::Integer;
    assert_eq!(
        groups,
        [
            vec![text("t1"), integer(0), integer(2)],
            vec![text("t2"), integer(0), integer(2)],
            vec![text("t3"), integer(0), integer(1)],
        ]
    );
    // The long trace is split in time order, and its span ids are keys: a replay adds nothing.
    assert_eq!(groups_and_keys(&raw, "t4"), (vec![(0, 64), (1, 64), (2, 2)], 130));
    let first: i64 = raw
        .query_row(
            "SELECT json_extract(Spans, '$[0].Timestamp') FROM span_groups WHERE TraceId = 't4' AND Part = 0",
            [],
            |row| row.get(0),
        )
        .expect("first span");
    assert_eq!(first, 2_000_000_000 - 129, "group 0 holds the earliest spans");
    let replay: Vec<_> = (0..130_i64).map(|n| plain_span("t4", &format!("d{n:03}"), 2_000_000_000 - n)).collect();
    backend.insert_spans(&replay, "replay").await.expect("replay");
    assert_eq!(backend.trace_spans("t4").await.expect("t4").len(), 130);
    let stored = backend.trace_spans("t1").await.expect("trace spans");
    let read: Vec<(&str, &str, u64)> =
        stored.iter().map(|span| (span.span_id.as_str(), span.span_kind.as_str(), span.duration_ns)).collect();
    assert_eq!(read, [("a1", "Server", 1_000), ("a2", "Internal", 1_001)]);
    assert_eq!(
        stored[1].span_attributes,
        suite::attrs(&[("z", "first"), ("a", "quote \" é 🚀"), ("z", "duplicate")]),
        "attribute order and duplicate keys survive the move"
    );
    assert_eq!((stored[1].events.len(), stored[1].links.len()), (1, 1));

    let stats = backend
        .request_stats(&glassbox_store::TimeRange { from_ns: 0, to_ns: 2_000_000_000 }, 3600)
        .await
        .expect("request stats");
    assert_eq!((stats.requests, stats.refused, stats.errors, stats.blocked), (1, 1, 1, 1), "{stats:?}");
    let traces = backend.run_traces(&["run-a".to_owned()], 0).await.expect("run traces");
    let found: Vec<&str> = traces.iter().map(|trace| trace.trace_id.as_str()).collect();
    assert_eq!(found, ["t2"]);
    let gone: i64 = raw
        .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'spans'", [], |row| row.get(0))
        .expect("schema");
    assert_eq!(gone, 0, "spans is a view now");
    // Ad-hoc SQL on the view by trace id (the README's example) reads that trace's groups only.
    let mut statement = raw.prepare("EXPLAIN QUERY PLAN SELECT SpanName FROM spans WHERE TraceId = 't1'").expect("sql");
    let plan: Vec<String> =
        statement.query_map([], |row| row.get(3)).expect("plan").collect::<Result<_, _>>().expect("rows");
    assert!(
        plan.iter().any(|step| step.contains("USING INDEX sqlite_autoindex_span_groups_1 (TraceId=?)")),
        "{plan:?}"
    );
}

/// Every row of `sql`'s answer, every column as an SQL value.
fn rows_of(raw: &rusqlite::Connection, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let mut statement = raw.prepare(sql).expect("sql");
    let width = statement.column_count();
    statement
        .query_map([], |row| (0..width).map(|index| row.get(index)).collect())
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// A plain span of `trace_id` for the grouping tests: its id, start time and nothing else.
fn plain_span(trace_id: &str, span_id: &str, timestamp_ns: i64) -> glassbox_store::SpanRow {
    suite::span(trace_id, span_id, "", "span", timestamp_ns, 1, vec![])
}

/// (Part, span count) of each group of `trace_id`, and how many of its span ids `span_keys`
/// holds.
fn groups_and_keys(raw: &rusqlite::Connection, trace_id: &str) -> (Vec<(i64, i64)>, i64) {
    let mut statement = raw
        .prepare("SELECT Part, json_array_length(Spans) FROM span_groups WHERE TraceId = ?1 ORDER BY Part")
        .expect("sql");
    let groups = statement
        .query_map([trace_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let keys =
        raw.query_row("SELECT count(*) FROM span_keys WHERE TraceId = ?1", [trace_id], |row| row.get(0)).expect("keys");
    (groups, keys)
}

/// A trace a caller keeps going, batch after batch, and one with more spans in a batch than a
/// group holds: groups stay at 64 spans or fewer, every span id of a trace with two or more
/// groups is a key, and replays of any of it add nothing.
#[tokio::test]
async fn long_traces_are_split_into_bounded_groups_and_keyed_once_they_have_two() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    let backend = open(&path).await;
    backend.migrate().await.expect("migrate");
    let raw = rusqlite::Connection::open(&path).expect("raw connection");

    // 150 spans of a new trace in one batch: 3 groups, every id a key.
    let wide: Vec<_> = (0..150).map(|n| plain_span("wide", &format!("w{n:03}"), 1_000 + n)).collect();
    backend.insert_spans(&wide, "wide").await.expect("wide");
    assert_eq!(groups_and_keys(&raw, "wide"), (vec![(0, 64), (1, 64), (2, 22)], 150));

    // A long-lived trace, 5 spans a batch: one group and no keys, then keys from the second.
    let mut batches = Vec::new();
    for batch in 0..6_i64 {
        let spans: Vec<_> =
            (0..5).map(|n| plain_span("long", &format!("l{batch}-{n}"), 10_000 + 10 * batch + n)).collect();
        backend.insert_spans(&spans, &format!("long-{batch}")).await.expect("long");
        batches.push(spans);
        let (groups, keys) = groups_and_keys(&raw, "long");
        assert_eq!(groups.len() as i64, batch + 1);
        assert_eq!(keys, if batch == 0 { 0 } else { 5 * (batch + 1) }, "after batch {batch}");
    }

    // Replays, split otherwise and mixed with one new span each, add only the new spans.
    let mut all: Vec<_> = wide.iter().chain(batches.iter().flatten()).cloned().collect();
    suite::Rng::new(3).shuffle(&mut all);
    for (index, chunk) in all.chunks(40).enumerate() {
        let mut chunk = chunk.to_vec();
        chunk.push(plain_span("long", &format!("new-{index}"), 20_000 + index as i64));
        backend.insert_spans(&chunk, &format!("replay-{index}")).await.expect("replay");
    }
    let replays = all.len().div_ceil(40);
    let wide_read = backend.trace_spans("wide").await.expect("wide spans");
    assert_eq!(wide_read.len(), 150);
    let long_read = backend.trace_spans("long").await.expect("long spans");
    assert_eq!(long_read.len(), 30 + replays);
    let (groups, keys) = groups_and_keys(&raw, "long");
    assert!(groups.iter().all(|(_, spans)| *spans <= 64), "{groups:?}");
    assert_eq!(keys, (30 + replays) as i64);
    let counts: Vec<(String, i64)> = ["long", "wide"]
        .iter()
        .map(|trace| {
            let count = raw
                .query_row("SELECT SpanCount FROM trace_index WHERE TraceId = ?1", [trace], |row| row.get(0))
                .expect("index row");
            ((*trace).to_owned(), count)
        })
        .collect();
    assert_eq!(counts, [("long".to_owned(), (30 + replays) as i64), ("wide".to_owned(), 150)]);
}

/// A file whose groups have no index row (not one Glassbox writes: edited by hand, or the
/// setup below): the batch is stored, a stored span is not stored again, the index row holds
/// only the spans added, and the batch's other traces are stored too.
#[tokio::test]
async fn groups_without_an_index_row_do_not_fail_the_batch() {
    let (_dir, path, backend) = migrated_with_one_old_span("t1", "a1").await;
    let batch = [plain_span("t1", "a1", 1_000), plain_span("t1", "a2", 2_000), plain_span("t9", "x1", 3_000)];
    backend.insert_spans(&batch, "b1").await.expect("the batch is stored");
    backend.insert_spans(&batch, "b1-again").await.expect("and again");
    let ids = |spans: Vec<glassbox_store::SpanRow>| spans.into_iter().map(|span| span.span_id).collect::<Vec<_>>();
    assert_eq!(ids(backend.trace_spans("t1").await.expect("t1")), ["a1", "a2"]);
    assert_eq!(ids(backend.trace_spans("t9").await.expect("t9")), ["x1"]);
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let count: i64 =
        raw.query_row("SELECT SpanCount FROM trace_index WHERE TraceId = 't1'", [], |row| row.get(0)).expect("row");
    assert_eq!(count, 1, "the index row holds the span added, as before migration 15");

    // Every span of the batch stored already: no index row is left that holds none.
    let (_dir, path, backend) = migrated_with_one_old_span("t2", "b1").await;
    backend.insert_spans(&[plain_span("t2", "b1", 1_000)], "b2").await.expect("stored already");
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let rows: i64 = raw.query_row("SELECT count(*) FROM trace_index", [], |row| row.get(0)).expect("rows");
    assert_eq!(rows, 0);
}

/// A file written under migration 14 with one span (at 1,000 ns) and no trace index row,
/// migrated to the latest version.
async fn migrated_with_one_old_span(
    trace_id: &str,
    span_id: &str,
) -> (tempfile::TempDir, std::path::PathBuf, SqliteBackend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("glassbox.db");
    {
        let raw = file_migrated_through(&path, 14);
        raw.execute(OLD_INSERT_SPAN, rusqlite::params![1_000, trace_id, span_id, "Internal", "{}"]).expect("old span");
    }
    let backend = open(&path).await;
    backend.migrate().await.expect("migrate");
    (dir, path, backend)
}
