//! `EvalStore` on both backends: runs with their results and online scores round-trip, a
//! repeated write adds nothing, and reads filter by suite, run and trace.

use std::sync::Arc;
use std::time::Duration;

use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::{
    Backend, EvalCaseRow, EvalResultRow, EvalRunRow, EvalScoreRow, EvalScorerTally, EvalStore, OnlineScoreSummary, TimeRange, UsageRow,
};
use glassbox_testkit::ClickHouseFixture;

fn run(run_id: &str, suite: &str, started_at_ns: i64) -> EvalRunRow {
    EvalRunRow {
        run_id: run_id.to_owned(),
        suite: suite.to_owned(),
        target: "agent assistant".to_owned(),
        mode: "replay".to_owned(),
        started_at_ns,
        duration_ms: 12.5,
        total: 2,
        passed: 1,
        errored: 1,
        pass_rate: 0.5,
        gate_passed: false,
    }
}

fn result(run_id: &str, case_id: &str, scorer: &str, score: Option<f64>) -> EvalResultRow {
    EvalResultRow {
        run_id: run_id.to_owned(),
        case_id: case_id.to_owned(),
        scorer: scorer.to_owned(),
        score,
        passed: score == Some(1.0),
        reason: "it's \"quoted\"; DROP TABLE x; -- ünïcode".to_owned(),
        error: if score.is_none() { "the run failed".to_owned() } else { String::new() },
        latency_ms: 3.25,
    }
}

fn score(trace_id: &str, scorer: &str, value: Option<f64>) -> EvalScoreRow {
    EvalScoreRow {
        timestamp_ns: 1_750_000_000_000_000_000,
        trace_id: trace_id.to_owned(),
        span_id: "00f067aa0ba902b7".to_owned(),
        agent: "assistant".to_owned(),
        scorer: scorer.to_owned(),
        score: value,
        passed: value.is_some_and(|value| value >= 0.5),
        reason: "because".to_owned(),
        error: if value.is_none() { "scorer panicked: boom".to_owned() } else { String::new() },
    }
}

async fn scenario(backend: Arc<dyn Backend>, store: Arc<dyn EvalStore>) {
    backend.migrate().await.unwrap();
    assert!(store.eval_runs(None, 10).await.unwrap().is_empty());

    let results = vec![result("r1", "c1", "contains", Some(1.0)), result("r1", "c2", "contains", None)];
    // Cases first (inputs, outputs, expectations), then the run, which makes them visible.
    let cases = vec![
        EvalCaseRow {
            run_id: "r1".to_owned(),
            case_id: "c1".to_owned(),
            input: "Capital of Norway? <script>alert(1)</script>".to_owned(),
            output: "Oslo.\nIt is in the south.".to_owned(),
            expected: r#"{"contains":"Oslo"}"#.to_owned(),
            error: String::new(),
        },
        EvalCaseRow {
            run_id: "r1".to_owned(),
            case_id: "c2".to_owned(),
            input: "é ünïcode — 🦀".to_owned(),
            output: String::new(),
            expected: String::new(),
            error: "model call failed: 503".to_owned(),
        },
    ];
    store.insert_eval_cases(&cases[1..]).await.unwrap();
    store.insert_eval_cases(&cases).await.unwrap();
    store.insert_eval_cases(&cases).await.unwrap();
    assert_eq!(store.eval_cases("r1").await.unwrap(), cases, "by case id, each once");
    assert!(store.eval_cases("r2").await.unwrap().is_empty());
    store.insert_eval_run(&run("r1", "assistant", 1_000), &results).await.unwrap();
    // A retried write adds nothing.
    store.insert_eval_run(&run("r1", "assistant", 1_000), &results).await.unwrap();
    store.insert_eval_run(&run("r2", "extractor", 2_000), &[result("r2", "c1", "valid_json", Some(1.0))]).await.unwrap();

    let all = store.eval_runs(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|run| run.run_id.as_str()).collect::<Vec<_>>(), ["r2", "r1"], "newest first");
    assert_eq!(all[1], run("r1", "assistant", 1_000));
    let assistant = store.eval_runs(Some("assistant"), 10).await.unwrap();
    assert_eq!(assistant.len(), 1);
    assert_eq!(store.eval_runs(None, 1).await.unwrap().len(), 1);
    assert_eq!(store.eval_results("r1").await.unwrap(), results);
    assert!(store.eval_results("nope").await.unwrap().is_empty());

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let scores = vec![score(trace, "contains", Some(1.0)), score(trace, "panics", None)];
    store.insert_eval_scores(&scores).await.unwrap();
    store.insert_eval_scores(&scores).await.unwrap();
    store.insert_eval_scores(&[score("other", "contains", Some(0.0))]).await.unwrap();
    assert_eq!(store.eval_scores(&[trace.to_owned()]).await.unwrap(), scores);
    let both = store.eval_scores(&[trace.to_owned(), "other".to_owned(), "none".to_owned()]).await.unwrap();
    assert_eq!(both.len(), 3, "{both:?}");
    assert!(store.eval_scores(&[]).await.unwrap().is_empty());

    // One run by id, and the dashboard's aggregates.
    assert_eq!(store.eval_run("r1").await.unwrap(), Some(run("r1", "assistant", 1_000)));
    assert_eq!(store.eval_run("nope").await.unwrap(), None);
    store
        .insert_eval_run(
            &run("r3", "assistant", 3_000),
            &[
                result("r3", "c1", "contains", Some(1.0)),
                result("r3", "c2", "contains", Some(1.0)),
                result("r3", "c1", "judge", None),
                result("r3", "c2", "judge", Some(0.0)),
            ],
        )
        .await
        .unwrap();
    let tally = |run_id: &str, scorer: &str, total, passed, errored| EvalScorerTally {
        run_id: run_id.to_owned(),
        scorer: scorer.to_owned(),
        total,
        passed,
        errored,
    };
    assert_eq!(
        store.eval_scorer_tallies(Some("assistant"), 10).await.unwrap(),
        [tally("r1", "contains", 2, 1, 1), tally("r3", "contains", 2, 2, 0), tally("r3", "judge", 2, 0, 1)]
    );
    // The limit picks the newest runs, as eval_runs does.
    assert_eq!(
        store.eval_scorer_tallies(None, 2).await.unwrap(),
        [tally("r2", "valid_json", 1, 1, 0), tally("r3", "contains", 2, 2, 0), tally("r3", "judge", 2, 0, 1)]
    );
    assert!(store.eval_scorer_tallies(Some("nope"), 10).await.unwrap().is_empty());

    let at = 1_750_000_000_000_000_000;
    let summary = store.online_score_summary(&TimeRange { from_ns: at, to_ns: at + 1 }, None).await.unwrap();
    assert_eq!(
        summary,
        [
            OnlineScoreSummary {
                agent: "assistant".to_owned(),
                scorer: "contains".to_owned(),
                scored: 2,
                passed: 1,
                errored: 0,
                mean_score: Some(0.5),
            },
            OnlineScoreSummary {
                agent: "assistant".to_owned(),
                scorer: "panics".to_owned(),
                scored: 1,
                passed: 0,
                errored: 1,
                mean_score: None,
            },
        ]
    );
    assert!(store.online_score_summary(&TimeRange { from_ns: at + 1, to_ns: at + 2 }, None).await.unwrap().is_empty());

    // By tenant: through the usage rows of the scored traces (recent, inside the tables' TTL).
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
        .unwrap();
    let recent = |trace_id: &str, scorer: &str, value: Option<f64>| EvalScoreRow {
        timestamp_ns: now - 60_000_000_000,
        ..score(trace_id, scorer, value)
    };
    let (acme_trace, globex_trace, early_trace) =
        ("aaaa0000000000000000000000000001", "bbbb0000000000000000000000000002", "cccc0000000000000000000000000003");
    store
        .insert_eval_scores(&[
            recent(acme_trace, "contains", Some(1.0)),
            recent(acme_trace, "panics", None),
            recent(globex_trace, "contains", Some(0.0)),
            recent(early_trace, "contains", Some(1.0)),
        ])
        .await
        .unwrap();
    let usage = |trace_id: &str, tenant: &str, at: i64| UsageRow {
        timestamp_ns: at,
        trace_id: trace_id.to_owned(),
        span_id: format!("{:016x}", at),
        tenant: tenant.to_owned(),
        api_key_id: String::new(),
        agent: "assistant".to_owned(),
        workflow: String::new(),
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        input_tokens: 1,
        output_tokens: 1,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cost_nano_usd: 1,
        cost_unknown: false,
        latency_ns: 1,
        time_to_first_token_ns: 0,
        status: "ok".to_owned(),
        error_type: String::new(),
    };
    let window = TimeRange { from_ns: now - 120_000_000_000, to_ns: now };
    backend
        .insert_usage(
            &[
                // The model call came a little before the range, the score inside it.
                usage(acme_trace, "acme", window.from_ns - 30_000_000_000),
                usage(globex_trace, "globex", now - 90_000_000_000),
                // Too long before the range to count.
                usage(early_trace, "acme", window.from_ns - glassbox_store::evals::TENANT_LOOKBACK_NS - 1),
            ],
            "online-scores-by-tenant",
        )
        .await
        .unwrap();
    let of = |rows: Vec<OnlineScoreSummary>| {
        rows.into_iter().map(|row| (row.scorer, row.scored, row.passed, row.errored)).collect::<Vec<_>>()
    };
    assert_eq!(
        of(store.online_score_summary(&window, Some("acme")).await.unwrap()),
        [("contains".to_owned(), 1, 1, 0), ("panics".to_owned(), 1, 0, 1)]
    );
    assert_eq!(
        of(store.online_score_summary(&window, Some("globex")).await.unwrap()),
        [("contains".to_owned(), 1, 0, 0)]
    );
    assert!(store.online_score_summary(&window, Some("nobody")).await.unwrap().is_empty());
    assert_eq!(of(store.online_score_summary(&window, None).await.unwrap()), [("contains".to_owned(), 3, 2, 0), ("panics".to_owned(), 1, 0, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_eval_store() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("evals.db") }).await.unwrap());
    scenario(backend.clone(), backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_eval_store() {
    let fixture = match ClickHouseFixture::start().await {
        Ok(fixture) => fixture,
        Err(error) => panic!("the ClickHouse test fixture must start (never skipped): {error}"),
    };
    let database = format!("evals_{:016x}", fastrand::u64(..));
    let settings = ClickHouseSettings {
        url: fixture.url(),
        database,
        request_timeout: Duration::from_secs(20),
        ..ClickHouseSettings::default()
    };
    let backend = Arc::new(ClickHouseBackend::new(settings).unwrap());
    scenario(backend.clone(), backend).await;
    drop(fixture);
}
