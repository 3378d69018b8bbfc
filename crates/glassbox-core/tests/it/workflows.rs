//! The workflow engine: every control-flow construct, retries, timeouts, schema checks,
//! suspension and resumption from a snapshot, and replay that skips completed steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use glassbox_core::workflow::{Condition, Node, Resume, RunOptions, RunOutcome, StepStatus};
use glassbox_core::{RetryPolicy, Step, StepError, Workflow};
use serde_json::{Value, json};

fn add(id: &str, amount: i64) -> Step {
    Step::new(id, move |context| async move {
        let n = context.input.as_i64().ok_or_else(|| StepError::failed("not a number"))?;
        Ok(json!(n + amount))
    })
}

fn success(outcome: &RunOutcome) -> &Value {
    match outcome {
        RunOutcome::Success(value) => value,
        other => panic!("expected success, got {other:?}"),
    }
}

fn failure(outcome: &RunOutcome) -> (&str, &'static str, &str) {
    match outcome {
        RunOutcome::Failed(failure) => (failure.step.as_str(), failure.kind, failure.message.as_str()),
        other => panic!("expected failure, got {other:?}"),
    }
}

#[tokio::test]
async fn then_and_map_chain_outputs() {
    let workflow = Workflow::builder("chain")
        .then(add("one", 1))
        .map(|context| {
            Ok(json!({ "value": context.input, "original": context.workflow_input, "one": context.outputs["one"] }))
        })
        .then(Step::new("read", |context| async move { Ok(json!(context.input["value"].as_i64().unwrap() * 10)) }))
        .build()
        .unwrap();
    let result = workflow.run(json!(4)).await;
    assert_eq!(success(&result.outcome), &json!(50));
    assert_eq!(result.snapshot.steps["one"].output, Some(json!(5)));
    assert_eq!(result.snapshot.steps["read"].input, json!({ "value": 5, "original": 4, "one": 5 }));
}

#[tokio::test]
async fn parallel_runs_children_at_once_and_keys_outputs_by_id() {
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let slow = |id: &str| {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        Step::new(id, move |context| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(json!(format!("{}:{}", context.step_key, context.input)))
            }
        })
    };
    let workflow = Workflow::builder("fan").parallel([slow("a"), slow("b"), slow("c")]).build().unwrap();
    let result = workflow.run(json!(1)).await;
    assert_eq!(success(&result.outcome), &json!({ "a": "a:1", "b": "b:1", "c": "c:1" }));
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn branch_takes_the_first_matching_arm_or_passes_through() {
    let big: Condition = Arc::new(|value: &Value| value.as_i64().unwrap_or(0) > 10);
    let positive: Condition = Arc::new(|value: &Value| value.as_i64().unwrap_or(0) > 0);
    let workflow = Workflow::builder("branchy")
        .branch([(big, Node::from(add("big", 1000))), (positive, Node::from(add("positive", 100)))])
        .build()
        .unwrap();
    assert_eq!(success(&workflow.run(json!(50)).await.outcome), &json!(1050));
    // 50 matches both; only the first ran.
    let result = workflow.run(json!(50)).await;
    assert!(!result.snapshot.steps.contains_key("positive"));
    assert_eq!(success(&workflow.run(json!(5)).await.outcome), &json!(105));
    let none = workflow.run(json!(-1)).await;
    assert_eq!(success(&none.outcome), &json!(-1));
    assert!(none.snapshot.steps.is_empty());
}

#[tokio::test]
async fn foreach_keeps_order_and_respects_the_concurrency_limit() {
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
    let square = Step::new("square", move |context| {
        let (running, peak) = (Arc::clone(&r), Arc::clone(&p));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let n = context.input.as_i64().unwrap();
            // Later items finish first, so order must come from the engine.
            tokio::time::sleep(Duration::from_millis(u64::try_from(40 - 4 * n).unwrap())).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(json!(n * n))
        }
    });
    let workflow = Workflow::builder("each").foreach(square, 2).build().unwrap();
    let result = workflow.run(json!([1, 2, 3, 4, 5, 6])).await;
    assert_eq!(success(&result.outcome), &json!([1, 4, 9, 16, 25, 36]));
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(result.snapshot.steps["square[5]"].output, Some(json!(36)));

    let not_array = workflow.run(json!({ "x": 1 })).await;
    let (_, kind, message) = failure(&not_array.outcome);
    assert_eq!(kind, "foreach_input");
    assert!(message.contains("an object"), "{message}");
}

#[tokio::test]
async fn dowhile_and_dountil_loop_and_stop_at_the_cap() {
    let workflow =
        Workflow::builder("while").dowhile(add("inc", 1), |value| value.as_i64().unwrap() < 5, 10).build().unwrap();
    let result = workflow.run(json!(0)).await;
    assert_eq!(success(&result.outcome), &json!(5));
    assert_eq!(result.snapshot.steps.len(), 5);
    assert!(result.snapshot.steps.contains_key("inc#5"));

    // dowhile runs the body at least once even when the condition is false at the start.
    assert_eq!(success(&workflow.run(json!(100)).await.outcome), &json!(101));

    let until =
        Workflow::builder("until").dountil(add("double", 3), |value| value.as_i64().unwrap() >= 9, 10).build().unwrap();
    assert_eq!(success(&until.run(json!(0)).await.outcome), &json!(9));

    let capped =
        Workflow::builder("capped").dountil(add("never", 1), |value| value.as_i64().unwrap() < 0, 3).build().unwrap();
    let result = capped.run(json!(0)).await;
    let (_, kind, _) = failure(&result.outcome);
    assert_eq!(kind, "loop_limit");
    assert_eq!(result.snapshot.steps.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn sleep_waits_and_is_recorded() {
    let workflow =
        Workflow::builder("nap").then(add("a", 1)).sleep(Duration::from_secs(3600)).then(add("b", 1)).build().unwrap();
    let started = tokio::time::Instant::now();
    let result = workflow.run(json!(0)).await;
    assert_eq!(success(&result.outcome), &json!(2));
    assert!(started.elapsed() >= Duration::from_secs(3600));
    assert_eq!(result.snapshot.steps["sleep_1"].status, StepStatus::Success);

    // Continuing from the snapshot does not sleep again.
    let again = tokio::time::Instant::now();
    let mut options = RunOptions::new("again");
    options.snapshot = result.snapshot.clone();
    options.snapshot.steps.remove("b");
    let replay = workflow.execute(json!(0), options).await;
    assert_eq!(success(&replay.outcome), &json!(2));
    assert!(again.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn retries_with_backoff_until_success_or_attempts_run_out() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let flaky = Step::new("flaky", move |context| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if context.attempt < 3 {
                Err(StepError::failed(format!("attempt {} broke", context.attempt)))
            } else {
                Ok(json!("ok"))
            }
        }
    });
    let workflow = Workflow::builder("retry")
        .default_retry(RetryPolicy::new(3, Duration::from_secs(1)))
        .then(flaky.clone())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let result = workflow.run(Value::Null).await;
    assert_eq!(success(&result.outcome), &json!("ok"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(result.snapshot.steps["flaky"].attempts, 3);
    // Backoff 1 s then 2 s.
    assert!(started.elapsed() >= Duration::from_secs(3));

    // The step's own policy overrides the default: two attempts are not enough.
    calls.store(0, Ordering::SeqCst);
    let workflow = Workflow::builder("retry2")
        .default_retry(RetryPolicy::new(5, Duration::from_millis(10)))
        .then(flaky.retry(RetryPolicy::new(2, Duration::from_millis(10))))
        .build()
        .unwrap();
    let result = workflow.run(Value::Null).await;
    let (step, kind, message) = failure(&result.outcome);
    assert_eq!((step, kind), ("flaky", "step_failed"));
    assert!(message.contains("after 2 attempt(s)") && message.contains("attempt 2 broke"), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(result.snapshot.steps["flaky"].status, StepStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn timeouts_fail_an_attempt_and_are_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let slow = Step::new("slow", move |context| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if context.attempt == 1 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(json!(context.attempt))
        }
    });
    let workflow = Workflow::builder("timeouts")
        .default_timeout(Duration::from_secs(5))
        .then(slow.clone().retry(RetryPolicy::new(2, Duration::ZERO)))
        .build()
        .unwrap();
    assert_eq!(success(&workflow.run(Value::Null).await.outcome), &json!(2));

    let workflow = Workflow::builder("timeouts2").then(slow.timeout(Duration::from_secs(1))).build().unwrap();
    calls.store(0, Ordering::SeqCst);
    let result = workflow.run(Value::Null).await;
    let (_, kind, message) = failure(&result.outcome);
    assert_eq!(kind, "timeout");
    assert!(message.contains("timed out after 1s"), "{message}");
}

#[tokio::test]
async fn schemas_are_checked_at_run_time() {
    let typed = Step::new("typed", |context| async move { Ok(json!({ "count": context.input["n"] })) })
        .input_schema(json!({ "type": "object", "properties": { "n": { "type": "integer" } }, "required": ["n"] }))
        .output_schema(json!({ "type": "object", "properties": { "count": { "type": "integer", "maximum": 10 } } }));
    let workflow = Workflow::builder("typed")
        .input_schema(json!({ "type": "object", "required": ["n"] }))
        .then(typed)
        .build()
        .unwrap();
    assert_eq!(success(&workflow.run(json!({ "n": 3 })).await.outcome), &json!({ "count": 3 }));

    let (_, kind, _) = failure(&workflow.run(json!({})).await.outcome);
    assert_eq!(kind, "workflow_input_invalid");
    assert_eq!(workflow.check_input(&json!({})).unwrap_err().path, "");

    let wrong = workflow.run(json!({ "n": "three" })).await;
    let (step, kind, message) = failure(&wrong.outcome);
    assert_eq!((step, kind), ("typed", "input_invalid"));
    assert!(message.contains("/n"), "{message}");

    let result = workflow.run(json!({ "n": 11 })).await;
    let (_, kind, message) = failure(&result.outcome);
    assert_eq!(kind, "output_invalid");
    assert!(message.contains("/count"), "{message}");
    assert_eq!(result.snapshot.steps["typed"].output, Some(json!({ "count": 11 })));

    let bad = Workflow::builder("bad")
        .then(Step::new("x", |_| async { Ok(Value::Null) }).input_schema(json!({ "type": 7 })))
        .build();
    assert!(bad.is_err());
    let duplicate = Workflow::builder("dup").then(add("x", 1)).then(add("x", 2)).build();
    assert!(duplicate.unwrap_err().to_string().contains("used twice"));
}

#[tokio::test]
async fn suspend_then_resume_from_the_snapshot_runs_no_completed_step_again() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let counted = Step::new("prepare", move |context| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok(json!({ "amount": context.input["amount"] })) }
    });
    let approve = Step::new("approve", |context| async move {
        match context.resume_data {
            None => Err(context.suspend(json!({ "question": "approve?", "amount": context.input["amount"] }))),
            Some(data) => Ok(json!({ "approved": data["approved"], "by": data["by"] })),
        }
    })
    .resume_schema(
        json!({ "type": "object", "properties": { "approved": { "type": "boolean" } }, "required": ["approved"] }),
    );
    let workflow =
        Workflow::builder("approval").then(counted).then(approve).then(add("never-a-number", 0)).build().unwrap();

    let first = workflow.execute(json!({ "amount": 12 }), RunOptions::new("r1")).await;
    assert_eq!(
        first.outcome,
        RunOutcome::Suspended(vec![("approve".into(), json!({ "question": "approve?", "amount": 12 }))])
    );
    assert_eq!(first.snapshot.steps["approve"].status, StepStatus::Suspended);

    assert!(workflow.check_resume("approve", &json!({ "approved": "yes" })).is_err());
    assert!(workflow.check_resume("approve", &json!({ "approved": true })).is_ok());

    // Resuming through the stored form of the snapshot, as another process would.
    let stored = first.snapshot.to_json().to_string();
    let snapshot = glassbox_core::workflow::RunSnapshot::from_json(&serde_json::from_str(&stored).unwrap()).unwrap();
    assert_eq!(snapshot, first.snapshot);
    let mut options = RunOptions::new("r1");
    options.snapshot = snapshot;
    options.resume = Some(Resume { step: "approve".into(), data: json!({ "approved": true, "by": "ann" }) });
    let workflow = Workflow::builder("approval2")
        .then(Step::new("prepare", |_| async { Err(StepError::failed("must not run again")) }))
        .then(workflow.step("approve").unwrap().as_ref().clone())
        .map(|context| Ok(context.input["approved"].clone()))
        .build()
        .unwrap();
    let second = workflow.execute(json!({ "amount": 12 }), options).await;
    assert_eq!(success(&second.outcome), &json!(true));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(second.snapshot.steps["approve"].resume_data, Some(json!({ "approved": true, "by": "ann" })));
    assert!(second.snapshot.version > first.snapshot.version);
}

#[tokio::test]
async fn a_suspended_step_inside_parallel_suspends_the_run_and_siblings_complete() {
    let wait = Step::new("wait", |context| async move {
        match context.resume_data {
            None => Err(context.suspend(json!("need data"))),
            Some(data) => Ok(data),
        }
    });
    let workflow = Workflow::builder("mixed").parallel([add("quick", 1), wait]).build().unwrap();
    let first = workflow.run(json!(1)).await;
    assert!(matches!(first.outcome, RunOutcome::Suspended(ref steps) if steps.len() == 1 && steps[0].0 == "wait"));
    assert_eq!(first.snapshot.steps["quick"].status, StepStatus::Success);
    let mut options = RunOptions::new("x");
    options.snapshot = first.snapshot;
    options.resume = Some(Resume { step: "wait".into(), data: json!("given") });
    let second = workflow.execute(json!(1), options).await;
    assert_eq!(success(&second.outcome), &json!({ "quick": 2, "wait": "given" }));
}
