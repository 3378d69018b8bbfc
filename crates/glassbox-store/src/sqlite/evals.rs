//! [`EvalStore`] on SQLite: `INSERT OR IGNORE` on the natural keys, so a repeated write adds
//! nothing.

use async_trait::async_trait;
use rusqlite::{Connection, Row, TransactionBehavior, params};

use super::{SqliteBackend, store_error};
use crate::backend::StoreError;
use crate::evals::{
    EvalCaseRow, EvalResultRow, EvalRunRow, EvalScoreRow, EvalScorerTally, EvalStore, OnlineScoreSummary, TENANT_LOOKBACK_NS,
};
use crate::query::TimeRange;

const INSERT_RUN: &str = "INSERT OR IGNORE INTO eval_runs (RunId, Suite, Target, Mode, StartedAt, DurationMs, Total, \
     Passed, Errored, PassRate, GatePassed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const INSERT_RESULT: &str = "INSERT OR IGNORE INTO eval_results (RunId, CaseId, Scorer, Score, Passed, Reason, Error, \
     LatencyMs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const INSERT_SCORE: &str = "INSERT OR IGNORE INTO eval_scores (Timestamp, TraceId, SpanId, Agent, Scorer, Score, \
     Passed, Reason, Error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const INSERT_CASE: &str = "INSERT OR IGNORE INTO eval_cases (RunId, CaseId, Input, Output, Expected, Error) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const SELECT_CASES: &str =
    "SELECT RunId, CaseId, Input, Output, Expected, Error FROM eval_cases WHERE RunId = ?1 ORDER BY CaseId";
const RUN_COLUMNS: &str =
    "RunId, Suite, Target, Mode, StartedAt, DurationMs, Total, Passed, Errored, PassRate, GatePassed";
const SELECT_RESULTS: &str = "SELECT RunId, CaseId, Scorer, Score, Passed, Reason, Error, LatencyMs FROM eval_results \
     WHERE RunId = ?1 ORDER BY CaseId, Scorer";
const SELECT_SCORES: &str = "SELECT Timestamp, TraceId, SpanId, Agent, Scorer, Score, Passed, Reason, Error FROM \
     eval_scores WHERE TraceId IN (SELECT value FROM json_each(?1)) ORDER BY TraceId, Scorer, SpanId";

const SELECT_TALLIES_OF_SUITE: &str = "SELECT r.RunId, r.Scorer, COUNT(*), SUM(r.Passed), \
     SUM(CASE WHEN r.Error <> '' THEN 1 ELSE 0 END) FROM eval_results r JOIN (SELECT RunId FROM eval_runs WHERE Suite = ?1 \
     ORDER BY StartedAt DESC, RunId DESC LIMIT ?2) latest ON latest.RunId = r.RunId GROUP BY r.RunId, r.Scorer \
     ORDER BY r.RunId, r.Scorer";
const SELECT_TALLIES: &str = "SELECT r.RunId, r.Scorer, COUNT(*), SUM(r.Passed), \
     SUM(CASE WHEN r.Error <> '' THEN 1 ELSE 0 END) FROM eval_results r JOIN (SELECT RunId FROM eval_runs \
     ORDER BY StartedAt DESC, RunId DESC LIMIT ?1) latest ON latest.RunId = r.RunId GROUP BY r.RunId, r.Scorer \
     ORDER BY r.RunId, r.Scorer";
const SELECT_ONLINE_SUMMARY: &str = "SELECT Agent, Scorer, COUNT(*), SUM(Passed), \
     SUM(CASE WHEN Error <> '' THEN 1 ELSE 0 END), AVG(Score) FROM eval_scores WHERE Timestamp >= ?1 AND Timestamp < ?2 \
     GROUP BY Agent, Scorer ORDER BY Agent, Scorer";
const SELECT_ONLINE_SUMMARY_OF_TENANT: &str = "SELECT Agent, Scorer, COUNT(*), SUM(Passed), \
     SUM(CASE WHEN Error <> '' THEN 1 ELSE 0 END), AVG(Score) FROM eval_scores WHERE Timestamp >= ?1 AND Timestamp < ?2 \
     AND TraceId IN (SELECT TraceId FROM usage WHERE Tenant = ?3 AND Timestamp >= ?4 AND Timestamp < ?2) \
     GROUP BY Agent, Scorer ORDER BY Agent, Scorer";

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn tally_row(row: &Row<'_>) -> rusqlite::Result<EvalScorerTally> {
    Ok(EvalScorerTally {
        run_id: row.get(0)?,
        scorer: row.get(1)?,
        total: unsigned(row.get(2)?),
        passed: unsigned(row.get(3)?),
        errored: unsigned(row.get(4)?),
    })
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn run_row(row: &Row<'_>) -> rusqlite::Result<EvalRunRow> {
    Ok(EvalRunRow {
        run_id: row.get(0)?,
        suite: row.get(1)?,
        target: row.get(2)?,
        mode: row.get(3)?,
        started_at_ns: row.get(4)?,
        duration_ms: row.get(5)?,
        total: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
        passed: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
        errored: u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0),
        pass_rate: row.get(9)?,
        gate_passed: row.get(10)?,
    })
}

fn insert_run(connection: &mut Connection, run: &EvalRunRow, results: &[EvalResultRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    transaction
        .execute(
            INSERT_RUN,
            params![
                run.run_id,
                run.suite,
                run.target,
                run.mode,
                run.started_at_ns,
                run.duration_ms,
                count(run.total),
                count(run.passed),
                count(run.errored),
                run.pass_rate,
                run.gate_passed
            ],
        )
        .map_err(store_error)?;
    {
        let mut insert = transaction.prepare_cached(INSERT_RESULT).map_err(store_error)?;
        for result in results {
            insert
                .execute(params![
                    result.run_id,
                    result.case_id,
                    result.scorer,
                    result.score,
                    result.passed,
                    result.reason,
                    result.error,
                    result.latency_ms
                ])
                .map_err(store_error)?;
        }
    }
    transaction.commit().map_err(store_error)
}

fn insert_cases(connection: &mut Connection, cases: &[EvalCaseRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    {
        let mut insert = transaction.prepare_cached(INSERT_CASE).map_err(store_error)?;
        for case in cases {
            insert
                .execute(params![case.run_id, case.case_id, case.input, case.output, case.expected, case.error])
                .map_err(store_error)?;
        }
    }
    transaction.commit().map_err(store_error)
}

fn insert_scores(connection: &mut Connection, rows: &[EvalScoreRow]) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    {
        let mut insert = transaction.prepare_cached(INSERT_SCORE).map_err(store_error)?;
        // Online scores come in groups of up to 500 rows (a second's worth): as long a stretch
        // on a core as a span batch, so the writer offers its core as often as for usage rows
        // (a score row writes three B-trees, a usage row four).
        for (index, row) in rows.iter().enumerate() {
            super::write::offer_the_core(index, super::write::YIELD_EVERY_USAGE);
            insert
                .execute(params![
                    row.timestamp_ns,
                    row.trace_id,
                    row.span_id,
                    row.agent,
                    row.scorer,
                    row.score,
                    row.passed,
                    row.reason,
                    row.error
                ])
                .map_err(store_error)?;
        }
    }
    transaction.commit().map_err(store_error)
}

#[async_trait]
impl EvalStore for SqliteBackend {
    async fn insert_eval_cases(&self, cases: &[EvalCaseRow]) -> Result<(), StoreError> {
        if cases.is_empty() {
            return Ok(());
        }
        let cases = cases.to_vec();
        self.with_writer(move |connection| insert_cases(connection, &cases)).await
    }

    async fn eval_cases(&self, run_id: &str) -> Result<Vec<EvalCaseRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_CASES).map_err(store_error)?;
            let rows = statement
                .query_map(params![run_id], |row| {
                    Ok(EvalCaseRow {
                        run_id: row.get(0)?,
                        case_id: row.get(1)?,
                        input: row.get(2)?,
                        output: row.get(3)?,
                        expected: row.get(4)?,
                        error: row.get(5)?,
                    })
                })
                .map_err(store_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
        })
        .await
    }

    async fn insert_eval_run(&self, run: &EvalRunRow, results: &[EvalResultRow]) -> Result<(), StoreError> {
        let run = run.clone();
        let results = results.to_vec();
        self.with_writer(move |connection| insert_run(connection, &run, &results)).await
    }

    async fn insert_eval_scores(&self, rows: &[EvalScoreRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows.to_vec();
        self.with_writer(move |connection| insert_scores(connection, &rows)).await
    }

    async fn eval_runs(&self, suite: Option<&str>, limit: u32) -> Result<Vec<EvalRunRow>, StoreError> {
        let suite = suite.map(str::to_owned);
        self.with_reader(move |connection| {
            let sql = match suite {
                Some(_) => format!("SELECT {RUN_COLUMNS} FROM eval_runs WHERE Suite = ?1 ORDER BY StartedAt DESC, RunId DESC LIMIT ?2"),
                None => format!("SELECT {RUN_COLUMNS} FROM eval_runs ORDER BY StartedAt DESC, RunId DESC LIMIT ?1"),
            };
            let mut statement = connection.prepare_cached(&sql).map_err(store_error)?;
            let rows = match &suite {
                Some(suite) => statement.query_map(params![suite, limit], run_row),
                None => statement.query_map(params![limit], run_row),
            }
            .map_err(store_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
        })
        .await
    }

    async fn eval_results(&self, run_id: &str) -> Result<Vec<EvalResultRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_RESULTS).map_err(store_error)?;
            let rows = statement
                .query_map(params![run_id], |row| {
                    Ok(EvalResultRow {
                        run_id: row.get(0)?,
                        case_id: row.get(1)?,
                        scorer: row.get(2)?,
                        score: row.get(3)?,
                        passed: row.get(4)?,
                        reason: row.get(5)?,
                        error: row.get(6)?,
                        latency_ms: row.get(7)?,
                    })
                })
                .map_err(store_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
        })
        .await
    }

    async fn eval_run(&self, run_id: &str) -> Result<Option<EvalRunRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.with_reader(move |connection| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM eval_runs WHERE RunId = ?1");
            let mut statement = connection.prepare_cached(&sql).map_err(store_error)?;
            let mut rows = statement.query_map(params![run_id], run_row).map_err(store_error)?;
            rows.next().transpose().map_err(store_error)
        })
        .await
    }

    async fn eval_scorer_tallies(&self, suite: Option<&str>, limit: u32) -> Result<Vec<EvalScorerTally>, StoreError> {
        let suite = suite.map(str::to_owned);
        self.with_reader(move |connection| {
            let rows = match &suite {
                Some(suite) => {
                    let mut statement = connection.prepare_cached(SELECT_TALLIES_OF_SUITE).map_err(store_error)?;
                    let rows = statement.query_map(params![suite, limit], tally_row).map_err(store_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                }
                None => {
                    let mut statement = connection.prepare_cached(SELECT_TALLIES).map_err(store_error)?;
                    let rows = statement.query_map(params![limit], tally_row).map_err(store_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                }
            };
            rows.map_err(store_error)
        })
        .await
    }

    async fn online_score_summary(
        &self,
        range: &TimeRange,
        tenant: Option<&str>,
    ) -> Result<Vec<OnlineScoreSummary>, StoreError> {
        let range = *range;
        let tenant = tenant.map(str::to_owned);
        self.with_reader(move |connection| {
            let summary = |row: &Row<'_>| {
                Ok(OnlineScoreSummary {
                    agent: row.get(0)?,
                    scorer: row.get(1)?,
                    scored: unsigned(row.get(2)?),
                    passed: unsigned(row.get(3)?),
                    errored: unsigned(row.get(4)?),
                    mean_score: row.get(5)?,
                })
            };
            let rows = match &tenant {
                Some(tenant) => {
                    let mut statement =
                        connection.prepare_cached(SELECT_ONLINE_SUMMARY_OF_TENANT).map_err(store_error)?;
                    let lookback = range.from_ns.saturating_sub(TENANT_LOOKBACK_NS);
                    let rows = statement
                        .query_map(params![range.from_ns, range.to_ns, tenant, lookback], summary)
                        .map_err(store_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                }
                None => {
                    let mut statement = connection.prepare_cached(SELECT_ONLINE_SUMMARY).map_err(store_error)?;
                    let rows = statement.query_map(params![range.from_ns, range.to_ns], summary).map_err(store_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                }
            };
            rows.map_err(store_error)
        })
        .await
    }

    async fn eval_scores(&self, trace_ids: &[String]) -> Result<Vec<EvalScoreRow>, StoreError> {
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One bound JSON array: the statement stays constant whatever the number of ids.
        let trace_id = serde_json::to_string(trace_ids)
            .map_err(|source| StoreError::InvalidQuery { message: format!("trace ids: {source}") })?;
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_SCORES).map_err(store_error)?;
            let rows = statement
                .query_map(params![trace_id], |row| {
                    Ok(EvalScoreRow {
                        timestamp_ns: row.get(0)?,
                        trace_id: row.get(1)?,
                        span_id: row.get(2)?,
                        agent: row.get(3)?,
                        scorer: row.get(4)?,
                        score: row.get(5)?,
                        passed: row.get(6)?,
                        reason: row.get(7)?,
                        error: row.get(8)?,
                    })
                })
                .map_err(store_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
        })
        .await
    }
}
