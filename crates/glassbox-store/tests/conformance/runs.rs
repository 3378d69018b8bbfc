//! Workflow run state scenarios, run unchanged against every backend (`runs_scenarios!`).
//!
//! What they pin down: a save replaces the whole row; a save whose version is not above the
//! stored one changes nothing (writers never reuse a version for other content, so saving
//! the same version again is a retry) (late writes of concurrent steps never roll a run back); lists
//! are newest first by (created, run id), filtered by workflow, any of several statuses and a
//! `[from, to)` creation range, with the limit checked; hostile text round-trips unchanged.

use std::sync::Arc;

use glassbox_store::{Backend, RunFilter, RunRecord, RunStore, RunTrace, StoreError, TimeRange};

/// Expands into one test per scenario for a backend, given an async expression that makes a
/// fresh, unmigrated `(Arc<dyn Backend>, Arc<dyn RunStore>, keep_alive)`.
macro_rules! runs_scenarios {
    ($fresh:expr) => {
        #[tokio::test]
        async fn runs_save_replace_and_version_guard() {
            let (backend, runs, _keep) = $fresh;
            crate::runs::save_replace_and_version_guard(backend, runs).await;
        }

        #[tokio::test]
        async fn runs_list_filters_and_order() {
            let (backend, runs, _keep) = $fresh;
            crate::runs::list_filters_and_order(backend, runs).await;
        }

        #[tokio::test]
        async fn runs_traces_from_workflow_spans() {
            let (backend, runs, _keep) = $fresh;
            crate::runs::traces_from_workflow_spans(backend, runs).await;
        }
    };
}

pub const BASE_NS: i64 = 1_750_000_000_000_000_000;

pub fn record(run_id: &str, workflow_id: &str, status: &str, created_ns: i64, version: u64) -> RunRecord {
    RunRecord {
        run_id: run_id.to_owned(),
        workflow_id: workflow_id.to_owned(),
        status: status.to_owned(),
        input: r#"{"startDate":"2025-06-01"}"#.to_owned(),
        snapshot: format!(r#"{{"version":{version},"steps":{{}}}}"#),
        result: String::new(),
        error: String::new(),
        created_ns,
        updated_ns: created_ns + i64::try_from(version).unwrap(),
        version,
    }
}

pub async fn save_replace_and_version_guard(backend: Arc<dyn Backend>, runs: Arc<dyn RunStore>) {
    backend.migrate().await.expect("migrate");
    assert_eq!(runs.get_run("missing").await.expect("get"), None);

    let first = record("run-1", "report", "pending", BASE_NS, 1);
    runs.save_run(&first).await.expect("save");
    assert_eq!(runs.get_run("run-1").await.expect("get"), Some(first.clone()));

    let mut running = record("run-1", "report", "running", BASE_NS, 2);
    running.snapshot = r#"{"version":2,"steps":{"fetch":{"status":"success"}}}"#.to_owned();
    runs.save_run(&running).await.expect("save v2");
    let mut done = record("run-1", "report", "success", BASE_NS, 5);
    done.result = "{\"report\":\"quotes ' \\\" ; DROP TABLE x; -- \u{1F600} \\u0000\"}".to_owned();
    done.error = "multi\nline 'quoted' \"text\" \u{0}".to_owned();
    runs.save_run(&done).await.expect("save v5");
    // A late write of an older version changes nothing.
    runs.save_run(&record("run-1", "report", "running", BASE_NS, 3)).await.expect("save v3");
    runs.save_run(&done).await.expect("save v5 again");
    let stored = runs.get_run("run-1").await.expect("get").expect("present");
    assert_eq!(stored.status, "success");
    assert_eq!(stored, done);

    let listed = runs.list_runs(&RunFilter { limit: 10, ..RunFilter::default() }).await.expect("list");
    assert_eq!(listed, vec![done]);
}

pub async fn list_filters_and_order(backend: Arc<dyn Backend>, runs: Arc<dyn RunStore>) {
    backend.migrate().await.expect("migrate");
    let statuses = ["pending", "running", "suspended", "success", "failed", "canceled"];
    let mut all = Vec::new();
    for n in 0..12i64 {
        let workflow = if n % 2 == 0 { "report" } else { "other" };
        let status = statuses[usize::try_from(n).unwrap() % statuses.len()];
        // Two runs share a creation time: the run id breaks the tie.
        let created = BASE_NS + (n / 2) * 1_000_000_000;
        let run = record(&format!("run-{n:02}"), workflow, status, created, 1);
        runs.save_run(&run).await.expect("save");
        all.push(run);
    }
    let newest_first = |mut runs: Vec<RunRecord>| {
        runs.sort_by(|a, b| (b.created_ns, &b.run_id).cmp(&(a.created_ns, &a.run_id)));
        runs
    };
    let ids = |runs: &[RunRecord]| runs.iter().map(|run| run.run_id.clone()).collect::<Vec<_>>();

    let everything = runs.list_runs(&RunFilter { limit: 1000, ..RunFilter::default() }).await.expect("list");
    assert_eq!(ids(&everything), ids(&newest_first(all.clone())));

    let filter = RunFilter { workflow_id: Some("report".into()), limit: 3, ..RunFilter::default() };
    let page = runs.list_runs(&filter).await.expect("list");
    let expected: Vec<RunRecord> =
        newest_first(all.iter().filter(|run| run.workflow_id == "report").cloned().collect())
            .into_iter()
            .take(3)
            .collect();
    assert_eq!(page, expected);

    let filter = RunFilter { statuses: vec!["running".into(), "suspended".into()], limit: 100, ..RunFilter::default() };
    let page = runs.list_runs(&filter).await.expect("list");
    let expected: Vec<RunRecord> =
        newest_first(all.iter().filter(|run| run.status == "running" || run.status == "suspended").cloned().collect());
    assert_eq!(ids(&page), ids(&expected));

    let range = TimeRange { from_ns: BASE_NS + 1_000_000_000, to_ns: BASE_NS + 3_000_000_000 };
    let filter =
        RunFilter { workflow_id: Some("other".into()), created: Some(range), limit: 100, ..RunFilter::default() };
    let page = runs.list_runs(&filter).await.expect("list");
    let expected: Vec<RunRecord> = newest_first(
        all.iter()
            .filter(|run| run.workflow_id == "other" && (range.from_ns..range.to_ns).contains(&run.created_ns))
            .cloned()
            .collect(),
    );
    assert_eq!(ids(&page), ids(&expected));
    assert_eq!(page.len(), 2);

    // A status changed by a newer version moves the run between status filters.
    runs.save_run(&record("run-01", "other", "success", all[1].created_ns, 2)).await.expect("save");
    let running = runs
        .list_runs(&RunFilter { statuses: vec!["running".into()], limit: 100, ..RunFilter::default() })
        .await
        .expect("list");
    assert!(running.iter().all(|run| run.run_id != "run-01"), "{running:?}");

    for limit in [0, 1001] {
        let refused = runs.list_runs(&RunFilter { limit, ..RunFilter::default() }).await;
        assert!(matches!(refused, Err(StoreError::InvalidQuery { .. })), "{refused:?}");
    }
}

/// A run's traces are found through its workflow spans; other spans, other runs and spans
/// before `since` are not.
pub async fn traces_from_workflow_spans(backend: Arc<dyn Backend>, runs: Arc<dyn RunStore>) {
    backend.migrate().await.unwrap();
    // Recent enough for the span tables' TTL.
    let base = crate::suite::BASE_NS;
    let attrs = |run_id: &str| {
        vec![
            ("glassbox.workflow.id".into(), "onboard".into()),
            ("glassbox.workflow.run_id".into(), run_id.into()),
        ]
    };
    let trace = |n: u8| format!("{n:032x}");
    let spans = vec![
        crate::suite::span(&trace(1), "0000000000000001", "", "invoke_workflow onboard", base, 1_000, attrs("run-a")),
        // The run resumed later in another trace.
        crate::suite::span(&trace(2), "0000000000000002", "", "invoke_workflow onboard", base + 50, 1_000, attrs("run-a")),
        // A step span of the same run in the first trace: still one trace.
        crate::suite::span(&trace(1), "0000000000000003", "0000000000000001", "workflow_step fetch", base + 1, 10, attrs("run-a")),
        crate::suite::span(&trace(3), "0000000000000004", "", "invoke_workflow onboard", base + 10, 1_000, attrs("run-b")),
        // Not a workflow span.
        crate::suite::span(&trace(4), "0000000000000005", "", "chat gpt", base + 20, 1_000, attrs("run-a")),
        // Before `since`.
        crate::suite::span(&trace(5), "0000000000000006", "", "invoke_workflow onboard", base - 100, 1_000, attrs("run-a")),
    ];
    backend.insert_spans(&spans, "run-traces").await.unwrap();
    let found = runs.run_traces(&["run-a".to_owned(), "run-c\"'); --".to_owned()], base).await.unwrap();
    assert_eq!(
        found,
        [
            RunTrace { run_id: "run-a".to_owned(), trace_id: trace(1), start_ns: base },
            RunTrace { run_id: "run-a".to_owned(), trace_id: trace(2), start_ns: base + 50 },
        ]
    );
    assert!(runs.run_traces(&[], base).await.unwrap().is_empty());
    let too_many: Vec<String> = (0..=glassbox_store::runs::MAX_RUN_TRACES_IDS).map(|n| n.to_string()).collect();
    assert!(matches!(runs.run_traces(&too_many, base).await, Err(StoreError::InvalidQuery { .. })));
}
