//! The SQLite migrations (embedded from `migrations/sqlite/`) and how they are applied.

use rusqlite::{Connection, TransactionBehavior};

use super::store_error;
use crate::backend::{MigrationReport, StoreError};
use crate::migrate::{AppliedMigration, Migration, pending};

/// Every SQLite migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "spans", sql: include_str!("../../../../migrations/sqlite/0001_spans.sql") },
    Migration { version: 2, name: "usage", sql: include_str!("../../../../migrations/sqlite/0002_usage.sql") },
    Migration {
        version: 3,
        name: "trace_index",
        sql: include_str!("../../../../migrations/sqlite/0003_trace_index.sql"),
    },
    Migration {
        version: 4,
        name: "workflow_runs",
        sql: include_str!("../../../../migrations/sqlite/0004_workflow_runs.sql"),
    },
    Migration { version: 5, name: "api_keys", sql: include_str!("../../../../migrations/sqlite/0005_api_keys.sql") },
    Migration { version: 6, name: "evals", sql: include_str!("../../../../migrations/sqlite/0006_evals.sql") },
    Migration {
        version: 7,
        name: "tenant_indexes",
        sql: include_str!("../../../../migrations/sqlite/0007_tenant_indexes.sql"),
    },
    Migration { version: 8, name: "eval_cases", sql: include_str!("../../../../migrations/sqlite/0008_eval_cases.sql") },
    Migration { version: 9, name: "requests", sql: include_str!("../../../../migrations/sqlite/0009_requests.sql") },
    Migration {
        version: 10,
        name: "request_spans_marked",
        sql: include_str!("../../../../migrations/sqlite/0010_request_spans_marked.sql"),
    },
    Migration {
        version: 11,
        name: "usage_keyed_by_trace",
        sql: include_str!("../../../../migrations/sqlite/0011_usage_keyed_by_trace.sql"),
    },
    Migration {
        version: 12,
        name: "workflow_spans_index",
        sql: include_str!("../../../../migrations/sqlite/0012_workflow_spans_index.sql"),
    },
    Migration {
        version: 13,
        name: "trace_index_keyed",
        sql: include_str!("../../../../migrations/sqlite/0013_trace_index_keyed.sql"),
    },
    Migration {
        version: 14,
        name: "trace_index_api_keys",
        sql: include_str!("../../../../migrations/sqlite/0014_trace_index_api_keys.sql"),
    },
    Migration {
        version: 15,
        name: "span_groups",
        sql: include_str!("../../../../migrations/sqlite/0015_span_groups.sql"),
    },
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS glassbox_migrations (
    version INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)";
const SELECT_APPLIED: &str = "SELECT version, name, checksum FROM glassbox_migrations ORDER BY version";
const RECORD_APPLIED: &str = "INSERT INTO glassbox_migrations (version, name, checksum) VALUES (?1, ?2, ?3)";

/// Applies the pending migrations in one `BEGIN IMMEDIATE` transaction: a second process
/// migrating the same file waits for the first, then finds everything applied. A failed
/// migration rolls back all of this call's work (SQLite's DDL is transactional).
pub(super) fn migrate(connection: &mut Connection, embedded: &[Migration]) -> Result<MigrationReport, StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    transaction.execute_batch(CREATE_MIGRATIONS_TABLE).map_err(store_error)?;
    let applied = {
        let mut statement = transaction.prepare(SELECT_APPLIED).map_err(store_error)?;
        let rows = statement
            .query_map([], |row| {
                Ok(AppliedMigration { version: row.get(0)?, name: row.get(1)?, checksum: row.get(2)? })
            })
            .map_err(store_error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(store_error)?
    };
    let todo = pending(embedded, &applied)?;
    let mut report = MigrationReport {
        applied: Vec::new(),
        already_applied: embedded
            .iter()
            .filter(|migration| applied.iter().any(|record| record.version == migration.version))
            .map(|migration| migration.version)
            .collect(),
    };
    for migration in todo {
        let failed = |source: rusqlite::Error| StoreError::MigrationFailed {
            version: migration.version,
            name: migration.name.to_owned(),
            source: Box::new(source),
        };
        transaction.execute_batch(migration.sql).map_err(failed)?;
        transaction
            .execute(RECORD_APPLIED, rusqlite::params![migration.version, migration.name, migration.checksum()])
            .map_err(failed)?;
        report.applied.push(migration.version);
    }
    transaction.commit().map_err(store_error)?;
    for version in &report.applied {
        tracing::debug!(version, "applied sqlite migration");
    }
    Ok(report)
}
