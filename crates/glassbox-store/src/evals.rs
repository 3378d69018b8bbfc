//! Eval results: suite runs (`eval_runs`, one row per run, and `eval_results`, one row per
//! case and scorer) and online scores (`eval_scores`, one row per scorer on a sampled
//! request, keyed by trace and span). Both backends implement [`EvalStore`].

use async_trait::async_trait;

use crate::backend::StoreError;
use crate::query::TimeRange;

/// One run of an eval suite.
/// Serialized with the store's column names (the ClickHouse tables read and write it as is).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvalRunRow {
    pub run_id: String,
    pub suite: String,
    /// `agent assistant`.
    pub target: String,
    /// `replay`, `record` or `live`.
    pub mode: String,
    #[serde(rename = "StartedAt")]
    pub started_at_ns: i64,
    pub duration_ms: f64,
    pub total: u64,
    pub passed: u64,
    pub errored: u64,
    pub pass_rate: f64,
    pub gate_passed: bool,
}

/// One scorer's verdict on one case of a run.
/// Serialized with the store's column names (the ClickHouse tables read and write it as is).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvalResultRow {
    pub run_id: String,
    pub case_id: String,
    pub scorer: String,
    /// `None` when the scorer (or the case's run) errored.
    pub score: Option<f64>,
    pub passed: bool,
    pub reason: String,
    /// Empty unless the scorer or the run errored.
    pub error: String,
    pub latency_ms: f64,
}

/// One case of a run: what it sent, what came back and what was expected (the dashboard
/// diffs a case's output against the baseline run's).
/// Serialized with the store's column names (the ClickHouse tables read and write it as is).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvalCaseRow {
    pub run_id: String,
    pub case_id: String,
    /// The case's input as the suite gave it (the last user text of a conversation).
    pub input: String,
    /// The text the target answered; empty when the run errored.
    pub output: String,
    /// The case's `expected` value as JSON text; empty when it has none.
    pub expected: String,
    /// Why the case's run failed; empty when it did not.
    pub error: String,
}

/// One online scorer's verdict on one production request.
/// Serialized with the store's column names (the ClickHouse tables read and write it as is).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvalScoreRow {
    #[serde(rename = "Timestamp")]
    pub timestamp_ns: i64,
    pub trace_id: String,
    /// The span whose output was scored (the request's).
    pub span_id: String,
    pub agent: String,
    pub scorer: String,
    pub score: Option<f64>,
    pub passed: bool,
    pub reason: String,
    /// Empty unless the scorer errored, panicked or timed out.
    pub error: String,
}

/// How long before a score's range its request's model calls may have been made, for the
/// tenant filter of [`EvalStore::online_score_summary`]: scorers run after the response.
pub const TENANT_LOOKBACK_NS: i64 = 3_600_000_000_000;

/// Where eval results go; every backend answers identically.
#[async_trait]
pub trait EvalStore: Send + Sync + 'static {
    /// Writes the cases of a run; call before [`EvalStore::insert_eval_run`], which makes the
    /// run visible. Writing the same cases again adds nothing.
    async fn insert_eval_cases(&self, cases: &[EvalCaseRow]) -> Result<(), StoreError>;
    /// The cases of one run, by case id.
    async fn eval_cases(&self, run_id: &str) -> Result<Vec<EvalCaseRow>, StoreError>;
    /// Writes a run and its results. Writing the same run again adds nothing.
    async fn insert_eval_run(&self, run: &EvalRunRow, results: &[EvalResultRow]) -> Result<(), StoreError>;
    /// Writes online scores; rows already written (same trace, span, scorer) are ignored.
    async fn insert_eval_scores(&self, rows: &[EvalScoreRow]) -> Result<(), StoreError>;
    /// The latest runs, newest first, of one suite or of all.
    async fn eval_runs(&self, suite: Option<&str>, limit: u32) -> Result<Vec<EvalRunRow>, StoreError>;
    /// The results of one run, by case then scorer.
    async fn eval_results(&self, run_id: &str) -> Result<Vec<EvalResultRow>, StoreError>;
    /// The online scores of some traces (one trace's page, or a page of the traces list), by
    /// trace id, scorer and span.
    async fn eval_scores(&self, trace_ids: &[String]) -> Result<Vec<EvalScoreRow>, StoreError>;
    /// One run, if it is stored.
    async fn eval_run(&self, run_id: &str) -> Result<Option<EvalRunRow>, StoreError>;
    /// Per-scorer tallies of the runs [`EvalStore::eval_runs`] returns for the same arguments,
    /// by run id then scorer.
    async fn eval_scorer_tallies(&self, suite: Option<&str>, limit: u32) -> Result<Vec<EvalScorerTally>, StoreError>;
    /// Online scores in `range` (on their timestamp) summed by agent and scorer, by agent
    /// then scorer. With `tenant`, only the scores of traces that have a model call (a usage
    /// row) of that tenant made in `range` or up to [`TENANT_LOOKBACK_NS`] before it (scores
    /// carry no tenant; the request's usage rows do).
    async fn online_score_summary(
        &self,
        range: &TimeRange,
        tenant: Option<&str>,
    ) -> Result<Vec<OnlineScoreSummary>, StoreError>;
}

/// One scorer's tally over the cases of one run (the dashboard's pass rate per scorer).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalScorerTally {
    pub run_id: String,
    pub scorer: String,
    /// Cases the scorer judged (errored ones included).
    pub total: u64,
    pub passed: u64,
    /// Cases where the scorer or the case's run errored.
    pub errored: u64,
}

/// Online scores of one agent and scorer summed over a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineScoreSummary {
    pub agent: String,
    pub scorer: String,
    pub scored: u64,
    pub passed: u64,
    pub errored: u64,
    /// Mean of the scores that are not NULL; `None` when every one is.
    pub mean_score: Option<f64>,
}
