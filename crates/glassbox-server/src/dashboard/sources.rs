//! What the Evals, Workflows and Budgets pages read beyond the traces: the eval store, the
//! workflow run store and the server's keys and budgets, plus the small helpers those pages
//! share (the page frame, query-string checks). A source left `None` makes its page say that
//! the server has none, instead of failing.

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use glassbox_store::{EvalStore, RunStore};

use super::access::{Access, Viewer};
use super::pages::Chrome;
use super::params::PRESETS;
use super::{Dashboard, PageError};

/// The stores and state behind the Evals, Workflows and Budgets pages.
#[derive(Clone, Default)]
pub struct PageSources {
    /// Suite runs (`glassbox eval run`) and online scores.
    pub evals: Option<Arc<dyn EvalStore>>,
    /// Workflow run records (and their traces, through the workflow spans).
    pub runs: Option<Arc<dyn RunStore>>,
    /// The API's keys and budgets (what `GET /api/budgets` and `/metrics` report).
    pub access: Option<Arc<crate::access::Access>>,
}

impl std::fmt::Debug for PageSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageSources")
            .field("evals", &self.evals.is_some())
            .field("runs", &self.runs.is_some())
            .field("access", &self.access.is_some())
            .finish()
    }
}

/// Longest free-text filter of these pages (suite, workflow, tenant, run id).
const MAX_TEXT_FILTER: usize = 256;

/// The page frame, as the other pages build it.
pub fn chrome(dashboard: &Dashboard, viewer: &Viewer, active: &'static str) -> Chrome {
    Chrome {
        active,
        open_dev_mode: matches!(dashboard.access, Access::OpenDevelopment),
        signed_in: viewer.signed_in,
        store: dashboard.store_name,
        presets: PRESETS.iter().map(|(name, label, _)| (*name, *label)).collect(),
    }
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

/// The query string as `T`, or a 400 page saying what is malformed.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| PageError::BadRequest(format!("the query string is malformed: {}", rejection.body_text())))
}

/// A trimmed free-text filter; empty is "not set", overlong is a 400 naming the filter.
pub fn text_filter(field: &str, value: Option<&str>) -> Result<Option<String>, PageError> {
    match value.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) if text.chars().count() > MAX_TEXT_FILTER => {
            Err(PageError::BadRequest(format!("the filter `{field}` must be at most {MAX_TEXT_FILTER} characters")))
        }
        Some(text) => Ok(Some(text.to_owned())),
        None => Ok(None),
    }
}

/// A whole number filter in `1..=max`, `default` when unset.
pub fn count_filter(field: &str, value: Option<&str>, default: u32, max: u32) -> Result<u32, PageError> {
    match value.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(default),
        Some(text) => text.parse::<u32>().ok().filter(|count| (1..=max).contains(count)).ok_or_else(|| {
            PageError::BadRequest(format!("the filter `{field}` must be a whole number from 1 to {max}"))
        }),
    }
}

/// `text` cut to `max_chars`, with an ellipsis when cut.
pub fn clip(text: &str, max_chars: usize) -> String {
    let (kept, dropped) = super::format::truncate(text, max_chars);
    if dropped == 0 { kept } else { format!("{kept}… ({dropped} more characters)") }
}
