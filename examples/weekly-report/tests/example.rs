//! The example without any API key: a quiet week runs straight through; a busy week suspends
//! for approval and finishes once resumed, without fetching again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use glassbox_core::workflow::{Resume, RunOptions, RunOutcome};
use glassbox_providers::MockModel;
use serde_json::{Value, json};
use weekly_report_example::{APPROVAL_THRESHOLD, analyst, analytics_for, weekly_report};

fn input_for(busy: bool) -> Value {
    // Find a user whose week is busy (or quiet) under the deterministic fake numbers.
    (0..1000)
        .map(|n| json!({ "userId": format!("u{n}"), "startDate": "2025-06-02", "endDate": "2025-06-08" }))
        .find(|input| {
            let numbers = analytics_for(input["userId"].as_str().unwrap(), "2025-06-02", "2025-06-08");
            (numbers["visits"].as_u64().unwrap() > APPROVAL_THRESHOLD) == busy
        })
        .unwrap()
}

#[tokio::test]
async fn a_quiet_week_runs_through_and_a_busy_week_waits_for_approval() {
    let workflow = weekly_report(analyst(Arc::new(MockModel::new("mock-echo").unwrap())).unwrap()).unwrap();

    let quiet = workflow.run(input_for(false)).await;
    let RunOutcome::Success(report) = &quiet.outcome else { panic!("{:?}", quiet.outcome) };
    assert_eq!(report["approved"], true);
    assert!(report["summary"].as_str().unwrap().contains("visits"), "{report}");
    assert!(!quiet.snapshot.steps.contains_key("approve"));

    let input = input_for(true);
    let busy = workflow.execute(input.clone(), RunOptions::new("busy")).await;
    let RunOutcome::Suspended(steps) = &busy.outcome else { panic!("{:?}", busy.outcome) };
    assert_eq!(steps[0].0, "approve");
    assert!(workflow.check_resume("approve", &json!({ "approved": "yes" })).is_err());
    let mut options = RunOptions::new("busy");
    options.snapshot = busy.snapshot.clone();
    options.resume = Some(Resume { step: "approve".into(), data: json!({ "approved": false, "note": "too early" }) });
    let resumed = workflow.execute(input, options).await;
    let RunOutcome::Success(report) = &resumed.outcome else { panic!("{:?}", resumed.outcome) };
    assert_eq!(report["approved"], false);
    assert_eq!(resumed.snapshot.steps["fetch"], busy.snapshot.steps["fetch"], "fetch did not run again");

    let bad = workflow.run(json!({ "userId": "u1" })).await;
    assert!(matches!(bad.outcome, RunOutcome::Failed(ref failure) if failure.kind == "workflow_input_invalid"));
}
