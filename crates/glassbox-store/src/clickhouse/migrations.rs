//! The ClickHouse migrations: embedded SQL files, their placeholders, and the runner.
//!
//! Placeholders, replaced in one pass over each statement (a substituted value is never scanned
//! again, and any other `{...}`, such as the server's `{shard}`, `{replica}`, `{database}` and
//! `{table}` macros inside a replication path, is left as written):
//!
//! | placeholder      | single server | `cluster = Some("c")`                                            |
//! |------------------|---------------|------------------------------------------------------------------|
//! | `{database}`     | `` `db` ``    | `` `db` ``                                                       |
//! | `{on_cluster}`   | (empty)       | ` ON CLUSTER 'c'`                                                |
//! | `{replicated}`   | (empty)       | `Replicated` (engine name prefix)                                |
//! | `{replica_args}` | (empty)       | `'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'`   |
//! | `{replica_args_comma}` | (empty) | `{replica_args}` followed by `, ` (before an engine argument) |
//! | `{ttl_days}`     | `30`          | `30` (`span_ttl_days`)                                           |
//!
//! Checksums are taken over the file as embedded, before substitution, so changing the
//! cluster or the TTL in the configuration does not count as an edited migration.
//!
//! Two servers migrating at once: there is no lock in ClickHouse to take, so both may run
//! the same statements. Every statement is idempotent (`IF NOT EXISTS`), so the second run
//! of a statement changes nothing; both then record the same (version, checksum), and the
//! records table is a ReplacingMergeTree read with `FINAL`, so the duplicate record collapses.
//! A migration that fails half-way is not recorded and runs again, from its first statement,
//! on the next `migrate`. Rule for new files: idempotent statements only (`IF NOT EXISTS`,
//! `ADD COLUMN IF NOT EXISTS`, ...), never a data-moving `INSERT ... SELECT` without an
//! `insert_deduplication_token`. The runner runs every statement with `max_threads = 1`, so
//! a backfill cuts the same blocks on every run and its token deduplicates each of them.

use crate::backend::{MigrationReport, StoreError};
use crate::migrate::{AppliedMigration, Migration, pending};

use super::error::Operation;
use super::{ClickHouseBackend, ClickHouseSettings};

/// The ClickHouse migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "spans", sql: include_str!("../../../../migrations/clickhouse/0001_spans.sql") },
    Migration { version: 2, name: "usage", sql: include_str!("../../../../migrations/clickhouse/0002_usage.sql") },
    Migration {
        version: 3,
        name: "trace_index",
        sql: include_str!("../../../../migrations/clickhouse/0003_trace_index.sql"),
    },
    Migration { version: 4, name: "rollups", sql: include_str!("../../../../migrations/clickhouse/0004_rollups.sql") },
    Migration {
        version: 5,
        name: "workflow_runs",
        sql: include_str!("../../../../migrations/clickhouse/0005_workflow_runs.sql"),
    },
    Migration { version: 6, name: "api_keys", sql: include_str!("../../../../migrations/clickhouse/0006_api_keys.sql") },
    Migration { version: 7, name: "evals", sql: include_str!("../../../../migrations/clickhouse/0007_evals.sql") },
    Migration {
        version: 8,
        name: "usage_hourly",
        sql: include_str!("../../../../migrations/clickhouse/0008_usage_hourly.sql"),
    },
    Migration {
        version: 9,
        name: "latency_hourly",
        sql: include_str!("../../../../migrations/clickhouse/0009_latency_hourly.sql"),
    },
    Migration {
        version: 10,
        name: "eval_cases",
        sql: include_str!("../../../../migrations/clickhouse/0010_eval_cases.sql"),
    },
    Migration {
        version: 11,
        name: "requests_minutely",
        sql: include_str!("../../../../migrations/clickhouse/0011_requests_minutely.sql"),
    },
    Migration {
        version: 12,
        name: "trace_api_keys",
        sql: include_str!("../../../../migrations/clickhouse/0012_trace_api_keys.sql"),
    },
];

const CREATE_DATABASE_SQL: &str = "CREATE DATABASE IF NOT EXISTS {database}{on_cluster}";

/// The records of applied migrations; created before anything else, with the same
/// placeholders as the migration files.
pub const MIGRATIONS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS {database}.glassbox_migrations{on_cluster}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3)
)
ENGINE = {replicated}ReplacingMergeTree({replica_args})
ORDER BY version";

const READ_APPLIED_SQL: &str = "SELECT version, name, checksum FROM glassbox_migrations FINAL ORDER BY version";

const RECORD_SQL: &str =
    "INSERT INTO glassbox_migrations (version, name, checksum, applied_at) SELECT ?, ?, ?, now64(3)";

/// The replication path of every table in a cluster; the macros are the server's.
const REPLICA_ARGS: &str = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";

/// Substitutes the placeholders of a migration statement (see the module documentation).
pub fn render_sql(sql: &str, settings: &ClickHouseSettings) -> String {
    let mut rendered = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        rendered.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name = after.find('}').map(|close| &after[..close]);
        let value = name.and_then(|name| placeholder(name, settings));
        match (name, value) {
            (Some(name), Some(value)) => {
                rendered.push_str(&value);
                rest = &after[name.len() + 1..];
            }
            _ => {
                rendered.push('{');
                rest = after;
            }
        }
    }
    rendered.push_str(rest);
    rendered
}

fn placeholder(name: &str, settings: &ClickHouseSettings) -> Option<String> {
    let cluster = settings.cluster.as_deref();
    let value = match name {
        // Validated in `ClickHouseSettings::validate`: letters, digits and `_`.
        "database" => ["`", settings.database.as_str(), "`"].concat(),
        "on_cluster" => cluster.map(|cluster| [" ON CLUSTER '", cluster, "'"].concat()).unwrap_or_default(),
        "replicated" => cluster.map(|_| "Replicated".to_owned()).unwrap_or_default(),
        "replica_args" => cluster.map(|_| REPLICA_ARGS.to_owned()).unwrap_or_default(),
        "replica_args_comma" => cluster.map(|_| [REPLICA_ARGS, ", "].concat()).unwrap_or_default(),
        "ttl_days" => settings.span_ttl_days.to_string(),
        _ => return None,
    };
    Some(value)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct AppliedRecord {
    version: u32,
    name: String,
    checksum: String,
}

pub(super) async fn migrate(backend: &ClickHouseBackend) -> Result<MigrationReport, StoreError> {
    let settings = backend.settings();
    let client = &backend.inner.client;
    let server = &backend.inner.server;

    let create_database = render_sql(CREATE_DATABASE_SQL, settings);
    backend.timed(Operation::Migrate, server.query_raw(&create_database).execute()).await?;
    let create_records = render_sql(MIGRATIONS_TABLE_SQL, settings);
    backend.timed(Operation::Migrate, client.query_raw(&create_records).execute()).await?;

    let applied: Vec<AppliedMigration> = backend
        .timed(Operation::Migrate, client.query(READ_APPLIED_SQL).fetch_all::<AppliedRecord>())
        .await?
        .into_iter()
        .map(|record| AppliedMigration { version: record.version, name: record.name, checksum: record.checksum })
        .collect();
    let todo = pending(MIGRATIONS, &applied)?;

    let mut report = MigrationReport {
        applied: Vec::new(),
        already_applied: MIGRATIONS
            .iter()
            .filter(|migration| !todo.iter().any(|pending| pending.version == migration.version))
            .map(|migration| migration.version)
            .collect(),
    };
    for migration in todo {
        for statement in migration.statements() {
            let sql = render_sql(&statement, settings);
            // Single-threaded: a backfill's `insert_deduplication_token` is extended per inserted
            // block, and a parallel `SELECT` cuts its output into blocks differently from run
            // to run, so a second server's run of the same backfill would count the rows again.
            let query = client.query_raw(&sql).with_setting("max_threads", "1");
            backend
                .timed(Operation::Migrate, query.execute())
                .await
                .map_err(|error| failed(migration, error))?;
        }
        let record = client.query(RECORD_SQL).bind(migration.version).bind(migration.name).bind(migration.checksum());
        backend.timed(Operation::Migrate, record.execute()).await.map_err(|error| failed(migration, error))?;
        tracing::debug!(version = migration.version, name = migration.name, "applied ClickHouse migration");
        report.applied.push(migration.version);
    }
    // Inserts cache each table's columns; a migration may have changed them.
    client.clear_cached_metadata().await;
    Ok(report)
}

/// A server that could not be reached stays retryable; anything else names the migration.
fn failed(migration: &Migration, error: StoreError) -> StoreError {
    match error {
        StoreError::Unavailable { .. } => error,
        other => StoreError::MigrationFailed {
            version: migration.version,
            name: migration.name.to_owned(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_unknown_braces_alone() {
        let settings = ClickHouseSettings { cluster: Some("main".into()), ..ClickHouseSettings::default() };
        let rendered = render_sql("a {database}.t{on_cluster} {x} {ttl_days} {", &settings);
        assert_eq!(rendered, "a `glassbox`.t ON CLUSTER 'main' {x} 30 {");
        let rendered = render_sql("ENGINE = {replicated}MergeTree({replica_args})", &settings);
        assert_eq!(
            rendered,
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
        );
    }

    #[test]
    fn versions_are_in_order() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|migration| migration.version).collect();
        let expected: Vec<u32> = (1..=MIGRATIONS.len() as u32).collect();
        assert_eq!(versions, expected, "numbered 1, 2, 3, ... without gaps");
    }
}
