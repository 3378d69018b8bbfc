//! [`EvalStore`] on ClickHouse: RowBinary inserts with a deduplication token per write, and
//! reads with `FINAL` so a repeated write (collapsed by ReplacingMergeTree) never shows twice.

use async_trait::async_trait;
use clickhouse::Row;
use serde::Deserialize;

use super::error::Operation;
use super::{ClickHouseBackend, Table};
use crate::backend::StoreError;
use super::sql::Sql;
use crate::evals::{
    EvalCaseRow, EvalResultRow, EvalRunRow, EvalScoreRow, EvalScorerTally, EvalStore, OnlineScoreSummary, TENANT_LOOKBACK_NS,
};
use crate::query::TimeRange;

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
    async fn insert_eval_cases(&self, cases: &[EvalCaseRow]) -> Result<(), StoreError> {
        let Some(first) = cases.first() else { return Ok(()) };
        let keys: Vec<&str> = cases.iter().map(|case| case.case_id.as_str()).collect();
        let token = dedup_token(&[&["eval_cases", &first.run_id], keys.as_slice()].concat());
        self.insert_rows(Table::EvalCases, cases, &token).await
    }

    async fn eval_cases(&self, run_id: &str) -> Result<Vec<EvalCaseRow>, StoreError> {
        let query = self
            .inner
            .client
            .query("SELECT RunId, CaseId, Input, Output, Expected, Error FROM eval_cases FINAL WHERE RunId = ? ORDER BY CaseId")
            .bind(run_id);
        self.timed(Operation::ReadEvals, query.fetch_all::<EvalCaseRow>()).await
    }

    async fn insert_eval_run(&self, run: &EvalRunRow, results: &[EvalResultRow]) -> Result<(), StoreError> {
        // Results first: a run row is only visible once its results are stored.
        if !results.is_empty() {
            self.insert_rows(Table::EvalResults, results, &dedup_token(&["eval_results", &run.run_id])).await?;
        }
        self.insert_rows(Table::EvalRuns, std::slice::from_ref(run), &dedup_token(&["eval_runs", &run.run_id])).await
    }

    async fn insert_eval_scores(&self, rows: &[EvalScoreRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = rows.iter().map(|row| format!("{}/{}/{}", row.trace_id, row.span_id, row.scorer)).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.insert_rows(Table::EvalScores, rows, &dedup_token(&key_refs)).await
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
        self.timed(Operation::ReadEvals, query.fetch_all::<EvalRunRow>()).await
    }

    async fn eval_results(&self, run_id: &str) -> Result<Vec<EvalResultRow>, StoreError> {
        let query = self
            .inner
            .client
            .query("SELECT RunId, CaseId, Scorer, Score, Passed, Reason, Error, LatencyMs FROM eval_results FINAL WHERE RunId = ? ORDER BY CaseId, Scorer")
            .bind(run_id);
        self.timed(Operation::ReadEvals, query.fetch_all::<EvalResultRow>()).await
    }

    async fn eval_run(&self, run_id: &str) -> Result<Option<EvalRunRow>, StoreError> {
        let query = self
            .inner
            .client
            .query(&format!("SELECT {RUN_COLUMNS} FROM eval_runs FINAL WHERE RunId = ? LIMIT 1"))
            .bind(run_id);
        self.timed(Operation::ReadEvals, query.fetch_optional::<EvalRunRow>()).await
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

    async fn eval_scores(&self, trace_ids: &[String]) -> Result<Vec<EvalScoreRow>, StoreError> {
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = self
            .inner
            .client
            .query("SELECT Timestamp, TraceId, SpanId, Agent, Scorer, Score, Passed, Reason, Error FROM eval_scores FINAL WHERE has(?, TraceId) ORDER BY TraceId, Scorer, SpanId")
            .bind(trace_ids);
        self.timed(Operation::ReadEvals, query.fetch_all::<EvalScoreRow>()).await
    }
}
