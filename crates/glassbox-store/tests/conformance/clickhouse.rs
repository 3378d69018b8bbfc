//! The ClickHouse backend on a real ClickHouse engine (chDB behind the HTTP test fixture of
//! `glassbox-testkit`), one fixture process and one fresh database per test. A fixture that
//! cannot start fails the test: it never skips.
//!
//! Below: the shared scenarios of `suite.rs` run against `ClickHouseBackend`, then what only
//! ClickHouse has (migration records and placeholders, deduplication tokens, TTL, rollups,
//! partial trace-index rows, a server that goes away).

use std::sync::Arc;
use std::time::Duration;

use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings, MIGRATIONS, MIGRATIONS_TABLE_SQL, render_sql};
use glassbox_store::query::Cursor;
use glassbox_store::{
    Backend, LatencyBy, LatencyRow, PageRequest, SpanEvent, SpanLink, SpanRow, StatusCode, StoreError, TimeRange,
    TraceFilter, TraceReader, UsageBy, UsageRow,
};
use glassbox_testkit::ClickHouseFixture;

/// Test data lives around this time (2025-06-15); spans older than the TTL are dropped by
/// ClickHouse as they are inserted.
const BASE_NS: i64 = 1_750_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;
/// Long enough for any test timestamp, short enough that `toDateTime` does not overflow.
const TEST_TTL_DAYS: u32 = 10_000;

/// A running fixture with a fresh, migrated database.
struct Env {
    fixture: ClickHouseFixture,
    database: String,
    backend: ClickHouseBackend,
}

async fn fixture() -> ClickHouseFixture {
    match ClickHouseFixture::start().await {
        Ok(fixture) => fixture,
        Err(error) => panic!("the ClickHouse test fixture must start (never skipped): {error}"),
    }
}

fn settings(fixture: &ClickHouseFixture, database: &str) -> ClickHouseSettings {
    ClickHouseSettings {
        url: fixture.url(),
        database: database.to_owned(),
        span_ttl_days: TEST_TTL_DAYS,
        request_timeout: Duration::from_secs(20),
        ..ClickHouseSettings::default()
    }
}

async fn env() -> Env {
    let fixture = fixture().await;
    let database = fixture.fresh_database().await.unwrap();
    let backend = ClickHouseBackend::new(settings(&fixture, &database)).unwrap();
    backend.migrate().await.unwrap();
    Env { fixture, database, backend }
}

impl Env {
    async fn scalar(&self, sql: &str) -> String {
        let sql = sql.replace("$db", &self.database);
        self.fixture.query_text(&sql).await.unwrap().trim().to_owned()
    }

    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.backend.clone())
    }

    fn reader(&self) -> Arc<dyn TraceReader> {
        Arc::new(self.backend.clone())
    }
}

fn span(trace: &str, id: &str, parent: &str, name: &str, at_ns: i64, duration_ns: u64) -> SpanRow {
    SpanRow {
        timestamp_ns: at_ns,
        trace_id: trace.to_owned(),
        span_id: id.to_owned(),
        parent_span_id: parent.to_owned(),
        trace_state: String::new(),
        span_name: name.to_owned(),
        span_kind: "Internal".to_owned(),
        service_name: "glassbox".to_owned(),
        resource_attributes: vec![("service.name".into(), "glassbox".into())],
        scope_name: "glassbox".to_owned(),
        scope_version: "0.1.0".to_owned(),
        span_attributes: Vec::new(),
        duration_ns,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

fn with(mut span: SpanRow, attributes: &[(&str, &str)]) -> SpanRow {
    span.span_attributes.extend(attributes.iter().map(|(key, value)| ((*key).to_owned().into(), (*value).into())));
    span
}

fn chat(trace: &str, id: &str, parent: &str, at_ns: i64, model: &str, tokens: (u64, u64), cost: &str) -> SpanRow {
    let input = tokens.0.to_string();
    let output = tokens.1.to_string();
    with(
        span(trace, id, parent, &format!("chat {model}"), at_ns, 500_000_000),
        &[
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", model),
            ("gen_ai.usage.input_tokens", &input),
            ("gen_ai.usage.output_tokens", &output),
            ("glassbox.cost_usd", cost),
        ],
    )
}

fn usage(
    trace: &str,
    span_id: &str,
    at_ns: i64,
    agent: &str,
    model: &str,
    latency_ms: u64,
    cost_nano_usd: i64,
) -> UsageRow {
    UsageRow {
        timestamp_ns: at_ns,
        trace_id: trace.to_owned(),
        span_id: span_id.to_owned(),
        tenant: "acme".to_owned(),
        api_key_id: "key-1".to_owned(),
        agent: agent.to_owned(),
        workflow: String::new(),
        provider: "openai".to_owned(),
        model: model.to_owned(),
        input_tokens: 100,
        output_tokens: 20,
        cached_input_tokens: 10,
        reasoning_tokens: 0,
        cost_nano_usd,
        cost_unknown: false,
        latency_ns: latency_ms * 1_000_000,
        time_to_first_token_ns: 0,
        status: "ok".to_owned(),
        error_type: String::new(),
    }
}

fn trace_id(n: u32) -> String {
    format!("{n:032x}")
}

fn page(limit: u32) -> PageRequest {
    PageRequest { after: None, limit }
}

// ---------------------------------------------------------------------------------------
// The shared scenarios
// ---------------------------------------------------------------------------------------

/// A fixture of its own and a database that does not exist yet (the scenarios migrate).
async fn fresh_store() -> crate::suite::Subject {
    let fixture = fixture().await;
    let database = format!("conformance_{:016x}", fastrand::u64(..));
    let backend = ClickHouseBackend::new(settings(&fixture, &database)).unwrap();
    crate::suite::Subject::new(Arc::new(backend), fixture)
}

conformance_tests!(fresh_store().await);

#[tokio::test]
async fn clickhouse_batches_are_1000_rows_unless_configured() {
    let fixture = fixture().await;
    let backend = ClickHouseBackend::new(settings(&fixture, "conformance_batch_rows")).unwrap();
    assert_eq!(backend.batch_rows(), 1000);
}

// ---------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn migrate_creates_everything_on_an_empty_server_then_does_nothing() {
    let fixture = fixture().await;
    // A database that does not exist yet: migrate creates it.
    let database = format!("fresh_{:08x}", fastrand::u32(..));
    let backend = ClickHouseBackend::new(settings(&fixture, &database)).unwrap();
    let first = backend.migrate().await.unwrap();
    assert_eq!(first.applied, all_versions());
    assert!(first.already_applied.is_empty());

    let tables = fixture.query_text(&format!("SHOW TABLES FROM {database}")).await.unwrap();
    let tables: Vec<&str> = tables.lines().collect();
    for table in [
        "api_keys",
        "glassbox_migrations",
        "latency_minute",
        "latency_minute_mv",
        "spans",
        "trace_api_keys",
        "trace_api_keys_mv",
        "trace_index",
        "trace_index_mv",
        "usage",
        "usage_daily",
        "usage_daily_mv",
        "workflow_runs",
    ] {
        assert!(tables.contains(&table), "{table} missing from {tables:?}");
    }

    let second = backend.migrate().await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, all_versions());
    let records = fixture
        .query_text(&format!(
            "SELECT version, name, checksum FROM {database}.glassbox_migrations FINAL ORDER BY version"
        ))
        .await
        .unwrap();
    let expected: String = MIGRATIONS
        .iter()
        .map(|migration| format!("{}\t{}\t{}\n", migration.version, migration.name, migration.checksum()))
        .collect();
    assert_eq!(records, expected);
}

#[tokio::test]
async fn migrate_refuses_a_migration_edited_after_it_was_applied() {
    let env = env().await;
    // What an edited file looks like from the database: a record whose checksum differs.
    env.scalar("INSERT INTO $db.glassbox_migrations VALUES (2, 'usage', 'not-the-checksum', now64(3))").await;
    match env.backend.migrate().await {
        Err(StoreError::MigrationEdited { version, name, applied, current }) => {
            assert_eq!((version, name.as_str(), applied.as_str()), (2, "usage", "not-the-checksum"));
            assert_eq!(current, MIGRATIONS[1].checksum());
        }
        other => panic!("expected MigrationEdited, got {other:?}"),
    }
}

#[tokio::test]
async fn two_servers_migrating_at_once_both_succeed_and_apply_each_version_once() {
    let fixture = fixture().await;
    let database = fixture.fresh_database().await.unwrap();
    let first = ClickHouseBackend::new(settings(&fixture, &database)).unwrap();
    let second = ClickHouseBackend::new(settings(&fixture, &database)).unwrap();
    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    let (a, b) = (a.unwrap(), b.unwrap());
    for report in [&a, &b] {
        let mut all: Vec<u32> = report.applied.iter().chain(&report.already_applied).copied().collect();
        all.sort_unstable();
        assert_eq!(all, all_versions(), "{report:?}");
    }
    let third = first.migrate().await.unwrap();
    assert_eq!(third.already_applied, all_versions());
    assert!(third.applied.is_empty());
    let records =
        fixture.query_text(&format!("SELECT count() FROM {database}.glassbox_migrations FINAL")).await.unwrap();
    assert_eq!(records.trim(), MIGRATIONS.len().to_string());
    // The schema works after the race.
    first.insert_spans(&[span(&trace_id(1), "00000000000000a1", "", "root", BASE_NS, 10)], "race").await.unwrap();
    assert_eq!(second.trace_spans(&trace_id(1)).await.unwrap().len(), 1);
}

#[test]
fn cluster_placeholders_render_on_cluster_and_replicated_engines() {
    let single = ClickHouseSettings { database: "gb".into(), span_ttl_days: 7, ..ClickHouseSettings::default() };
    let cluster = ClickHouseSettings { cluster: Some("prod".into()), ..single.clone() };

    let spans: Vec<String> = MIGRATIONS[0].statements().collect();
    assert_eq!(spans.len(), 1);
    let rendered = render_sql(&spans[0], &single);
    assert!(rendered.starts_with("CREATE TABLE IF NOT EXISTS `gb`.spans\n("), "{rendered}");
    assert!(rendered.contains("ENGINE = MergeTree()\n"), "{rendered}");
    assert!(rendered.contains("TTL toDateTime(Timestamp) + toIntervalDay(7)\n"), "{rendered}");
    let rendered = render_sql(&spans[0], &cluster);
    assert!(rendered.starts_with("CREATE TABLE IF NOT EXISTS `gb`.spans ON CLUSTER 'prod'\n("), "{rendered}");
    assert!(
        rendered
            .contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')\n"),
        "{rendered}"
    );

    let records = render_sql(MIGRATIONS_TABLE_SQL, &cluster);
    assert!(records.contains("`gb`.glassbox_migrations ON CLUSTER 'prod'"), "{records}");
    assert!(records.contains(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
    ));

    for migration in MIGRATIONS {
        for statement in migration.statements() {
            let plain = render_sql(&statement, &single);
            assert!(!plain.contains("ON CLUSTER") && !plain.contains("Replicated"), "{plain}");
            assert!(!plain.contains("{database}") && !plain.contains("{ttl_days}") && !plain.contains("{on_cluster}"));
            let clustered = render_sql(&statement, &cluster);
            if clustered.starts_with("INSERT") {
                // A backfill runs on one replica; replication carries its rows to the others.
                assert!(!clustered.contains("ON CLUSTER"), "{clustered}");
                continue;
            }
            assert!(clustered.contains(" ON CLUSTER 'prod'"), "every statement runs on the cluster: {clustered}");
            if clustered.contains("ENGINE =") {
                assert!(clustered.contains("ENGINE = Replicated"), "{clustered}");
                assert!(
                    // The replication arguments come first; an engine argument may follow them.
                    clustered.contains("('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')")
                        || clustered.contains("('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', "),
                    "{clustered}"
                );
            }
        }
    }
}

#[tokio::test]
async fn span_tables_have_the_configured_ttl() {
    let fixture = fixture().await;
    let database = fixture.fresh_database().await.unwrap();
    let backend =
        ClickHouseBackend::new(ClickHouseSettings { span_ttl_days: 45, ..settings(&fixture, &database) }).unwrap();
    backend.migrate().await.unwrap();
    for (table, column) in [("spans", "Timestamp"), ("trace_index", "Start")] {
        let create = fixture.query_text(&format!("SHOW CREATE TABLE {database}.{table}")).await.unwrap();
        let ttl = format!("TTL toDateTime({column}) + toIntervalDay(45)");
        assert!(create.contains(&ttl), "{table}: {create}");
        assert!(create.contains("ttl_only_drop_parts = 1"), "{table}: {create}");
        assert!(create.contains("non_replicated_deduplication_window = 1000"), "{table}: {create}");
    }
    let usage = fixture.query_text(&format!("SHOW CREATE TABLE {database}.usage")).await.unwrap();
    assert!(!usage.contains("TTL"), "usage is billing data, kept: {usage}");
}

#[tokio::test]
async fn spans_table_has_the_collector_exporter_layout() {
    let env = env().await;
    let columns = env
        .scalar("SELECT name, type FROM system.columns WHERE database = '$db' AND table = 'spans' ORDER BY position")
        .await;
    let expected = "Timestamp\tDateTime64(9)
TraceId\tString
SpanId\tString
ParentSpanId\tString
TraceState\tString
SpanName\tLowCardinality(String)
SpanKind\tLowCardinality(String)
ServiceName\tLowCardinality(String)
ResourceAttributes\tMap(LowCardinality(String), String)
ScopeName\tString
ScopeVersion\tString
SpanAttributes\tMap(LowCardinality(String), String)
Duration\tUInt64
StatusCode\tLowCardinality(String)
StatusMessage\tString
Events.Timestamp\tArray(DateTime64(9))
Events.Name\tArray(LowCardinality(String))
Events.Attributes\tArray(Map(LowCardinality(String), String))
Links.TraceId\tArray(String)
Links.SpanId\tArray(String)
Links.TraceState\tArray(String)
Links.Attributes\tArray(Map(LowCardinality(String), String))";
    assert_eq!(columns, expected);
    let indexes = env.scalar("SELECT name, type_full FROM system.data_skipping_indices WHERE database = '$db' AND table = 'spans' ORDER BY name").await;
    assert_eq!(
        indexes,
        "idx_duration\tminmax
idx_res_attr_key\tbloom_filter(0.01)
idx_res_attr_value\tbloom_filter(0.01)
idx_span_attr_key\tbloom_filter(0.01)
idx_span_attr_value\tbloom_filter(0.01)
idx_trace_id\tbloom_filter(0.001)"
    );
    let keys = env
        .scalar("SELECT partition_key, sorting_key FROM system.tables WHERE database = '$db' AND name = 'spans'")
        .await;
    assert_eq!(keys, "toDate(Timestamp)\tServiceName, SpanName, toDateTime(Timestamp)");
}

// ---------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_span_round_trips_with_maps_events_and_links() {
    let env = env().await;
    let trace = trace_id(7);
    let mut root = with(
        span(&trace, "00000000000000b1", "", "invoke_agent support", BASE_NS, 2 * SECOND as u64),
        &[("gen_ai.agent.name", "support"), ("z.last", "1"), ("a.first", "2"), ("quote", "it's \"quoted\"\n\t\\")],
    );
    root.trace_state = "vendor=1".into();
    root.span_kind = "Server".into();
    root.status_code = StatusCode::Error;
    root.status_message = "boom".into();
    root.resource_attributes.push(("host.name".into(), "ü-ñ".into()));
    root.events = vec![
        SpanEvent {
            timestamp_ns: BASE_NS + 5,
            name: "exception".into(),
            attributes: vec![("exception.message".into(), "x".into())],
        },
        SpanEvent { timestamp_ns: BASE_NS + 6, name: "retry".into(), attributes: Vec::new() },
    ];
    root.links = vec![SpanLink {
        trace_id: trace_id(8),
        span_id: "00000000000000c1".into(),
        trace_state: "a=b".into(),
        attributes: vec![("link.kind".into(), "follows".into())],
    }];
    let child = span(&trace, "00000000000000b2", "00000000000000b1", "execute_tool search", BASE_NS + SECOND, 1);
    env.backend.insert_spans(&[child.clone(), root.clone()], "round-trip").await.unwrap();
    let spans = env.backend.trace_spans(&trace).await.unwrap();
    assert_eq!(spans, [root, child]);
    assert!(env.backend.trace_spans(&trace_id(99)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_retried_with_its_token_is_written_once() {
    let env = env().await;
    let trace = trace_id(1);
    let spans = [
        with(
            span(&trace, "00000000000000a1", "", "invoke_agent a", BASE_NS, 3 * SECOND as u64),
            &[("gen_ai.agent.name", "a")],
        ),
        chat(&trace, "00000000000000a2", "00000000000000a1", BASE_NS + SECOND, "gpt-4o", (10, 5), "0.000123450"),
        // Another day: the batch spans two partitions.
        span(&trace_id(2), "00000000000000a3", "", "other", BASE_NS + DAY, 1),
    ];
    let rows = [usage(&trace, "00000000000000a2", BASE_NS + SECOND, "a", "gpt-4o", 800, 123_450)];
    for _ in 0..3 {
        env.backend.insert_spans(&spans, "batch-1").await.unwrap();
        env.backend.insert_usage(&rows, "batch-1").await.unwrap();
    }
    assert_eq!(env.scalar("SELECT count() FROM $db.spans").await, "3");
    assert_eq!(env.scalar("SELECT count() FROM $db.usage").await, "1");
    // The materialized views skipped the duplicates too.
    assert_eq!(env.scalar("SELECT sum(SpanCount) FROM $db.trace_index").await, "3");
    assert_eq!(env.scalar("SELECT sum(Calls) FROM $db.usage_daily").await, "1");
    assert_eq!(env.scalar("SELECT sum(Calls) FROM $db.latency_minute").await, "1");
    let listed = env.backend.list_traces(&TraceFilter::default(), &page(10)).await.unwrap();
    let first = listed.items.iter().find(|summary| summary.trace_id == trace).unwrap();
    assert_eq!((first.span_count, first.input_tokens, first.output_tokens, first.cost_nano_usd), (2, 10, 5, 123_450));

    // A different token is a different batch.
    env.backend.insert_usage(&rows, "batch-2").await.unwrap();
    assert_eq!(env.scalar("SELECT count() FROM $db.usage").await, "2");
    // Empty batches send nothing.
    env.backend.insert_spans(&[], "empty").await.unwrap();
    env.backend.insert_usage(&[], "empty").await.unwrap();
}

#[tokio::test]
async fn usage_rows_round_trip_exactly() {
    let env = env().await;
    let trace = trace_id(3);
    let mut expensive = usage(&trace, "00000000000000d2", BASE_NS + 2, "a", "big-model", 5, 9_223_372_036_854_775_807);
    expensive.cost_unknown = true;
    expensive.status = "error".into();
    expensive.error_type = "provider_timeout".into();
    expensive.time_to_first_token_ns = 123;
    let first = usage(&trace, "00000000000000d1", BASE_NS + 1, "a", "small", 5, -42);
    env.backend.insert_usage(&[expensive.clone(), first.clone()], "u").await.unwrap();
    assert_eq!(env.backend.trace_usage(&trace).await.unwrap(), [first, expensive]);
    assert!(env.backend.trace_usage(&trace_id(4)).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// The trace index
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_trace_written_in_several_batches_is_summarised_as_one() {
    let env = env().await;
    let trace = trace_id(5);
    let root = with(
        span(&trace, "00000000000000e1", "", "invoke_agent planner", BASE_NS, 10 * SECOND as u64),
        &[("gen_ai.agent.name", "planner"), ("glassbox.tenant", "acme")],
    );
    let mut failed = chat(&trace, "00000000000000e2", "00000000000000e1", BASE_NS + SECOND, "gpt-4o", (100, 7), "0.5");
    failed.status_code = StatusCode::Error;
    let late =
        chat(&trace, "00000000000000e3", "00000000000000e1", BASE_NS + 2 * SECOND, "claude", (1, 2), "1.000000001");
    // Not a chat span: its tokens do not count, its cost does.
    let tool = with(
        span(
            &trace,
            "00000000000000e4",
            "00000000000000e1",
            "execute_tool x",
            BASE_NS + 3 * SECOND,
            20 * SECOND as u64,
        ),
        &[("gen_ai.usage.input_tokens", "1000"), ("glassbox.cost_usd", "0.000000002"), ("gen_ai.agent.name", "sub")],
    );
    // Children first, the root last, each in its own insert: four partial index rows.
    env.backend.insert_spans(std::slice::from_ref(&late), "1").await.unwrap();
    env.backend.insert_spans(&[tool], "2").await.unwrap();
    env.backend.insert_spans(&[failed], "3").await.unwrap();
    env.backend.insert_spans(&[root], "4").await.unwrap();
    assert_eq!(env.scalar("SELECT count() FROM $db.trace_index").await, "4");

    let listed = env.backend.list_traces(&TraceFilter::default(), &page(10)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.next, None);
    let summary = &listed.items[0];
    assert_eq!(summary.trace_id, trace);
    assert_eq!(summary.start_ns, BASE_NS);
    assert_eq!(summary.end_ns, BASE_NS + 23 * SECOND);
    assert_eq!(summary.root_span_name, "invoke_agent planner");
    assert_eq!(summary.agent, "planner");
    assert_eq!(summary.tenant, "acme");
    assert!(summary.has_error);
    assert_eq!(summary.span_count, 4);
    assert_eq!((summary.input_tokens, summary.output_tokens), (101, 9));
    assert_eq!(summary.cost_nano_usd, 1_500_000_003);

    let reader = env.reader();
    for (filter, found) in [
        (TraceFilter { model: Some("claude".into()), ..TraceFilter::default() }, true),
        (TraceFilter { model: Some("nope".into()), ..TraceFilter::default() }, false),
        (TraceFilter { agent: Some("planner".into()), ..TraceFilter::default() }, true),
        (TraceFilter { agent: Some("sub".into()), ..TraceFilter::default() }, false),
        (TraceFilter { tenant: Some("acme".into()), ..TraceFilter::default() }, true),
        (TraceFilter { has_error: Some(true), ..TraceFilter::default() }, true),
        (TraceFilter { has_error: Some(false), ..TraceFilter::default() }, false),
        (TraceFilter { min_duration_ns: Some(23 * SECOND as u64), ..TraceFilter::default() }, true),
        (TraceFilter { min_duration_ns: Some(23 * SECOND as u64 + 1), ..TraceFilter::default() }, false),
        (TraceFilter { min_cost_nano_usd: Some(1_500_000_003), ..TraceFilter::default() }, true),
        (TraceFilter { min_cost_nano_usd: Some(1_500_000_004), ..TraceFilter::default() }, false),
        (TraceFilter { trace_id: Some(trace.clone()), ..TraceFilter::default() }, true),
        // A range holding only the late child's start: the trace starts before it.
        (
            TraceFilter {
                range: Some(TimeRange { from_ns: BASE_NS + 1, to_ns: BASE_NS + DAY }),
                ..TraceFilter::default()
            },
            false,
        ),
        (
            TraceFilter { range: Some(TimeRange { from_ns: BASE_NS, to_ns: BASE_NS + 1 }), ..TraceFilter::default() },
            true,
        ),
    ] {
        let items = reader.list_traces(&filter, &page(10)).await.unwrap().items;
        assert_eq!(items.len(), usize::from(found), "{filter:?}");
    }
    // Its spans come back in start order, found through the index's time bounds.
    let spans = env.backend.trace_spans(&trace).await.unwrap();
    let ids: Vec<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    assert_eq!(ids, ["00000000000000e1", "00000000000000e2", "00000000000000e3", "00000000000000e4"]);
}

#[tokio::test]
async fn traces_page_newest_first_with_a_stable_cursor() {
    let env = env().await;
    // 25 traces over three days, two of them at the very same start.
    let mut spans = Vec::new();
    for n in 0..25u32 {
        let start = BASE_NS + i64::from(n) * 3 * 3600 * SECOND;
        spans.push(span(&trace_id(n), "0000000000000001", "", "root", start, 1));
    }
    spans.push(span(&trace_id(100), "0000000000000001", "", "root", BASE_NS, 1));
    env.backend.insert_spans(&spans, "many").await.unwrap();

    let mut seen = Vec::new();
    let mut request = page(7);
    loop {
        let got = env.backend.list_traces(&TraceFilter::default(), &request).await.unwrap();
        assert!(got.items.len() <= 7);
        seen.extend(got.items.iter().map(|item| (item.start_ns, item.trace_id.clone())));
        match got.next {
            Some(next) => request = PageRequest { after: Some(next), limit: 7 },
            None => break,
        }
    }
    let mut expected: Vec<(i64, String)> =
        spans.iter().map(|span| (span.timestamp_ns, span.trace_id.clone())).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);

    // The same with a range filter: the candidates pass through the cursor too.
    let range = TimeRange { from_ns: BASE_NS + DAY, to_ns: BASE_NS + 2 * DAY };
    let filter = TraceFilter { range: Some(range), ..TraceFilter::default() };
    let first = env.backend.list_traces(&filter, &page(3)).await.unwrap();
    let cursor: Cursor = first.next.clone().unwrap();
    let second = env.backend.list_traces(&filter, &PageRequest { after: Some(cursor), limit: 1000 }).await.unwrap();
    let in_range: Vec<(i64, String)> =
        expected.iter().filter(|(start, _)| (range.from_ns..range.to_ns).contains(start)).cloned().collect();
    let got: Vec<(i64, String)> =
        first.items.iter().chain(&second.items).map(|item| (item.start_ns, item.trace_id.clone())).collect();
    assert_eq!(got, in_range);
    assert_eq!(second.next, None);

    let refused = env.backend.list_traces(&TraceFilter::default(), &page(0)).await;
    assert!(matches!(refused, Err(StoreError::InvalidQuery { .. })), "{refused:?}");
}

#[tokio::test]
async fn attribute_values_parse_like_the_sqlite_backend() {
    let env = env().await;
    let trace = trace_id(11);
    let odd = |id: &str, input: &str, cost: &str| {
        with(
            span(&trace, id, "", "chat x", BASE_NS, 1),
            &[("gen_ai.operation.name", "chat"), ("gen_ai.usage.input_tokens", input), ("glassbox.cost_usd", cost)],
        )
    };
    env.backend
        .insert_spans(
            &[
                odd("0000000000000001", "+12", "1."),
                odd("0000000000000002", "12abc", "1e-6"),
                odd("0000000000000003", "-3", ".5"),
                odd("0000000000000004", "99999999999999999999", " 1"),
                odd("0000000000000005", "7", "0.0000000019"),
                odd("0000000000000006", "", "-0.5"),
                odd("0000000000000007", "1", "99999999999999999999"),
            ],
            "odd",
        )
        .await
        .unwrap();
    let summary = &env.backend.list_traces(&TraceFilter::default(), &page(1)).await.unwrap().items[0];
    // "+12" -> 12, "7" -> 7, "1" -> 1; the rest 0 (Rust's u64 parse).
    assert_eq!(summary.input_tokens, 20);
    // "1." -> 1 USD, "0.0000000019" -> 1 nano (truncated), "-0.5"; the rest 0.
    assert_eq!(summary.cost_nano_usd, 1_000_000_000 + 1 - 500_000_000);
}

// ---------------------------------------------------------------------------------------
// Usage and latency
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn usage_from_the_daily_rollup_equals_usage_from_the_rows() {
    let env = env().await;
    let day0 = (BASE_NS / DAY) * DAY;
    let mut rows = Vec::new();
    for n in 0..30i64 {
        let agent = ["alpha", "beta", "gamma"][usize::try_from(n % 3).unwrap()];
        let model = ["m1", "m2"][usize::try_from(n % 2).unwrap()];
        rows.push(usage(
            &trace_id(200),
            &format!("{n:016x}"),
            day0 + n * 7 * 3600 * SECOND,
            agent,
            model,
            10,
            n * 1_000_000_007,
        ));
    }
    // Split over inserts so the rollup has several parts to sum.
    for (index, chunk) in rows.chunks(7).enumerate() {
        env.backend.insert_usage(chunk, &format!("chunk-{index}")).await.unwrap();
    }
    for by in [UsageBy::Agent, UsageBy::Model, UsageBy::Tenant, UsageBy::Day] {
        let whole = TimeRange { from_ns: day0 + DAY, to_ns: day0 + 5 * DAY };
        // One nanosecond less on each side: the same rows, read from `usage`.
        let raw = TimeRange { from_ns: day0 + DAY - 1, to_ns: day0 + 5 * DAY - 1 };
        let from_rollup = env.backend.usage_by(by, &whole).await.unwrap();
        let from_rows = env.backend.usage_by(by, &raw).await.unwrap();
        assert_eq!(from_rollup, from_rows, "{by:?}");
        assert!(!from_rollup.is_empty());
        let costs: Vec<i64> = from_rollup.iter().map(|group| group.cost_nano_usd).collect();
        assert!(costs.windows(2).all(|pair| pair[0] >= pair[1]), "largest cost first: {costs:?}");
        let expected_calls = rows.iter().filter(|row| (whole.from_ns..whole.to_ns).contains(&row.timestamp_ns)).count();
        assert_eq!(from_rollup.iter().map(|group| group.calls).sum::<u64>(), expected_calls as u64);
    }
    let days = env.backend.usage_by(UsageBy::Day, &TimeRange { from_ns: day0, to_ns: day0 + DAY }).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].key, "2025-06-15");
    assert_eq!(days[0].calls, 4);
    assert_eq!(days[0].cost_nano_usd, (0..4).map(|n| n * 1_000_000_007).sum::<i64>());
}

/// A trace that started before a range but has a later batch in it is not listed in the
/// range, even though the later batch's partial row starts inside it.
#[tokio::test]
async fn a_trace_started_before_the_range_is_not_listed_by_its_later_batch() {
    let env = env().await;
    let hour = 3600 * SECOND;
    let t0 = (BASE_NS / hour) * hour;
    let crossing = trace_id(500);
    let inside = trace_id(501);
    env.backend.insert_spans(&[span(&crossing, "00000000000000a1", "", "root", t0, 10)], "early").await.unwrap();
    let late = [
        span(&crossing, "00000000000000a2", "00000000000000a1", "late child", t0 + 2 * hour, 10),
        span(&inside, "00000000000000b1", "", "root", t0 + 90 * 60 * SECOND, 10),
    ];
    env.backend.insert_spans(&late, "late").await.unwrap();
    let list = |from_ns: i64| {
        let filter = TraceFilter { range: Some(TimeRange { from_ns, to_ns: t0 + 3 * hour }), ..TraceFilter::default() };
        let backend = env.backend.clone();
        async move {
            let found = backend.list_traces(&filter, &page(10)).await.unwrap();
            found.items.into_iter().map(|summary| (summary.trace_id, summary.start_ns)).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(t0 + hour).await, [(inside.clone(), t0 + 90 * 60 * SECOND)]);
    assert_eq!(list(t0).await, [(inside, t0 + 90 * 60 * SECOND), (crossing, t0)]);
}

/// Migration 11's backfill puts request spans written before the request rollup existed into
/// it, once; the overview's figures then equal the reference's, also for one tenant.
#[tokio::test]
async fn the_request_rollup_backfill_counts_old_spans_once() {
    let env = env().await;
    let dataset = crate::suite::Dataset::standard().with_requests();
    env.backend.insert_spans(&dataset.spans, "before-the-request-rollup").await.unwrap();
    env.backend.insert_usage(&dataset.usage, "before-the-request-rollup").await.unwrap();
    let whole = TimeRange { from_ns: crate::suite::BASE_NS - crate::suite::DAY_NS, to_ns: crate::suite::BASE_NS + 4 * crate::suite::DAY_NS };
    let expected = dataset.expected_request_stats(&whole, 3600, None);
    assert!(expected.requests > 0 && expected.blocked > 0, "{expected:?}");
    assert_eq!(env.backend.request_stats(&whole, 3600).await.unwrap(), expected);
    // As if the spans predated migration 11: empty the rollup, then run its backfill (twice).
    env.scalar("TRUNCATE TABLE $db.requests_minutely").await;
    assert_eq!(env.backend.request_stats(&whole, 3600).await.unwrap().requests, 0, "the rollup is empty");
    let migration = MIGRATIONS.iter().find(|migration| migration.name == "requests_minutely").unwrap();
    let backfill = migration.statements().find(|statement| statement.starts_with("INSERT")).unwrap();
    for _ in 0..2 {
        let sql = render_sql(&backfill, &settings(&env.fixture, &env.database));
        env.fixture.query_text(&sql).await.unwrap();
    }
    assert_eq!(env.backend.request_stats(&whole, 3600).await.unwrap(), expected);
    let tenant = dataset.usage[0].tenant.clone();
    let of_tenant = env.backend.request_stats_of_tenant(&whole, 86_400, Some(&tenant)).await.unwrap();
    assert_eq!(of_tenant, dataset.expected_request_stats(&whole, 86_400, Some(&tenant)));
}

/// Migration 12's backfill gives the traces written before `trace_api_keys` existed their keys,
/// also over more than 100 days of spans (one partition per day); running it twice changes no
/// answer (a set).
#[tokio::test]
async fn the_api_key_backfill_finds_old_traces_under_each_key() {
    let env = env().await;
    let mut dataset = crate::suite::Dataset::standard();
    env.backend.insert_spans(&dataset.spans, "before-the-api-keys").await.unwrap();
    // One trace a day for 120 days before the standard data, all under one key (inserted a
    // month at a time: an insert, like the backfill, writes one partition per day).
    let old: Vec<SpanRow> = (1..=120_u32)
        .map(|day| {
            let at_ns = crate::suite::BASE_NS - i64::from(day) * crate::suite::DAY_NS;
            let mut old = span(&trace_id(5_000 + day), "0000000000000001", "", "old", at_ns, 1);
            old.span_attributes.push(("glassbox.api_key_id".into(), "key_old".into()));
            old
        })
        .collect();
    for (n, month) in old.chunks(30).enumerate() {
        env.backend.insert_spans(month, &format!("old-{n}")).await.unwrap();
    }
    dataset.spans.extend(old);
    let keys = dataset.api_keys();
    let by_key = |key: &str| TraceFilter { api_key_id: Some(key.to_owned()), ..TraceFilter::default() };
    let expected: Vec<Vec<String>> = keys
        .iter()
        .map(|key| dataset.expected_list(&by_key(key)).into_iter().map(|trace| trace.trace_id).collect())
        .collect();
    assert!(expected.iter().all(|traces| !traces.is_empty()), "every key has traces");
    // As if the spans predated migration 12: empty the table, then run its backfill (twice).
    env.scalar("TRUNCATE TABLE $db.trace_api_keys").await;
    let found = |key: String| {
        let backend = env.backend.clone();
        async move {
            let page = backend.list_traces(&by_key(&key), &page(1000)).await.unwrap();
            page.items.into_iter().map(|trace| trace.trace_id).collect::<Vec<_>>()
        }
    };
    assert!(found(keys[0].clone()).await.is_empty(), "the table is empty");
    let migration = MIGRATIONS.iter().find(|migration| migration.name == "trace_api_keys").unwrap();
    let backfill = migration.statements().find(|statement| statement.starts_with("INSERT")).unwrap();
    for _ in 0..2 {
        let sql = render_sql(&backfill, &settings(&env.fixture, &env.database));
        env.fixture.query_text(&sql).await.unwrap();
    }
    for (key, traces) in keys.iter().zip(&expected) {
        assert_eq!(&found(key.clone()).await, traces, "key {key}");
    }
}

/// Migration 8's backfill puts rows written before the hourly rollup existed into it, once.
#[tokio::test]
async fn the_hourly_rollup_backfill_counts_old_rows_once() {
    let env = env().await;
    let hour = 3600 * SECOND;
    let start = (BASE_NS / hour) * hour;
    let rows: Vec<UsageRow> = (0..12i64)
        .map(|n| {
            let mut row = usage(&trace_id(400), &format!("{n:016x}"), start + n * 20 * 60 * SECOND, "a", "m", 10, 1_000 + n);
            row.tenant = ["acme", "globex"][usize::try_from(n % 2).unwrap()].into();
            row
        })
        .collect();
    env.backend.insert_usage(&rows, "before-the-rollup").await.unwrap();
    // As if the rows predated migration 8: empty the rollup, then run its backfill (twice).
    env.scalar("TRUNCATE TABLE $db.usage_hourly").await;
    let whole = TimeRange { from_ns: start, to_ns: start + 4 * hour };
    assert!(env.backend.usage_by(UsageBy::Agent, &whole).await.unwrap().is_empty(), "the rollup is empty");
    let migration = MIGRATIONS.iter().find(|migration| migration.name == "usage_hourly").unwrap();
    let backfill = migration.statements().find(|statement| statement.starts_with("INSERT")).unwrap();
    for _ in 0..2 {
        let sql = render_sql(&backfill, &settings(&env.fixture, &env.database));
        env.fixture.query_text(&sql).await.unwrap();
    }
    let groups = env.backend.usage_by(UsageBy::Tenant, &whole).await.unwrap();
    let calls: Vec<(&str, u64, i64)> =
        groups.iter().map(|group| (group.key.as_str(), group.calls, group.cost_nano_usd)).collect();
    assert_eq!(calls, [("globex", 6, 6 * 1_000 + 36), ("acme", 6, 6 * 1_000 + 30)]);
    // The tenant filter applies to the rollup too.
    let acme = env.backend.usage_by_tenant(UsageBy::Agent, &whole, Some("acme")).await.unwrap();
    assert_eq!((acme[0].calls, acme[0].cost_nano_usd), (6, 6_030));
}

/// Latency over whole hours (from `latency_hourly`, migration 9) equals latency over the same
/// rows read from `usage`, per agent and model, hourly and daily, for every tenant and one.
#[tokio::test]
async fn latency_from_the_hourly_rollup_equals_latency_from_the_rows() {
    let env = env().await;
    let hour = 3600 * SECOND;
    let day0 = (BASE_NS / DAY) * DAY;
    let rows: Vec<UsageRow> = (0..200i64)
        .map(|n| {
            let agent = ["alpha", "beta", "gamma"][usize::try_from(n % 3).unwrap()];
            let model = ["m1", "m2"][usize::try_from(n % 2).unwrap()];
            let latency_ms = u64::try_from((n * 7919) % 1_000 + 1).unwrap();
            let mut row = usage(
                &trace_id(600),
                &format!("{n:016x}"),
                day0 + n * 17 * 60 * SECOND + n,
                agent,
                model,
                latency_ms,
                n,
            );
            row.tenant = ["acme", "globex"][usize::try_from(n % 2).unwrap()].into();
            row
        })
        .collect();
    // Several inserts, so the rollup merges states of several parts.
    for (index, chunk) in rows.chunks(23).enumerate() {
        env.backend.insert_usage(chunk, &format!("latency-chunk-{index}")).await.unwrap();
    }
    for (bucket_secs, whole) in [
        (3600, TimeRange { from_ns: day0 + hour, to_ns: day0 + 40 * hour }),
        (86_400, TimeRange { from_ns: day0, to_ns: day0 + 3 * DAY }),
        // Partial hours at both ends: the ends come from `usage`, the middle from the rollup.
        (3600, TimeRange { from_ns: day0 + hour + 7 * 60 * SECOND, to_ns: day0 + 30 * hour + 1 }),
    ] {
        for by in [LatencyBy::Agent, LatencyBy::Model] {
            for tenant in [None, Some("globex")] {
                let from_rollup = env.backend.latency_of_tenant(by, &whole, bucket_secs, tenant).await.unwrap();
                // Buckets of 30 minutes never use the rollup: the same rows, read from `usage`.
                let from_rows = env.backend.latency_of_tenant(by, &whole, 1800, tenant).await.unwrap();
                let calls = |rows: &[LatencyRow]| rows.iter().map(|row| row.calls).sum::<u64>();
                assert!(calls(&from_rows) > 0);
                assert_eq!(calls(&from_rollup), calls(&from_rows), "{by:?} {tenant:?} {bucket_secs} {whole:?}");
                let expected = reference_latency(&rows, by, &whole, bucket_secs, tenant);
                assert_eq!(from_rollup, expected, "{by:?} {tenant:?} {bucket_secs} {whole:?}");
            }
        }
    }
}

/// `LatencyRow`'s rule, computed here from the rows.
fn reference_latency(
    rows: &[UsageRow],
    by: LatencyBy,
    range: &TimeRange,
    bucket_secs: u32,
    tenant: Option<&str>,
) -> Vec<LatencyRow> {
    let bucket_ns = i64::from(bucket_secs) * SECOND;
    let mut groups: std::collections::BTreeMap<(String, i64), Vec<u64>> = std::collections::BTreeMap::new();
    for row in rows {
        if !(range.from_ns..range.to_ns).contains(&row.timestamp_ns)
            || tenant.is_some_and(|tenant| row.tenant != tenant)
        {
            continue;
        }
        let key = match by {
            LatencyBy::Agent => row.agent.clone(),
            LatencyBy::Model => row.model.clone(),
        };
        groups.entry((key, row.timestamp_ns.div_euclid(bucket_ns) * bucket_ns)).or_default().push(row.latency_ns);
    }
    groups
        .into_iter()
        .map(|((key, bucket_start_ns), mut latencies)| {
            latencies.sort_unstable();
            let at = |p: f64| {
                let index = ((p * latencies.len() as f64) as usize).min(latencies.len() - 1);
                latencies[index] as f64 / 1_000_000.0
            };
            LatencyRow {
                key,
                bucket_start_ns,
                calls: latencies.len() as u64,
                p50_ms: at(0.5),
                p95_ms: at(0.95),
                p99_ms: at(0.99),
            }
        })
        .collect()
}

/// Migration 9's backfill puts rows written before the latency rollup existed into it, once.
#[tokio::test]
async fn the_latency_rollup_backfill_counts_old_rows_once() {
    let env = env().await;
    let hour = 3600 * SECOND;
    let start = (BASE_NS / hour) * hour;
    let rows: Vec<UsageRow> = (0..12i64)
        .map(|n| {
            let latency_ms = u64::try_from(n + 1).unwrap();
            let mut row =
                usage(&trace_id(700), &format!("{n:016x}"), start + n * 20 * 60 * SECOND, "a", "m", latency_ms, 0);
            row.tenant = ["acme", "globex"][usize::try_from(n % 2).unwrap()].into();
            row
        })
        .collect();
    env.backend.insert_usage(&rows, "before-the-latency-rollup").await.unwrap();
    // As if the rows predated migration 9: empty the rollup, then run its backfill (twice).
    env.scalar("TRUNCATE TABLE $db.latency_hourly").await;
    let whole = TimeRange { from_ns: start, to_ns: start + 4 * hour };
    assert!(env.backend.latency(LatencyBy::Agent, &whole, 3600).await.unwrap().is_empty(), "the rollup is empty");
    let migration = MIGRATIONS.iter().find(|migration| migration.name == "latency_hourly").unwrap();
    let backfill = migration.statements().find(|statement| statement.starts_with("INSERT")).unwrap();
    for _ in 0..2 {
        let sql = render_sql(&backfill, &settings(&env.fixture, &env.database));
        env.fixture.query_text(&sql).await.unwrap();
    }
    let daily = env.backend.latency(LatencyBy::Agent, &whole, 86_400).await.unwrap();
    assert_eq!(daily, reference_latency(&rows, LatencyBy::Agent, &whole, 86_400, None));
    assert_eq!(daily[0].calls, 12);
    // The tenant filter applies to the rollup too.
    let acme = env.backend.latency_of_tenant(LatencyBy::Model, &whole, 3600, Some("acme")).await.unwrap();
    assert_eq!(acme, reference_latency(&rows, LatencyBy::Model, &whole, 3600, Some("acme")));
    assert_eq!(acme.iter().map(|row| row.calls).sum::<u64>(), 6);
}

#[tokio::test]
async fn latency_percentiles_are_exact() {
    let env = env().await;
    let minute = (BASE_NS / (60 * SECOND)) * 60 * SECOND;
    // 20 calls of 1..=20 ms in one minute; 3 calls of another agent in the next.
    let mut rows: Vec<UsageRow> = (1..=20u64)
        .map(|ms| {
            usage(&trace_id(300), &format!("{ms:016x}"), minute + 1000 * i64::try_from(ms).unwrap(), "a", "m", ms, 0)
        })
        .collect();
    rows.extend(
        (1..=3u64).map(|ms| usage(&trace_id(301), &format!("b{ms:015x}"), minute + 61 * SECOND, "b", "m", ms * 100, 0)),
    );
    env.backend.insert_usage(&rows, "latency").await.unwrap();
    let range = TimeRange { from_ns: minute, to_ns: minute + 3600 * SECOND };
    let by_agent = env.backend.latency(LatencyBy::Agent, &range, 60).await.unwrap();
    assert_eq!(by_agent.len(), 2);
    let a = &by_agent[0];
    assert_eq!((a.key.as_str(), a.bucket_start_ns, a.calls), ("a", minute, 20));
    // index floor(p * n): 0.5*20 = 10 -> 11 ms; 0.95*20 = 19 -> 20 ms; 0.99*20 = 19.8 -> 20 ms.
    assert_eq!((a.p50_ms, a.p95_ms, a.p99_ms), (11.0, 20.0, 20.0));
    let b = &by_agent[1];
    assert_eq!((b.key.as_str(), b.bucket_start_ns, b.calls), ("b", minute + 60 * SECOND, 3));
    // n = 3: indexes 1, 2, 2.
    assert_eq!((b.p50_ms, b.p95_ms, b.p99_ms), (200.0, 300.0, 300.0));
    let by_model = env.backend.latency(LatencyBy::Model, &range, 3600).await.unwrap();
    assert_eq!(by_model.len(), 1);
    assert_eq!(by_model[0].calls, 23);
    assert!(matches!(env.backend.latency(LatencyBy::Model, &range, 0).await, Err(StoreError::InvalidQuery { .. })));

    // Buckets are floored before 1970 too.
    env.backend.insert_usage(&[usage(&trace_id(302), "00000000000000c1", -1, "old", "m", 1, 0)], "1969").await.unwrap();
    let old = env.backend.latency(LatencyBy::Agent, &TimeRange { from_ns: -SECOND, to_ns: SECOND }, 60).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!((old[0].key.as_str(), old[0].bucket_start_ns, old[0].calls), ("old", -60 * SECOND, 1));
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_goes_away_is_unavailable_and_nothing_is_lost_after_it_returns() {
    let mut env = env().await;
    let trace = trace_id(400);
    let batch = [span(&trace, "0000000000000001", "", "root", BASE_NS, 1)];
    env.backend.insert_spans(&batch, "before").await.unwrap();
    env.fixture.kill().await;

    let down = env.backend.insert_spans(&[span(&trace, "0000000000000002", "", "x", BASE_NS + 1, 1)], "during").await;
    assert!(matches!(down, Err(StoreError::Unavailable { .. })), "{down:?}");
    assert!(down.unwrap_err().is_retryable());
    assert!(matches!(env.backend.ping().await, Err(StoreError::Unavailable { .. })));
    assert!(matches!(
        env.backend.list_traces(&TraceFilter::default(), &page(5)).await,
        Err(StoreError::Unavailable { .. })
    ));

    env.fixture.restart().await.unwrap();
    env.backend.ping().await.unwrap();
    // The retry of the failed batch (same token) lands once.
    let retry = [span(&trace, "0000000000000002", "", "x", BASE_NS + 1, 1)];
    env.backend.insert_spans(&retry, "during").await.unwrap();
    env.backend.insert_spans(&retry, "during").await.unwrap();
    assert_eq!(env.backend.trace_spans(&trace).await.unwrap().len(), 2);
}

#[tokio::test]
async fn clickhouse_exceptions_are_rejected_not_retried() {
    let env = env().await;
    env.scalar("DROP TABLE $db.trace_index_mv").await;
    env.scalar("DROP TABLE $db.trace_index").await;
    let refused = env.backend.list_traces(&TraceFilter::default(), &page(5)).await;
    match refused {
        Err(StoreError::Rejected { message, source }) => {
            assert!(message.contains("UNKNOWN_TABLE") || message.contains("Code: 60"), "{message}");
            assert!(source.is_some());
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn nothing_listens_means_unavailable() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let backend = ClickHouseBackend::new(ClickHouseSettings {
        url: format!("http://127.0.0.1:{port}"),
        request_timeout: Duration::from_secs(2),
        ..ClickHouseSettings::default()
    })
    .unwrap();
    let error = backend.ping().await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(matches!(backend.migrate().await, Err(StoreError::Unavailable { .. })));
}

mod runs {
    use super::*;
    use glassbox_store::RunStore;

    async fn fresh_runs() -> (Arc<dyn Backend>, Arc<dyn RunStore>, ClickHouseFixture) {
        let fixture = fixture().await;
        let database = fixture.fresh_database().await.unwrap();
        let backend = Arc::new(ClickHouseBackend::new(settings(&fixture, &database)).unwrap());
        (backend.clone(), backend, fixture)
    }

    runs_scenarios!(fresh_runs().await);
}

#[test]
fn settings_are_checked() {
    let bad = [
        ClickHouseSettings { url: "localhost:8123".into(), ..ClickHouseSettings::default() },
        ClickHouseSettings { database: "x; DROP".into(), ..ClickHouseSettings::default() },
        ClickHouseSettings { database: String::new(), ..ClickHouseSettings::default() },
        ClickHouseSettings { cluster: Some("a'b".into()), ..ClickHouseSettings::default() },
        ClickHouseSettings { span_ttl_days: 0, ..ClickHouseSettings::default() },
        ClickHouseSettings { request_timeout: Duration::ZERO, ..ClickHouseSettings::default() },
    ];
    for settings in bad {
        assert!(ClickHouseBackend::new(settings.clone()).is_err(), "{settings:?}");
    }
    let with_password = ClickHouseSettings { password: Some("hunter2".into()), ..ClickHouseSettings::default() };
    assert!(!format!("{with_password:?}").contains("hunter2"));
    assert_eq!(ClickHouseBackend::new(with_password).unwrap().name(), "clickhouse");
}

#[tokio::test]
async fn trait_objects_work() {
    let env = env().await;
    let backend = env.backend();
    backend.ping().await.unwrap();
    backend.insert_spans(&[span(&trace_id(500), "0000000000000001", "", "root", BASE_NS, 1)], "t").await.unwrap();
    assert_eq!(env.reader().trace_spans(&trace_id(500)).await.unwrap().len(), 1);
}

/// Every embedded migration's version, in order.
fn all_versions() -> Vec<u32> {
    MIGRATIONS.iter().map(|migration| migration.version).collect()
}

/// Two servers applying migrations 8 and 9 at once both run their backfills: the rows stored
/// before the rollups existed are counted once however often the runner applies them. The
/// rows sit in several parts over many hours and groups, so a parallel `SELECT` could cut the
/// backfill's output into blocks differently from run to run, and the deduplication token is
/// per block; the runner therefore runs every migration statement with `max_threads = 1`.
#[tokio::test]
async fn migrations_applied_again_backfill_the_rollups_once() {
    let env = env().await;
    let hour = 3600 * SECOND;
    let start = (BASE_NS / hour) * hour;
    let mut rows = Vec::new();
    for part in 0..6i64 {
        let batch: Vec<UsageRow> = (0..400i64)
            .map(|n| {
                let index = part * 400 + n;
                let agent = ["alpha", "beta", "gamma", "delta"][usize::try_from(index % 4).unwrap()];
                let model = ["m1", "m2", "m3"][usize::try_from(index % 3).unwrap()];
                let latency_ms = u64::try_from((index * 7919) % 500 + 1).unwrap();
                let at = start + (index % 48) * hour + index;
                let span_id = format!("{index:016x}");
                let mut row = usage(&trace_id(800), &span_id, at, agent, model, latency_ms, 1_000 + index);
                row.tenant = ["acme", "globex", "initech"][usize::try_from(index % 3).unwrap()].into();
                row
            })
            .collect();
        env.backend.insert_usage(&batch, &format!("before-the-rollups-{part}")).await.unwrap();
        rows.extend(batch);
    }
    let whole = TimeRange { from_ns: start, to_ns: start + 48 * hour };
    let expected_usage = env.backend.usage_by(UsageBy::Model, &whole).await.unwrap();
    let expected_latency = reference_latency(&rows, LatencyBy::Model, &whole, 86_400, None);
    assert_eq!(expected_usage.iter().map(|group| group.calls).sum::<u64>(), 2_400);
    // As if the rows predated migrations 8 and 9: empty the rollups, forget the migrations.
    env.scalar("TRUNCATE TABLE $db.usage_hourly").await;
    env.scalar("TRUNCATE TABLE $db.latency_hourly").await;
    // Six runs: without the runner's setting, 6 test runs in 8 failed (3 in 8 with three runs).
    for run in 0..6 {
        env.scalar("ALTER TABLE $db.glassbox_migrations DELETE WHERE version IN (8, 9)").await;
        let report = env.backend.migrate().await.unwrap();
        assert_eq!(report.applied, [8, 9], "run {run}");
    }
    assert_eq!(env.backend.usage_by(UsageBy::Model, &whole).await.unwrap(), expected_usage);
    assert_eq!(env.backend.latency(LatencyBy::Model, &whole, 86_400).await.unwrap(), expected_latency);
}
