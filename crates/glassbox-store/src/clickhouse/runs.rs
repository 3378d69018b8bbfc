//! The `workflow_runs` table on ClickHouse (see `migrations/clickhouse/0005_workflow_runs.sql`):
//! every save inserts the whole row; reads use FINAL so the row with the largest version wins
//! whether or not the background merges have run.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::error::Operation;
use super::sql::{Sql, Value};
use super::{ClickHouseBackend, Table};
use crate::backend::StoreError;
use crate::runs::{RunFilter, RunRecord, RunTrace};

#[derive(Row, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunRow {
    run_id: String,
    workflow_id: String,
    status: String,
    input: String,
    snapshot: String,
    result: String,
    error: String,
    created_ns: i64,
    updated_ns: i64,
    version: u64,
}

impl From<RunRow> for RunRecord {
    fn from(row: RunRow) -> Self {
        Self {
            run_id: row.run_id,
            workflow_id: row.workflow_id,
            status: row.status,
            input: row.input,
            snapshot: row.snapshot,
            result: row.result,
            error: row.error,
            created_ns: row.created_ns,
            updated_ns: row.updated_ns,
            version: row.version,
        }
    }
}

/// FINAL first (in the inner query, filtered on the sorting key or not at all), then the other
/// filters outside it: a filter on a non-key column inside a FINAL query could otherwise see
/// an older version of a row.
const SELECT_FINAL: &str = "SELECT RunId, WorkflowId, Status, Input, Snapshot, Result, Error, CreatedNs, UpdatedNs, Version FROM (SELECT * FROM workflow_runs FINAL";

pub(super) async fn save(backend: &ClickHouseBackend, run: &RunRecord) -> Result<(), StoreError> {
    let limit = backend.inner.settings.request_timeout;
    let row = RunRow {
        run_id: run.run_id.clone(),
        workflow_id: run.workflow_id.clone(),
        status: run.status.clone(),
        input: run.input.clone(),
        snapshot: run.snapshot.clone(),
        result: run.result.clone(),
        error: run.error.clone(),
        created_ns: run.created_ns,
        updated_ns: run.updated_ns,
        version: run.version,
    };
    backend
        .timed(Operation::SaveRun, async {
            let mut insert = backend
                .inner
                .client
                .insert::<RunRow>(Table::WorkflowRuns.name())
                .await?
                .with_timeouts(Some(limit), Some(limit));
            insert.write(&row).await?;
            insert.end().await
        })
        .await
}

pub(super) async fn get(backend: &ClickHouseBackend, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    let mut sql = Sql::new(SELECT_FINAL);
    sql.bind(" WHERE RunId = ?)", [run_id.into()]);
    let rows = backend.timed(Operation::GetRun, sql.query(&backend.inner.client).fetch_all::<RunRow>()).await?;
    Ok(rows.into_iter().next().map(RunRecord::from))
}

pub(super) async fn list(backend: &ClickHouseBackend, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
    let mut sql = Sql::new(SELECT_FINAL);
    sql.push(") WHERE 1");
    if let Some(workflow_id) = &filter.workflow_id {
        sql.bind(" AND WorkflowId = ?", [workflow_id.as_str().into()]);
    }
    if !filter.statuses.is_empty() {
        sql.push(" AND (0");
        for status in &filter.statuses {
            sql.bind(" OR Status = ?", [status.as_str().into()]);
        }
        sql.push(")");
    }
    if let Some(range) = &filter.created {
        sql.bind(" AND CreatedNs >= ? AND CreatedNs < ?", [range.from_ns.into(), range.to_ns.into()]);
    }
    sql.bind(" ORDER BY CreatedNs DESC, RunId DESC LIMIT ?", [Value::U64(u64::from(filter.limit))]);
    let rows = backend.timed(Operation::ListRuns, sql.query(&backend.inner.client).fetch_all::<RunRow>()).await?;
    Ok(rows.into_iter().map(RunRecord::from).collect())
}

#[derive(Row, Deserialize)]
struct RunTraceRow {
    run_id: String,
    trace_id: String,
    start_ns: i64,
}

/// Workflow spans (`invoke_workflow {workflow}`) of these runs, found by name prefix, time
/// and the run id attribute; the ids go in as one bound array.
pub(super) async fn traces(
    backend: &ClickHouseBackend,
    run_ids: &[String],
    since_ns: i64,
) -> Result<Vec<RunTrace>, StoreError> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = backend
        .inner
        .client
        .query(
            "SELECT SpanAttributes['glassbox.workflow.run_id'] AS run_id, TraceId AS trace_id, \
             toUnixTimestamp64Nano(min(Timestamp)) AS start_ns FROM spans \
             WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND startsWith(SpanName, 'invoke_workflow') \
             AND has(?, SpanAttributes['glassbox.workflow.run_id']) \
             GROUP BY run_id, trace_id ORDER BY run_id, start_ns, trace_id",
        )
        .bind(since_ns)
        .bind(run_ids);
    let rows = backend.timed(Operation::ListRuns, query.fetch_all::<RunTraceRow>()).await?;
    Ok(rows
        .into_iter()
        .map(|row| RunTrace { run_id: row.run_id, trace_id: row.trace_id, start_ns: row.start_ns })
        .collect())
}
