//! Workflow run state: one [`RunRecord`] per run, saved after every step, read back to resume
//! a run on any process. The store treats the snapshot, input and result as opaque JSON text;
//! the workflow engine gives them meaning.

use async_trait::async_trait;

use crate::backend::StoreError;
use crate::query::TimeRange;

/// The most runs one [`RunStore::list_runs`] call returns.
pub const MAX_RUNS_PAGE: u32 = 1000;

/// A run as stored: the whole row is written on every save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: String,
    pub workflow_id: String,
    /// `pending`, `running`, `suspended`, `success`, `failed` or `canceled`.
    pub status: String,
    /// JSON text.
    pub input: String,
    /// JSON text: the engine's snapshot.
    pub snapshot: String,
    /// JSON text of the result, empty while there is none.
    pub result: String,
    /// Empty unless the run failed.
    pub error: String,
    /// Unix nanoseconds.
    pub created_ns: i64,
    pub updated_ns: i64,
    /// Grows with every save of this run; a save whose version is below the stored one changes
    /// nothing. Writers never reuse a version for other content: saving the same version again
    /// is a retry (which of two equal versions is kept is unspecified).
    pub version: u64,
}

/// Which runs to list; `None` / empty means "any". Newest (by creation) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub workflow_id: Option<String>,
    /// Any of these statuses.
    pub statuses: Vec<String>,
    /// `[from, to)` on the creation time.
    pub created: Option<TimeRange>,
    /// 1 to [`MAX_RUNS_PAGE`].
    pub limit: u32,
}

impl RunFilter {
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.limit == 0 || self.limit > MAX_RUNS_PAGE {
            return Err(StoreError::InvalidQuery {
                message: format!("limit must be 1 to {MAX_RUNS_PAGE}, not {}", self.limit),
            });
        }
        Ok(())
    }
}

pub(crate) fn check_run_ids(run_ids: &[String]) -> Result<(), StoreError> {
    if run_ids.len() > MAX_RUN_TRACES_IDS {
        return Err(StoreError::InvalidQuery {
            message: format!("at most {MAX_RUN_TRACES_IDS} run ids, not {}", run_ids.len()),
        });
    }
    Ok(())
}

/// Workflow run state; both backends answer identically.
#[async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Inserts or replaces the run, unless the stored version is newer.
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Newest first by (created, run id).
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// The traces of these runs: every trace with a workflow span (`invoke_workflow ...`)
    /// whose `glassbox.workflow.run_id` is one of `run_ids` and that started at or after
    /// `since_ns` (a resumed run has one trace per resumption). By run id, then trace start.
    async fn run_traces(&self, run_ids: &[String], since_ns: i64) -> Result<Vec<RunTrace>, StoreError>;
}

/// The most run ids one [`RunStore::run_traces`] call takes.
pub const MAX_RUN_TRACES_IDS: usize = MAX_RUNS_PAGE as usize;

/// One trace of a workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTrace {
    pub run_id: String,
    pub trace_id: String,
    /// The workflow span's start, Unix nanoseconds.
    pub start_ns: i64,
}
