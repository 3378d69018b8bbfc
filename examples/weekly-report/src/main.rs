//! Runs the weekly report once (approving a busy week automatically, as a human would over
//! `resume`), or serves the fake analytics API the config example points at:
//!
//! ```text
//! cargo run -p weekly-report-example -- u-42 2025-06-02 2025-06-08
//! cargo run -p weekly-report-example -- serve-analytics [127.0.0.1:9100]
//! ```

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use anyhow::Context as _;
use glassbox_core::workflow::{Resume, RunOptions, RunOutcome};
use glassbox_providers::MockModel;
use serde_json::json;
use weekly_report_example::{analyst, serve_analytics, weekly_report};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-analytics") {
        let addr = args.get(1).map_or("127.0.0.1:9100", String::as_str);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("while binding {addr}"))?;
        println!("fake analytics API on http://{}/analytics", listener.local_addr()?);
        return serve_analytics(listener).await.context("while serving");
    }
    let user = args.first().map_or("u-42", String::as_str);
    let start = args.get(1).map_or("2025-06-02", String::as_str);
    let end = args.get(2).map_or("2025-06-08", String::as_str);

    // The mock provider answers without any API key; swap in OpenAiModel for a real model.
    let workflow = weekly_report(analyst(Arc::new(MockModel::new("mock-echo")?))?)?;
    let input = json!({ "startDate": start, "endDate": end, "userId": user });
    let mut result = workflow.execute(input.clone(), RunOptions::new("example-run")).await;
    if let RunOutcome::Suspended(steps) = &result.outcome {
        println!("suspended at {}: {}", steps[0].0, steps[0].1);
        let mut options = RunOptions::new("example-run");
        options.snapshot = result.snapshot.clone();
        options.resume = Some(Resume { step: steps[0].0.clone(), data: json!({ "approved": true, "note": "auto" }) });
        result = workflow.execute(input, options).await;
    }
    match result.outcome {
        RunOutcome::Success(report) => println!("{}", serde_json::to_string_pretty(&report)?),
        other => anyhow::bail!("the run did not succeed: {other:?}"),
    }
    Ok(())
}
