//! The `workflow_runs` table on SQLite (see `migrations/sqlite/0004_workflow_runs.sql`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::store_error;
use crate::backend::StoreError;
use crate::runs::{RunFilter, RunRecord, RunTrace};

const COLUMNS: &str = "RunId, WorkflowId, Status, Input, Snapshot, Result, Error, CreatedNs, UpdatedNs, Version";

const UPSERT: &str = "INSERT INTO workflow_runs
    (RunId, WorkflowId, Status, Input, Snapshot, Result, Error, CreatedNs, UpdatedNs, Version)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    ON CONFLICT (RunId) DO UPDATE SET
        WorkflowId = excluded.WorkflowId, Status = excluded.Status, Input = excluded.Input,
        Snapshot = excluded.Snapshot, Result = excluded.Result, Error = excluded.Error,
        CreatedNs = excluded.CreatedNs, UpdatedNs = excluded.UpdatedNs, Version = excluded.Version
    WHERE excluded.Version > workflow_runs.Version";

pub(super) fn save(connection: &Connection, run: &RunRecord) -> Result<(), StoreError> {
    let version = i64::try_from(run.version)
        .map_err(|_| StoreError::InvalidQuery { message: format!("run version {} is too large", run.version) })?;
    connection
        .execute(
            UPSERT,
            params![
                run.run_id,
                run.workflow_id,
                run.status,
                run.input,
                run.snapshot,
                run.result,
                run.error,
                run.created_ns,
                run.updated_ns,
                version
            ],
        )
        .map_err(store_error)?;
    Ok(())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: row.get(0)?,
        workflow_id: row.get(1)?,
        status: row.get(2)?,
        input: row.get(3)?,
        snapshot: row.get(4)?,
        result: row.get(5)?,
        error: row.get(6)?,
        created_ns: row.get(7)?,
        updated_ns: row.get(8)?,
        version: u64::try_from(row.get::<_, i64>(9)?).unwrap_or(0),
    })
}

pub(super) fn get(connection: &Connection, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM workflow_runs WHERE RunId = ?1");
    connection.query_row(&sql, [run_id], from_row).optional().map_err(store_error)
}

pub(super) fn list(connection: &Connection, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
    // Only constant fragments go into the text; every value is a bound parameter.
    let mut sql = format!("SELECT {COLUMNS} FROM workflow_runs WHERE 1");
    let mut values: Vec<SqlValue> = Vec::new();
    if let Some(workflow_id) = &filter.workflow_id {
        sql.push_str(" AND WorkflowId = ?");
        values.push(SqlValue::Text(workflow_id.clone()));
    }
    if !filter.statuses.is_empty() {
        sql.push_str(" AND Status IN (");
        for (index, status) in filter.statuses.iter().enumerate() {
            sql.push_str(if index == 0 { "?" } else { ", ?" });
            values.push(SqlValue::Text(status.clone()));
        }
        sql.push(')');
    }
    if let Some(range) = &filter.created {
        sql.push_str(" AND CreatedNs >= ? AND CreatedNs < ?");
        values.push(SqlValue::Integer(range.from_ns));
        values.push(SqlValue::Integer(range.to_ns));
    }
    sql.push_str(" ORDER BY CreatedNs DESC, RunId DESC LIMIT ?");
    values.push(SqlValue::Integer(i64::from(filter.limit)));
    let mut statement = connection.prepare(&sql).map_err(store_error)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values), from_row).map_err(store_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
}

/// A run's traces are found through `workflow_spans` (migration 15), keyed by run id, then
/// time. The run ids are bound one placeholder each.
pub(super) fn traces(connection: &Connection, run_ids: &[String], since_ns: i64) -> Result<Vec<RunTrace>, StoreError> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = traces_sql(run_ids.len());
    let mut values: Vec<SqlValue> = vec![SqlValue::Integer(since_ns)];
    values.extend(run_ids.iter().map(|run_id| SqlValue::Text(run_id.clone())));
    let mut statement = connection.prepare(&sql).map_err(store_error)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(values), |row| {
            Ok(RunTrace { run_id: row.get(0)?, trace_id: row.get(1)?, start_ns: row.get(2)? })
        })
        .map_err(store_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
}

fn traces_sql(run_ids: usize) -> String {
    let mut sql =
        String::from("SELECT RunId, TraceId, MIN(Timestamp) FROM workflow_spans WHERE Timestamp >= ? AND RunId IN (");
    for index in 0..run_ids {
        sql.push_str(if index == 0 { "?" } else { ", ?" });
    }
    sql.push_str(") GROUP BY RunId, TraceId ORDER BY RunId, MIN(Timestamp), TraceId");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup reads each run's workflow spans through the table's key, not the whole table.
    #[test]
    fn run_traces_read_the_workflow_spans_index() -> Result<(), Box<dyn std::error::Error>> {
        let mut connection = Connection::open_in_memory()?;
        super::super::schema::migrate(&mut connection, super::super::schema::MIGRATIONS)?;
        let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {}", traces_sql(2)))?;
        let plan: Vec<String> =
            statement.query_map(rusqlite::params![0, "run-a", "run-b"], |row| row.get(3))?.collect::<Result<_, _>>()?;
        assert!(plan.iter().any(|step| step.contains("USING PRIMARY KEY (RunId=? AND Timestamp>?)")), "{plan:?}");
        Ok(())
    }
}
