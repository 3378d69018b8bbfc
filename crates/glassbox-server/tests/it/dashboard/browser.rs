//! Every page in real headless Chromium (Debian's `chromium`), driven by
//! `tests/browser/dashboard.mjs` through playwright-core: figures against the seeded data, a
//! link from the table to a trace, a filter through the form, the hostile trace inert, no
//! console errors. Screenshots land in `target/dashboard-screenshots/<store>/`.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`), Node, and `tests/browser/node_modules`;
//! `tests/run.sh` installs them. Missing, the test fails saying what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use glassbox_server::dashboard::{Access, format};
use serde_json::json;

use super::seed::{self, HOSTILE_AGENT, HOSTILE_TRACE_ID};
use super::seed_pages;
use super::{ADMIN_TOKEN, DashboardApp, Kind, spawn_seeded};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn screenshots_dir(kind: Kind) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("dashboard-screenshots").join(match kind {
        Kind::Sqlite => "sqlite",
        Kind::ClickHouse => "clickhouse",
    })
}

fn expectations(app: &DashboardApp) -> serde_json::Value {
    let expect = &app.expect;
    let newest = expect.newest_first();
    let trace_id = &newest[0];
    let filter_agent = seed::AGENTS[0];
    let filter_count = expect.error_traces_by_agent[filter_agent];
    assert!(
        filter_count > 0 && filter_count < expect.traces_by_agent[filter_agent],
        "the filter must narrow the table"
    );
    json!({
        "requests": expect.traces.to_string(),
        "error_rate": format::percent(expect.error_traces, expect.traces),
        "blocked": expect.blocked.to_string(),
        "refused": expect.refused.to_string(),
        "cost": format::usd(expect.cost_nano_usd),
        "p50": format::millis(expect.duration_quantile_ms(0.5)),
        "first_page": newest[..50],
        "second_page_first": newest[50],
        "filter_agent": filter_agent,
        "filter_count": filter_count,
        "trace": {
            "id": trace_id,
            "span_count": expect.spans_by_trace[trace_id].to_string(),
            "cost": format::usd(expect.cost_by_trace[trace_id]),
        },
        "hostile": { "id": HOSTILE_TRACE_ID, "agent": HOSTILE_AGENT },
        "cost_total": format::usd(expect.usage_cost_nano_usd),
        "calls": expect.calls.to_string(),
        "agents": seed::AGENTS,
        "pages": pages_expectations(app),
    })
}

/// The Evals, Workflows and Budgets pages' figures.
fn pages_expectations(app: &DashboardApp) -> serde_json::Value {
    let pages = &app.pages;
    let (run_id, trace_ids) = &pages.traced_runs[0];
    json!({
        "suite": seed_pages::SUITE,
        "runs": pages.run_ids.len() + 1,
        "latest_run": pages.run_ids.last(),
        "latest_pass_rate": pages.pass_rates.last(),
        "regressions": pages.latest_regressions.to_string(),
        "fixes": pages.latest_fixes.to_string(),
        "online_scored": pages.online_scored.to_string(),
        "workflow_runs": pages.workflow_runs.to_string(),
        "failed_runs": pages.failed_runs.to_string(),
        "traced_run": run_id,
        "traced_trace": trace_ids[0],
        "acme_day_tokens": pages.acme_day_tokens,
        "acme_day_percent": pages.acme_day_percent,
        "secret": seed_pages::SECRET,
    })
}

async fn run_in_chromium(kind: Kind, access: Access, token: Option<&str>) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(Path::new(&chromium).exists(), "{chromium} is missing: apt-get install -y chromium (tests/run.sh does it)");
    let browser_dir = workspace_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: npm ci --prefix tests/browser (tests/run.sh does it)"
    );
    let app = spawn_seeded(kind, 130, access).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let expect_file = scratch.path().join("expect.json");
    std::fs::write(&expect_file, serde_json::to_vec_pretty(&expectations(&app)).expect("json"))
        .expect("write expectations");
    let shots = screenshots_dir(kind);
    let mut command = Command::new("node");
    command
        .arg(browser_dir.join("dashboard.mjs"))
        .current_dir(&browser_dir)
        .env("GLASSBOX_DASHBOARD_URL", app.url(""))
        .env("GLASSBOX_DASHBOARD_EXPECT", &expect_file)
        .env("GLASSBOX_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium);
    if let Some(token) = token {
        command.env("GLASSBOX_ADMIN_TOKEN", token);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("node must be installed to run the browser tests");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    for page in [
        "overview",
        "traces",
        "traces-filtered",
        "trace",
        "trace-hostile",
        "cost",
        "latency",
        "evals",
        "eval-run",
        "workflows",
        "budgets",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot of {page}");
    }
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_chromium_on_sqlite_signed_in_through_the_form() {
    run_in_chromium(Kind::Sqlite, Access::with_token(ADMIN_TOKEN), Some(ADMIN_TOKEN)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_chromium_on_clickhouse_in_open_development_mode() {
    run_in_chromium(Kind::ClickHouse, Access::OpenDevelopment, None).await;
}
