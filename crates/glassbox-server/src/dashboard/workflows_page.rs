//! The Workflows page (`/dashboard/workflows`): workflow runs created in the chosen range,
//! newest first, with their status, timing, result or error, and links to their traces (a
//! run has one trace per start or resumption, found through its `invoke_workflow` spans).
//!
//! Access: run records carry no tenant, so the page needs an admin viewer.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use glassbox_store::{RunFilter, RunStore};
use serde::Deserialize;

use super::access::Viewer;
use super::pages::Chrome;
use super::params::{PageQuery, Window};
use super::sources::{self, clip};
use super::{Dashboard, PageError, format, render};

/// The statuses a run record can have, in the order the page counts them.
pub const STATUSES: [&str; 6] = ["pending", "running", "suspended", "success", "failed", "canceled"];
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = glassbox_store::runs::MAX_RUNS_PAGE;
/// Characters of a run's result or error shown in the table.
const MAX_TEXT_CHARS: usize = 300;
/// A run's first trace starts after its record is created; this much earlier is still looked
/// at, for clock differences between processes.
const TRACE_SLACK_NS: i64 = 60_000_000_000;

#[derive(Debug, Default, Deserialize)]
pub struct WorkflowsQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

pub struct TraceLink {
    pub href: String,
    /// The first 8 characters, as the link text.
    pub short: String,
}

pub struct RunView {
    pub run_id: String,
    pub workflow: String,
    pub status: String,
    pub status_class: &'static str,
    pub created: String,
    pub updated: String,
    pub duration: String,
    pub result: String,
    pub error: String,
    pub traces: Vec<TraceLink>,
}

pub struct StatusCount {
    pub status: &'static str,
    pub count: usize,
}

#[derive(Template)]
#[template(path = "workflows.html")]
pub struct WorkflowsPage {
    chrome: Chrome,
    window: Window,
    workflow: String,
    status: String,
    statuses: [&'static str; 6],
    limit: u32,
    runs: Vec<RunView>,
    counts: Vec<StatusCount>,
    total: usize,
}

fn status_class(status: &str) -> &'static str {
    match status {
        "success" => "ok",
        "failed" => "error",
        _ => "unset",
    }
}

pub async fn workflows(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    page_query: Result<Query<PageQuery>, QueryRejection>,
    workflows_query: Result<Query<WorkflowsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let page_query = sources::query(page_query)?;
    let workflows_query = sources::query(workflows_query)?;
    let window = Window::parse(&page_query, sources::now_ns())?;
    let workflow = sources::text_filter("workflow", workflows_query.workflow.as_deref())?;
    let status = match workflows_query.status.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        None | Some("any") => None,
        Some(status) => Some(STATUSES.iter().find(|known| **known == status).copied().ok_or_else(|| {
            PageError::BadRequest(format!("the filter `status` must be any or one of {}", STATUSES.join(", ")))
        })?),
    };
    let limit = sources::count_filter("limit", workflows_query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let store: &dyn RunStore = dashboard
        .sources
        .runs
        .as_deref()
        .ok_or_else(|| PageError::NotFound("this server has no workflow run store".into()))?;
    let filter = RunFilter {
        workflow_id: workflow.clone(),
        statuses: status.map(|status| vec![status.to_owned()]).unwrap_or_default(),
        created: Some(window.range),
        limit,
    };
    let runs = store.list_runs(&filter).await?;
    let run_ids: Vec<String> = runs.iter().map(|run| run.run_id.clone()).collect();
    let since =
        runs.iter().map(|run| run.created_ns).min().unwrap_or(window.range.from_ns).saturating_sub(TRACE_SLACK_NS);
    let traces = store.run_traces(&run_ids, since).await?;
    let mut traces_by_run: BTreeMap<&str, Vec<TraceLink>> = BTreeMap::new();
    for trace in &traces {
        traces_by_run.entry(trace.run_id.as_str()).or_default().push(TraceLink {
            href: format!("/dashboard/traces/{}", trace.trace_id),
            short: trace.trace_id.chars().take(8).collect(),
        });
    }
    let counts = STATUSES
        .iter()
        .map(|status| StatusCount { status, count: runs.iter().filter(|run| run.status == *status).count() })
        .collect();
    let views = runs
        .iter()
        .map(|run| RunView {
            run_id: run.run_id.clone(),
            workflow: run.workflow_id.clone(),
            status: run.status.clone(),
            status_class: status_class(&run.status),
            created: format::utc_time(run.created_ns),
            updated: format::utc_time(run.updated_ns),
            duration: format::duration(u64::try_from(run.updated_ns.saturating_sub(run.created_ns)).unwrap_or(0)),
            result: clip(&run.result, MAX_TEXT_CHARS),
            error: clip(&run.error, MAX_TEXT_CHARS),
            traces: traces_by_run.remove(run.run_id.as_str()).unwrap_or_default(),
        })
        .collect();
    let page = WorkflowsPage {
        chrome: sources::chrome(&dashboard, &viewer, "workflows"),
        workflow: workflow.unwrap_or_default(),
        status: status.unwrap_or("any").to_owned(),
        statuses: STATUSES,
        limit,
        total: runs.len(),
        runs: views,
        counts,
        window,
    };
    Ok(render(StatusCode::OK, &page))
}
