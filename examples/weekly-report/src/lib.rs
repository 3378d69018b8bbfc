//! The weekly analytics report as a Rust-defined workflow.
//!
//! Input `{startDate, endDate, userId}`. Steps: `fetch` (the week's numbers; here computed in
//! Rust so the example needs no server, a real one would call your analytics API), `summarize`
//! (an agent writes two sentences), then a branch on the result: a busy week (more than 1000
//! visits) goes to `approve`, which suspends the run until a human resumes it with
//! `{approved, note?}`; a quiet week goes straight on. `report` assembles the answer.
//!
//! With no API key the agent uses the deterministic mock provider, so the example runs
//! anywhere; give it any [`LanguageModel`] to use a real one.

use std::sync::Arc;
use std::time::Duration;

use glassbox_core::workflow::{Condition, Node};
use glassbox_core::{Agent, LanguageModel, Message, RetryPolicy, Step, StepError, Workflow};
use serde_json::{Value, json};

/// Visits above this need a human's approval.
pub const APPROVAL_THRESHOLD: u64 = 1000;

/// Deterministic fake numbers for a user and period: what `fetch` returns and what the fake
/// analytics server answers.
pub fn analytics_for(user_id: &str, start_date: &str, end_date: &str) -> Value {
    let seed = format!("{user_id}|{start_date}|{end_date}")
        .bytes()
        .fold(7u64, |hash, byte| hash.wrapping_mul(31).wrapping_add(u64::from(byte)));
    let visits = 200 + seed % 2000;
    json!({ "userId": user_id, "visits": visits, "signups": visits / 37, "bounceRate": (seed % 60) as f64 / 100.0 })
}

/// The summarizing agent on `model`.
pub fn analyst(model: Arc<dyn LanguageModel>) -> anyhow::Result<Agent> {
    Ok(Agent::builder("analyst", model)
        .instructions("Summarize the week's analytics numbers for the account manager in two sentences.")
        .build()?)
}

/// The workflow.
pub fn weekly_report(analyst: Agent) -> anyhow::Result<Workflow> {
    let fetch = Step::new("fetch", |context| async move {
        let field = |name: &str| context.input[name].as_str().unwrap_or_default().to_owned();
        Ok(analytics_for(&field("userId"), &field("startDate"), &field("endDate")))
    })
    .description("The week's numbers from the analytics API")
    .output_schema(json!({ "type": "object", "required": ["visits", "signups"] }));

    let summarize = Step::new("summarize", move |context| {
        let analyst = analyst.clone();
        async move {
            let prompt = format!("Numbers for user {}: {}", context.workflow_input["userId"], context.input);
            let output = analyst
                .generate(vec![Message::user(prompt)], Default::default())
                .await
                .map_err(|error| StepError::with_source("the analyst failed", error))?;
            Ok(json!({ "summary": output.text, "visits": context.input["visits"] }))
        }
    })
    // A model call can fail for a moment: two more attempts, 500 ms apart, then 1 s.
    .retry(RetryPolicy::new(3, Duration::from_millis(500)));

    let approve = Step::new("approve", |context| async move {
        match &context.resume_data {
            None => Err(context.suspend(json!({
                "reason": "busy week: check the summary before it goes out",
                "summary": context.input["summary"],
            }))),
            Some(decision) => Ok(json!({
                "summary": context.input["summary"],
                "visits": context.input["visits"],
                "approved": decision["approved"],
                "note": decision.get("note").cloned().unwrap_or(Value::Null),
            })),
        }
    })
    .resume_schema(json!({
        "type": "object",
        "properties": { "approved": { "type": "boolean" }, "note": { "type": "string" } },
        "required": ["approved"]
    }));

    let busy: Condition = Arc::new(|value: &Value| value["visits"].as_u64().unwrap_or(0) > APPROVAL_THRESHOLD);
    Ok(Workflow::builder("weekly_report")
        .description("Fetch a user's weekly numbers, summarize them, and ask for approval on busy weeks")
        .input_schema(json!({
            "type": "object",
            "properties": { "startDate": { "type": "string" }, "endDate": { "type": "string" }, "userId": { "type": "string" } },
            "required": ["startDate", "endDate", "userId"]
        }))
        .default_timeout(Duration::from_secs(60))
        .then(fetch)
        .then(summarize)
        .branch([(busy, Node::from(approve))])
        .map(|context| {
            Ok(json!({
                "userId": context.workflow_input["userId"],
                "period": format!("{} to {}", context.workflow_input["startDate"].as_str().unwrap_or(""), context.workflow_input["endDate"].as_str().unwrap_or("")),
                "numbers": context.outputs.get("fetch"),
                "summary": context.input["summary"],
                "approved": context.input.get("approved").cloned().unwrap_or(Value::Bool(true)),
            }))
        })
        .build()?)
}

/// A fake analytics API for the config example (`POST /analytics` with `{userId, startDate,
/// endDate}`), on `listener`.
pub async fn serve_analytics(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/analytics",
        axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
            let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            axum::Json(analytics_for(&field("userId"), &field("startDate"), &field("endDate")))
        }),
    );
    axum::serve(listener, app).await
}
