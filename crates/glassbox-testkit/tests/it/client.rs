//! The `clickhouse` crate against the fixture: types, params, settings, MVs, errors.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::setup;

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct SpanRow {
    trace_id: String,
    span_id: u64,
    /// DateTime64(9, 'UTC'): nanoseconds since the epoch.
    start_time: i64,
    /// Map(LowCardinality(String), String)
    attributes: HashMap<String, String>,
    /// Array(String)
    events: Vec<String>,
    /// Decimal(18, 9): units of 1e-9.
    cost_usd: i64,
    /// LowCardinality(String)
    service: String,
    /// Nullable(String)
    error: Option<String>,
    /// Array(Float64)
    scores: Vec<f64>,
}

const SPANS_DDL: &str = "CREATE TABLE spans (
    trace_id String,
    span_id UInt64,
    start_time DateTime64(9, 'UTC'),
    attributes Map(LowCardinality(String), String),
    events Array(String),
    cost_usd Decimal(18, 9),
    service LowCardinality(String),
    error Nullable(String),
    scores Array(Float64)
) ENGINE = MergeTree ORDER BY (service, start_time, span_id)";

fn span(i: u64) -> SpanRow {
    SpanRow {
        trace_id: format!("trace-{:04}", i / 10),
        span_id: i,
        start_time: 1_767_225_600_123_456_789 + i as i64 * 1_000_000_007,
        attributes: HashMap::from([
            ("model".to_owned(), format!("model-{}", i % 3)),
            ("tab\tand\nnewline".to_owned(), "quote ' and \\ backslash".to_owned()),
        ]),
        events: (0..i % 4).map(|e| format!("event {e} of span {i}")).collect(),
        cost_usd: 123_456_789 * i as i64 + 1,
        service: ["api", "worker", "évaluateur"][(i % 3) as usize].to_owned(),
        error: i.is_multiple_of(5).then(|| format!("error in span {i}")),
        scores: vec![i as f64 / 7.0, -0.5],
    }
}

#[tokio::test]
async fn typed_rows_round_trip_with_validation() {
    let (fixture, client, _db) = setup().await;
    client.query(SPANS_DDL).execute().await.unwrap();

    let rows: Vec<SpanRow> = (0..1000).map(span).collect();
    let mut insert = client.insert::<SpanRow>("spans").await.unwrap();
    for row in &rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();

    let fetched = client.query("SELECT ?fields FROM spans ORDER BY span_id").fetch_all::<SpanRow>().await.unwrap();
    assert_eq!(fetched, rows);

    // The engine sees the values as typed, not just as bytes.
    let text = fixture
        .query_text(&format!(
            "SELECT toString(start_time), toString(cost_usd), attributes['model'], \
             toTypeName(service) FROM {}.spans WHERE span_id = 7",
            client.database().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(text, "2026-01-01 00:00:07.123456838\t0.864197524\tmodel-1\tLowCardinality(String)\n");
}

#[tokio::test]
async fn large_insert_spans_many_compressed_blocks() {
    let (_fixture, client, _db) = setup().await;
    client.query(SPANS_DDL).execute().await.unwrap();
    let mut insert = client.insert::<SpanRow>("spans").await.unwrap();
    for i in 0..50_000 {
        insert.write(&span(i)).await.unwrap();
    }
    insert.end().await.unwrap();

    #[derive(Debug, Row, Deserialize)]
    struct Totals {
        rows: u64,
        ids: u64,
        cost: i64,
    }
    let totals = client
        .query("SELECT count() AS rows, sum(span_id) AS ids, toInt64(sum(cost_usd) * 1000000000) AS cost FROM spans")
        .fetch_one::<Totals>()
        .await
        .unwrap();
    assert_eq!(totals.rows, 50_000);
    assert_eq!(totals.ids, (0..50_000u64).sum::<u64>());
    assert_eq!(totals.cost, (0..50_000i64).map(|i| 123_456_789 * i + 1).sum::<i64>());
}

#[tokio::test]
async fn bind_and_server_side_params() {
    let (_fixture, client, _db) = setup().await;
    client.query(SPANS_DDL).execute().await.unwrap();
    let mut insert = client.insert::<SpanRow>("spans").await.unwrap();
    for i in 0..30 {
        insert.write(&span(i)).await.unwrap();
    }
    insert.end().await.unwrap();

    // Client-side binding.
    let bound = client
        .query("SELECT ?fields FROM spans WHERE service = ? AND span_id >= ? ORDER BY span_id")
        .bind("worker")
        .bind(20u64)
        .fetch_all::<SpanRow>()
        .await
        .unwrap();
    assert_eq!(bound, vec![span(22), span(25), span(28)]);

    // Server-side parameters (multipart/form-data), including characters that need escaping.
    let by_param = client
        .query(
            "SELECT ?fields FROM spans WHERE service = {service:String} \
             AND span_id IN {ids:Array(UInt64)} ORDER BY span_id",
        )
        .param("service", "évaluateur")
        .param("ids", vec![2u64, 5, 8, 9])
        .fetch_all::<SpanRow>()
        .await
        .unwrap();
    assert_eq!(by_param, vec![span(2), span(5), span(8)]);

    let tricky = "tab\there, quote ' and \"double\", backslash \\ and\nnewline";
    let echoed = client.query("SELECT {s:String}").param("s", tricky).fetch_one::<String>().await.unwrap();
    assert_eq!(echoed, tricky);

    let start = client
        .query("SELECT {t:DateTime64(9, 'UTC')}")
        .param("t", "2026-01-01 00:00:00.000000001")
        .fetch_one::<i64>()
        .await
        .unwrap();
    assert_eq!(start, 1_767_225_600_000_000_001);
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct UsageRow {
    request_id: String,
    tokens: u32,
}

#[tokio::test]
async fn insert_deduplication_token_drops_a_repeated_insert() {
    let (_fixture, client, _db) = setup().await;
    client
        .query(
            "CREATE TABLE usage (request_id String, tokens UInt32) ENGINE = MergeTree \
             ORDER BY request_id SETTINGS non_replicated_deduplication_window = 100",
        )
        .execute()
        .await
        .unwrap();
    let batch = |from: u32| (from..from + 3).map(|i| UsageRow { request_id: format!("r{i}"), tokens: i });

    // The same batch sent twice with one token (a retry after a lost answer) lands once.
    for _ in 0..2 {
        let mut insert =
            client.insert::<UsageRow>("usage").await.unwrap().with_setting("insert_deduplication_token", "batch-1");
        for row in batch(0) {
            insert.write(&row).await.unwrap();
        }
        insert.end().await.unwrap();
    }
    let count = || async { client.query("SELECT count() FROM usage").fetch_one::<u64>().await.unwrap() };
    assert_eq!(count().await, 3);

    // A different token is a different batch, even with equal rows.
    let mut insert =
        client.insert::<UsageRow>("usage").await.unwrap().with_setting("insert_deduplication_token", "batch-2");
    for row in batch(0) {
        insert.write(&row).await.unwrap();
    }
    insert.end().await.unwrap();
    assert_eq!(count().await, 6);

    // The token is a per-request setting: it does not stick to later inserts.
    for _ in 0..2 {
        let mut insert = client.insert::<UsageRow>("usage").await.unwrap();
        for row in batch(100) {
            insert.write(&row).await.unwrap();
        }
        insert.end().await.unwrap();
    }
    // Without a token, identical blocks are deduplicated by their hash (as on a server).
    assert_eq!(count().await, 9);
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct LatencyRow {
    service: String,
    ms: f64,
    ts: i64,
}

#[derive(Debug, Row, Deserialize)]
struct LatencySummary {
    service: String,
    quantiles: Vec<f64>,
    n: u64,
}

#[tokio::test]
async fn materialized_view_into_aggregating_merge_tree() {
    let (_fixture, client, _db) = setup().await;
    for ddl in [
        "CREATE TABLE latency (service LowCardinality(String), ms Float64, ts DateTime64(9, 'UTC')) \
         ENGINE = MergeTree ORDER BY ts",
        "CREATE TABLE latency_agg (service LowCardinality(String), \
         q AggregateFunction(quantiles(0.5, 0.99), Float64), n AggregateFunction(count)) \
         ENGINE = AggregatingMergeTree ORDER BY service",
        "CREATE MATERIALIZED VIEW latency_mv TO latency_agg AS SELECT service, \
         quantilesState(0.5, 0.99)(ms) AS q, countState() AS n FROM latency GROUP BY service",
    ] {
        client.query(ddl).execute().await.unwrap();
    }
    // Two inserts, so that the view writes two parts that merge on read.
    for half in [1..=50, 51..=100] {
        let mut insert = client.insert::<LatencyRow>("latency").await.unwrap();
        for i in half {
            for service in ["api", "worker"] {
                let ms = if service == "api" { i as f64 } else { i as f64 * 10.0 };
                insert.write(&LatencyRow { service: service.to_owned(), ms, ts: i * 1_000_000 }).await.unwrap();
            }
        }
        insert.end().await.unwrap();
    }
    let summary = client
        .query(
            "SELECT service, quantilesMerge(0.5, 0.99)(q) AS quantiles, countMerge(n) AS n \
             FROM latency_agg GROUP BY service ORDER BY service",
        )
        .fetch_all::<LatencySummary>()
        .await
        .unwrap();
    assert_eq!(summary.len(), 2);
    assert_eq!(summary[0].service, "api");
    assert_eq!(summary[0].n, 100);
    assert!((summary[0].quantiles[0] - 50.5).abs() < 1e-9, "{summary:?}");
    assert!((summary[0].quantiles[1] - 99.01).abs() < 1e-9, "{summary:?}");
    assert_eq!(summary[1].service, "worker");
    assert!((summary[1].quantiles[0] - 505.0).abs() < 1e-9, "{summary:?}");
}

#[tokio::test]
async fn errors_carry_the_clickhouse_exception() {
    let (fixture, client, db) = setup().await;

    let err = client.query("SELECT no_such_function(1)").execute().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, clickhouse::error::Error::BadResponse(_)), "{err:?}");
    assert!(text.contains("Code: 46. DB::Exception:"), "{text}");
    assert!(text.contains("UNKNOWN_FUNCTION"), "{text}");

    let err = client.query("SELECT ?fields FROM missing_table").fetch_all::<UsageRow>().await.unwrap_err();
    assert!(err.to_string().contains("UNKNOWN_TABLE"), "{err}");

    // Insert into a missing table: the schema lookup (DESCRIBE) fails with the server's text.
    let err = client.insert::<UsageRow>("missing_table").await.err().unwrap();
    assert!(err.to_string().contains("Code: 60"), "{err}");

    // Validation on: a row type that does not match the table is refused before sending.
    client
        .query("CREATE TABLE narrow (request_id String) ENGINE = MergeTree ORDER BY request_id")
        .execute()
        .await
        .unwrap();
    let err = client.insert::<UsageRow>("narrow").await.err().unwrap();
    assert!(err.to_string().contains("tokens"), "{err}");

    // Bad data inside an insert body surfaces when the insert ends.
    client.query("CREATE TABLE d (day Date) ENGINE = MergeTree ORDER BY day").execute().await.unwrap();
    let err = client.query("INSERT INTO d VALUES ('not a date')").execute().await.unwrap_err();
    assert!(err.to_string().contains("DB::Exception"), "{err}");

    // The fixture's own helper reports the code and the text as well.
    match fixture.query_text("SELECT * FROM nowhere.nothing").await {
        Err(glassbox_testkit::FixtureError::Query { status, code, message }) => {
            assert_eq!((status, code), (404, Some(81)));
            assert!(message.starts_with("Code: 81. DB::Exception:"), "{message}");
            assert!(message.contains("UNKNOWN_DATABASE"), "{message}");
        }
        other => panic!("expected a query error, got {other:?}"),
    }

    // A failed request leaves the session usable.
    let n = client.query("SELECT count() FROM narrow").fetch_one::<u64>().await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(fixture.query_text(&format!("EXISTS TABLE {db}.narrow")).await.unwrap(), "1\n");
}

#[tokio::test]
async fn settings_apply_per_request_and_unknown_ones_are_ignored() {
    let (_fixture, client, _db) = setup().await;
    let setting = |name: &'static str| client.query("SELECT value FROM system.settings WHERE name = ?").bind(name);

    let threads = setting("max_threads").with_setting("max_threads", "1").fetch_one::<String>().await.unwrap();
    assert_eq!(threads, "1");
    // Not carried over to the next request.
    let threads = setting("max_threads").fetch_one::<String>().await.unwrap();
    assert_ne!(threads, "1");

    // The server's defaults where chDB's differ.
    assert_eq!(setting("async_insert").fetch_one::<String>().await.unwrap(), "0");
    assert_eq!(setting("date_time_input_format").fetch_one::<String>().await.unwrap(), "basic");

    // Settings only the HTTP interface knows, or chDB does not know, do not fail the query.
    let one = client
        .query("SELECT 1")
        .with_setting("wait_end_of_query", "1")
        .with_setting("send_progress_in_http_headers", "0")
        .with_setting("no_such_setting_anywhere", "1")
        .fetch_one::<u8>()
        .await
        .unwrap();
    assert_eq!(one, 1);

    // A bad value of a known setting is an error, as on a server.
    let err = client.query("SELECT 1").with_setting("max_threads", "many").fetch_one::<u8>().await.unwrap_err();
    assert!(err.to_string().contains("Code: "), "{err}");

    // date_time_input_format and async inserts, set on the client for every request.
    client
        .query("CREATE TABLE events (ts DateTime('UTC'), name String) ENGINE = MergeTree ORDER BY ts")
        .execute()
        .await
        .unwrap();
    let best_effort = client
        .clone()
        .with_setting("date_time_input_format", "best_effort")
        .with_setting("async_insert", "1")
        .with_setting("wait_for_async_insert", "1");
    best_effort
        .query("INSERT INTO events FORMAT JSONEachRow {\"ts\": \"2026-01-02T03:04:05Z\", \"name\": \"iso\"}")
        .execute()
        .await
        .unwrap();
    let err = client
        .query("INSERT INTO events FORMAT JSONEachRow {\"ts\": \"2026-01-02T03:04:05Z\", \"name\": \"iso\"}")
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DB::Exception"), "{err}");
    let ts = client.query("SELECT toUnixTimestamp(ts) FROM events").fetch_all::<u32>().await.unwrap();
    assert_eq!(ts, vec![1_767_323_045]);
}

#[tokio::test]
async fn compression_off_and_compressed_responses_work_too() {
    let (_fixture, client, _db) = setup().await;
    client
        .query("CREATE TABLE usage (request_id String, tokens UInt32) ENGINE = MergeTree ORDER BY request_id")
        .execute()
        .await
        .unwrap();
    let rows: Vec<UsageRow> = (0..500).map(|i| UsageRow { request_id: format!("request-{i:05}"), tokens: i }).collect();

    let plain = client.clone().with_compression(clickhouse::Compression::None);
    let mut insert = plain.insert::<UsageRow>("usage").await.unwrap();
    for row in &rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
    let fetched = plain.query("SELECT ?fields FROM usage ORDER BY request_id").fetch_all::<UsageRow>().await.unwrap();
    assert_eq!(fetched, rows);

    // enable_http_compression=1: the answer comes back as an lz4 frame, which the crate reads.
    let fetched = client
        .query("SELECT ?fields FROM usage ORDER BY request_id")
        .with_setting("enable_http_compression", "1")
        .fetch_all::<UsageRow>()
        .await
        .unwrap();
    assert_eq!(fetched, rows);
}

#[tokio::test]
async fn concurrent_clients_are_served() {
    let (_fixture, client, _db) = setup().await;
    client
        .query("CREATE TABLE usage (request_id String, tokens UInt32) ENGINE = MergeTree ORDER BY request_id")
        .execute()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..5u32 {
                let mut insert = client.insert::<UsageRow>("usage").await.unwrap();
                for i in 0..100u32 {
                    let row = UsageRow { request_id: format!("{t}-{batch}-{i}"), tokens: i };
                    insert.write(&row).await.unwrap();
                }
                insert.end().await.unwrap();
                let n = client.query("SELECT count() FROM usage").fetch_one::<u64>().await.unwrap();
                assert!(n >= 100);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let n = client.query("SELECT count() FROM usage").fetch_one::<u64>().await.unwrap();
    assert_eq!(n, 8 * 5 * 100);
}
