//! [`EvalStore`] on ClickHouse: RowBinary inserts with a deduplication token per write, and
//! reads with `FINAL` so a repeated write (collapsed by ReplacingMergeTree) never shows twice.

use async_trait::async_trait;
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::error::Operation;
use super::{ClickHouseBackend, Table};
use crate::backend::StoreError;
use super::sql::Sql;
use crate::evals::{
    EvalResultRow, EvalRunRow, EvalScoreRow, EvalScorerTally, EvalStore, OnlineScoreSummary, TENANT_LOOKBACK_NS,
};
use crate::query::TimeRange;

#[derive(Row, Serialize, Deserialize)]
struct RunWire {
    #[serde(rename = "RunId")]
    run_id: String,
    #[serde(rename = "Suite")]
    suite: String,
    #[serde(rename = "Target")]
    target: String,
    #[serde(rename = "Mode")]
    mode: String,
    #[serde(rename = "StartedAt")]
    started_at: i64,
    #[serde(rename = "DurationMs")]
    duration_ms: f64,
    #[serde(rename = "Total")]
    total: u64,
    #[serde(rename = "Passed")]
    passed: u64,
    #[serde(rename = "Errored")]
    errored: u64,
    #[serde(rename = "PassRate")]
    pass_rate: f64,
    #[serde(rename = "GatePassed")]
    gate_passed: bool,
}

#[derive(Row, Serialize, Deserialize)]
struct ResultWire {
    #[serde(rename = "RunId")]
    run_id: String,
    #[serde(rename = "CaseId")]
    case_id: String,
    #[serde(rename = "Scorer")]
    scorer: String,
    #[serde(rename = "Score")]
    score: Option<f64>,
    #[serde(rename = "Passed")]
    passed: bool,
    #[serde(rename = "Reason")]
    reason: String,
    #[serde(rename = "Error")]
    error: String,
    #[serde(rename = "LatencyMs")]
    latency_ms: f64,
}

#[derive(Row, Serialize, Deserialize)]
struct ScoreWire {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "TraceId")]
    trace_id: String,
    #[serde(rename = "SpanId")]
    span_id: String,
    #[serde(rename = "Agent")]
    agent: String,
    #[serde(rename = "Scorer")]
    scorer: String,
    #[serde(rename = "Score")]
    score: Option<f64>,
    #[serde(rename = "Passed")]
    passed: bool,
    #[serde(rename = "Reason")]
    reason: String,
    #[serde(rename = "Error")]
    error: String,
}

#[derive(Row, Deserialize)]
struct TallyWire {
    run_id: String,
    scorer: String,
    total: u64,
    passed: u64,
    errored: u64,
}

#[derive(Row, Deserialize)]
struct SummaryWire {
    agent: String,
    scorer: String,
    scored: u64,
    passed: u64,
    errored: u64,
    mean_score: Option<f64>,
}

const TALLY_SELECT: &str = "SELECT RunId AS run_id, toString(Scorer) AS scorer, count() AS total, \
     countIf(Passed) AS passed, countIf(Error != '') AS errored FROM eval_results FINAL WHERE RunId IN (";
const TALLY_TAIL: &str = ") GROUP BY run_id, scorer ORDER BY run_id, scorer";

const RUN_COLUMNS: &str =
    "RunId, Suite, Target, Mode, StartedAt, DurationMs, Total, Passed, Errored, PassRate, GatePassed";

fn dedup_token(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn run_from_wire(row: RunWire) -> EvalRunRow {
    EvalRunRow {
        run_id: row.run_id,
        suite: row.suite,
        target: row.target,
        mode: row.mode,
        started_at_ns: row.started_at,
        duration_ms: row.duration_ms,
        total: row.total,
        passed: row.passed,
        errored: row.errored,
        pass_rate: row.pass_rate,
        gate_passed: row.gate_passed,
    }
}

impl ClickHouseBackend {
    async fn insert_rows<T>(&self, table: Table, rows: &[T], token: &str) -> Result<(), StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        let limit = self.inner.settings.request_timeout;
        self.timed(Operation::InsertEvals, async {
            let mut insert = self
                .inner
                .client
                .insert::<T>(table.name())
                .await?
                .with_setting("insert_deduplication_token", token)
                .with_timeouts(Some(limit), Some(limit));
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
    }
}

#[async_trait]
impl EvalStore for ClickHouseBackend {
    async fn insert_eval_run(&self, run: &EvalRunRow, results: &[EvalResultRow]) -> Result<(), StoreError> {
        let wire: Vec<ResultWire> = results
            .iter()
            .map(|result| ResultWire {
                run_id: result.run_id.clone(),
                case_id: result.case_id.clone(),
                scorer: result.scorer.clone(),
                score: result.score,
                passed: result.passed,
                reason: result.reason.clone(),
                error: result.error.clone(),
                latency_ms: result.latency_ms,
            })
            .collect();
        // Results first: a run row is only visible once its results are stored.
        if !wire.is_empty() {
            self.insert_rows(Table::EvalResults, &wire, &dedup_token(&["eval_results", &run.run_id])).await?;
        }
        let run_wire = RunWire {
            run_id: run.run_id.clone(),
            suite: run.suite.clone(),
            target: run.target.clone(),
            mode: run.mode.clone(),
            started_at: run.started_at_ns,
            duration_ms: run.duration_ms,
            total: run.total,
            passed: run.passed,
            errored: run.errored,
            pass_rate: run.pass_rate,
            gate_passed: run.gate_passed,
        };
        self.insert_rows(Table::EvalRuns, &[run_wire], &dedup_token(&["eval_runs", &run.run_id])).await
    }

    async fn insert_eval_scores(&self, rows: &[EvalScoreRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let wire: Vec<ScoreWire> = rows
            .iter()
            .map(|row| ScoreWire {
                timestamp: row.timestamp_ns,
                trace_id: row.trace_id.clone(),
                span_id: row.span_id.clone(),
                agent: row.agent.clone(),
                scorer: row.scorer.clone(),
                score: row.score,
                passed: row.passed,
                reason: row.reason.clone(),
                error: row.error.clone(),
            })
            .collect();
        let keys: Vec<String> = rows.iter().map(|row| format!("{}/{}/{}", row.trace_id, row.span_id, row.scorer)).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.insert_rows(Table::EvalScores, &wire, &dedup_token(&key_refs)).await
    }

    async fn eval_runs(&self, suite: Option<&str>, limit: u32) -> Result<Vec<EvalRunRow>, StoreError> {
        let query = match suite {
            Some(suite) => self
                .inner
                .client
                .query(&format!("SELECT {RUN_COLUMNS} FROM eval_runs FINAL WHERE Suite = ? ORDER BY StartedAt DESC, RunId DESC LIMIT ?"))
                .bind(suite)
                .bind(limit),
            None => self
                .inner
                .client
                .query(&format!("SELECT {RUN_COLUMNS} FROM eval_runs FINAL ORDER BY StartedAt DESC, RunId DESC LIMIT ?"))
                .bind(limit),
        };
        let rows = self.timed(Operation::ReadEvals, query.fetch_all::<RunWire>()).await?;
        Ok(rows.into_iter().map(run_from_wire).collect())
    }

    async fn eval_results(&self, run_id: &str) -> Result<Vec<EvalResultRow>, StoreError> {
        let query = self
            .inner
            .client
            .query("SELECT RunId, CaseId, Scorer, Score, Passed, Reason, Error, LatencyMs FROM eval_results FINAL WHERE RunId = ? ORDER BY CaseId, Scorer")
            .bind(run_id);
        let rows = self.timed(Operation::ReadEvals, query.fetch_all::<ResultWire>()).await?;
        Ok(rows
            .into_iter()
            .map(|row| EvalResultRow {
                run_id: row.run_id,
                case_id: row.case_id,
                scorer: row.scorer,
                score: row.score,
                passed: row.passed,
                reason: row.reason,
                error: row.error,
                latency_ms: row.latency_ms,
            })
            .collect())
    }

    async fn eval_run(&self, run_id: &str) -> Result<Option<EvalRunRow>, StoreError> {
        let query = self
            .inner
            .client
            .query(&format!("SELECT {RUN_COLUMNS} FROM eval_runs FINAL WHERE RunId = ? LIMIT 1"))
            .bind(run_id);
        let row = self.timed(Operation::ReadEvals, query.fetch_optional::<RunWire>()).await?;
        Ok(row.map(run_from_wire))
    }

    async fn eval_scorer_tallies(&self, suite: Option<&str>, limit: u32) -> Result<Vec<EvalScorerTally>, StoreError> {
        let query = match suite {
            Some(suite) => self
                .inner
                .client
                .query(&format!(
                    "{TALLY_SELECT}SELECT RunId FROM eval_runs FINAL WHERE Suite = ? ORDER BY StartedAt DESC, RunId DESC LIMIT ?{TALLY_TAIL}"
                ))
                .bind(suite)
                .bind(limit),
            None => self
                .inner
                .client
                .query(&format!(
                    "{TALLY_SELECT}SELECT RunId FROM eval_runs FINAL ORDER BY StartedAt DESC, RunId DESC LIMIT ?{TALLY_TAIL}"
                ))
                .bind(limit),
        };
        let rows = self.timed(Operation::ReadEvals, query.fetch_all::<TallyWire>()).await?;
        Ok(rows
            .into_iter()
            .map(|row| EvalScorerTally {
                run_id: row.run_id,
                scorer: row.scorer,
                total: row.total,
                passed: row.passed,
                errored: row.errored,
            })
            .collect())
    }

    async fn online_score_summary(
        &self,
        range: &TimeRange,
        tenant: Option<&str>,
    ) -> Result<Vec<OnlineScoreSummary>, StoreError> {
        let mut sql = Sql::new(
            "SELECT toString(Agent) AS agent, toString(Scorer) AS scorer, count() AS scored, countIf(Passed) AS passed, \
             countIf(Error != '') AS errored, avg(Score) AS mean_score FROM eval_scores FINAL",
        );
        sql.bind(
            " WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND Timestamp < fromUnixTimestamp64Nano(toInt64(?))",
            [range.from_ns.into(), range.to_ns.into()],
        );
        if let Some(tenant) = tenant {
            sql.bind(
                " AND TraceId IN (SELECT TraceId FROM usage WHERE Tenant = ? \
                 AND Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND Timestamp < fromUnixTimestamp64Nano(toInt64(?)))",
                [tenant.into(), range.from_ns.saturating_sub(TENANT_LOOKBACK_NS).into(), range.to_ns.into()],
            );
        }
        sql.push(" GROUP BY agent, scorer ORDER BY agent, scorer");
        let rows = self.timed(Operation::ReadEvals, sql.query(&self.inner.client).fetch_all::<SummaryWire>()).await?;
        Ok(rows
            .into_iter()
            .map(|row| OnlineScoreSummary {
                agent: row.agent,
                scorer: row.scorer,
                scored: row.scored,
                passed: row.passed,
                errored: row.errored,
                mean_score: row.mean_score,
            })
            .collect())
    }

    async fn eval_scores(&self, trace_id: &str) -> Result<Vec<EvalScoreRow>, StoreError> {
        let query = self
            .inner
            .client
            .query("SELECT Timestamp, TraceId, SpanId, Agent, Scorer, Score, Passed, Reason, Error FROM eval_scores FINAL WHERE TraceId = ? ORDER BY Scorer, SpanId")
            .bind(trace_id);
        let rows = self.timed(Operation::ReadEvals, query.fetch_all::<ScoreWire>()).await?;
        Ok(rows
            .into_iter()
            .map(|row| EvalScoreRow {
                timestamp_ns: row.timestamp,
                trace_id: row.trace_id,
                span_id: row.span_id,
                agent: row.agent,
                scorer: row.scorer,
                score: row.score,
                passed: row.passed,
                reason: row.reason,
                error: row.error,
            })
            .collect())
    }
}
