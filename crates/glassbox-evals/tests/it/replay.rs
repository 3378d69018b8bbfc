//! Record a suite against the deterministic mock provider, then replay it: same answers, no
//! model or tool call, and a changed prompt fails the case with a diff of the request.

use std::path::Path;
use std::sync::atomic::Ordering;

use glassbox_evals::runner::Quiet;
use glassbox_evals::{Mode, Suite, run_suite};
use glassbox_store::pricing::PricingTable;

use crate::support::MockTargets;

fn write_suite(dir: &Path, agent: &str, scorers: &str) -> std::path::PathBuf {
    let rows = (1..=6)
        .map(|i| format!("{{\"id\": \"c{i}\", \"input\": \"question number {i}\", \"expected\": \"You said: question number {i}\"}}\n"))
        .collect::<String>();
    std::fs::write(dir.join("cases.jsonl"), rows).unwrap();
    let path = dir.join("suite.toml");
    std::fs::write(&path, format!("target = {{ agent = \"{agent}\" }}\ndataset = \"cases.jsonl\"\nconcurrency = 3\n{scorers}")).unwrap();
    path
}

#[tokio::test]
async fn record_then_replay_gives_the_same_report_without_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_suite(
        dir.path(),
        "tools",
        "[[scorers]]\ntype = \"tool_called\"\ntool = \"get_weather\"\n[[scorers]]\ntype = \"contains\"\nvalue = \"temperature\"\n",
    );
    let suite = Suite::load(&path).unwrap();
    let targets = MockTargets::new("Use the tool.");
    let pricing = PricingTable::shipped();

    let (recorded, sink) = run_suite(&suite, &targets, Mode::Record, &pricing, &Quiet, None).await.unwrap();
    assert!(recorded.gate.passed, "{:#?}", recorded.gate);
    assert_eq!(targets.tool_calls.load(Ordering::SeqCst), 6);
    let written = sink.unwrap().write(&suite.recordings_path).unwrap();
    assert_eq!(written, 6 * 2 + 6, "two model calls and one tool call per case");
    assert_eq!(suite.recordings_path, dir.path().join("cases.recordings.jsonl"));

    let (replayed, sink) = run_suite(&suite, &targets, Mode::Replay, &pricing, &Quiet, None).await.unwrap();
    assert!(sink.is_none());
    assert_eq!(targets.tool_calls.load(Ordering::SeqCst), 6, "replay must not call the tool");
    assert!(replayed.gate.passed);
    let outputs = |report: &glassbox_evals::Report| report.cases.iter().map(|case| (case.id.clone(), case.output.clone(), case.tool_calls.clone())).collect::<Vec<_>>();
    assert_eq!(outputs(&recorded), outputs(&replayed));
    // Replay is deterministic, latency included (the recorded one).
    let (again, _) = run_suite(&suite, &targets, Mode::Replay, &pricing, &Quiet, None).await.unwrap();
    let latencies = |report: &glassbox_evals::Report| report.cases.iter().map(|case| case.latency_ms).collect::<Vec<_>>();
    assert_eq!(latencies(&replayed), latencies(&again));
}

#[tokio::test]
async fn changed_instructions_fail_with_a_request_diff() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_suite(dir.path(), "echo", "[[scorers]]\ntype = \"exact_match\"\n");
    let suite = Suite::load(&path).unwrap();
    let pricing = PricingTable::shipped();
    let (_, sink) = run_suite(&suite, &MockTargets::new("Be brief."), Mode::Record, &pricing, &Quiet, None).await.unwrap();
    sink.unwrap().write(&suite.recordings_path).unwrap();

    let (report, _) = run_suite(&suite, &MockTargets::new("Be a pirate."), Mode::Replay, &pricing, &Quiet, None).await.unwrap();
    assert!(!report.gate.passed);
    assert_eq!(report.passed, 0);
    assert_eq!(report.errored, 6);
    let error = report.cases[0].error.as_deref().unwrap();
    assert!(error.contains("no recording for model request"), "{error}");
    assert!(error.contains("case c1, model call 1"), "{error}");
    assert!(error.contains("-       \"content\": \"Be brief.\",") && error.contains("+       \"content\": \"Be a pirate.\","), "{error}");
    assert!(report.gate.failures[0].starts_with("0/6 cases passed"), "{:?}", report.gate.failures);
}

#[tokio::test]
async fn replay_without_recordings_fails_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_suite(dir.path(), "echo", "[[scorers]]\ntype = \"exact_match\"\n");
    let suite = Suite::load(&path).unwrap();
    let (report, _) = run_suite(&suite, &MockTargets::new("x"), Mode::Replay, &PricingTable::shipped(), &Quiet, None).await.unwrap();
    assert_eq!(report.passed, 0);
    assert!(report.cases.iter().all(|case| case.error.as_deref().unwrap().contains("nothing was recorded for this call")));
}

#[tokio::test]
async fn gate_per_scorer_and_against_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    // `c1` .. `c6` all contain "question"; only c1 contains "number 1".
    let path = write_suite(
        dir.path(),
        "echo",
        "[gate]\nmin_pass_rate = 0.0\n[[scorers]]\ntype = \"contains\"\nvalue = \"question\"\nmin_pass_rate = 1.0\n[[scorers]]\nname = \"one\"\ntype = \"contains\"\nvalue = \"number 1\"\nmin_pass_rate = 0.5\n",
    );
    let suite = Suite::load(&path).unwrap();
    let (report, _) = run_suite(&suite, &MockTargets::new("x"), Mode::Live, &PricingTable::shipped(), &Quiet, None).await.unwrap();
    assert_eq!(report.scorers[0].pass_rate, 1.0);
    assert!((report.scorers[1].pass_rate - 1.0 / 6.0).abs() < 1e-6);
    assert_eq!(report.gate.failures, ["scorer one passed 16.7% of cases, below its minimum of 50.0%"]);

    // A baseline where everything passed: the drop is over the allowed 10 points.
    let mut baseline = report.clone();
    baseline.pass_rate = 1.0;
    baseline.scorers[1].pass_rate = 1.0;
    let baseline_path = dir.path().join("baseline.json");
    std::fs::write(&baseline_path, baseline.to_json()).unwrap();
    let mut with_drop = suite.clone();
    with_drop.gate.max_drop = Some(0.1);
    with_drop.scorers[1].min_pass_rate = None;
    let (report, _) =
        run_suite(&with_drop, &MockTargets::new("x"), Mode::Live, &PricingTable::shipped(), &Quiet, Some(&baseline_path)).await.unwrap();
    assert_eq!(report.gate.failures.len(), 2, "{:?}", report.gate.failures);
    assert!(report.gate.failures[0].starts_with("the pass rate fell from 100.0% (baseline) to 16.7%"));
    assert!(report.gate.failures[1].starts_with("scorer one fell from 100.0% (baseline) to 16.7%"));

    // max_drop without any baseline is a broken suite, not a silent pass.
    let error = run_suite(&with_drop, &MockTargets::new("x"), Mode::Live, &PricingTable::shipped(), &Quiet, None).await.unwrap_err();
    assert!(error.to_string().contains("needs a baseline"), "{error}");
}

#[test]
fn broken_suites_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_suite(dir.path(), "echo", "[[scorers]]\ntype = \"exact_match\"\n");
    std::fs::write(dir.path().join("cases.jsonl"), "{\"input\": \"a\"}\n{\"inpt\": \"b\"}\n").unwrap();
    let error = Suite::load(&path).unwrap_err().to_string();
    assert!(error.contains("cases.jsonl: line 2: unknown field `inpt`"), "{error}");
    std::fs::write(&path, "target = { agent = \"x\" }\ndataset = \"cases.jsonl\"\n").unwrap();
    assert!(Suite::load(&path).unwrap_err().to_string().contains("at least one [[scorers]]"));
    std::fs::write(&path, "target = { workflow = \"x\" }\ndataset = \"cases.jsonl\"\n").unwrap();
    assert!(Suite::load(&path).unwrap_err().to_string().contains("unknown variant `workflow`"));
}
