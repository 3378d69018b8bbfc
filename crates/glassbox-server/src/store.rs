//! Choosing and opening the store: ClickHouse when `GLASSBOX_CLICKHOUSE_URL` or the config's
//! `[store] clickhouse_url` says so, the embedded SQLite file otherwise.

use std::sync::Arc;

use glassbox_config::{ClickHouseConfig, StoreConfig, WriterPolicy};
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::{Backend, EvalStore, KeyStore, StoreError, TraceReader};

/// An open store: the same object behind both traits.
#[derive(Clone)]
pub struct Store {
    pub backend: Arc<dyn Backend>,
    pub reader: Arc<dyn TraceReader>,
    /// Eval suite runs and online scores.
    pub evals: Arc<dyn EvalStore>,
    /// Where it lives, for log lines: a file path or a URL with the database.
    pub description: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend.name()).field("at", &self.description).finish()
    }
}

/// The ClickHouse settings the environment and config ask for, if any. The environment wins:
/// `GLASSBOX_CLICKHOUSE_URL`, `_DATABASE`, `_USER`, `_PASSWORD`.
pub fn clickhouse_settings(config: &StoreConfig, env: &dyn Fn(&str) -> Option<String>) -> Option<ClickHouseSettings> {
    let from_env = env("GLASSBOX_CLICKHOUSE_URL").filter(|url| !url.is_empty());
    let configured: Option<&ClickHouseConfig> = config.clickhouse.as_ref();
    let url = from_env.or_else(|| configured.map(|clickhouse| clickhouse.url.clone()))?;
    let defaults = ClickHouseSettings::default();
    let database = env("GLASSBOX_CLICKHOUSE_DATABASE")
        .filter(|name| !name.is_empty())
        .or_else(|| configured.map(|clickhouse| clickhouse.database.clone()))
        .unwrap_or(defaults.database);
    let user = env("GLASSBOX_CLICKHOUSE_USER").or_else(|| configured.and_then(|clickhouse| clickhouse.user.clone()));
    let password = env("GLASSBOX_CLICKHOUSE_PASSWORD").or_else(|| {
        configured.and_then(|clickhouse| clickhouse.password_env.as_deref()).and_then(env)
    });
    Some(ClickHouseSettings {
        url,
        database,
        user,
        password,
        cluster: configured.and_then(|clickhouse| clickhouse.cluster.clone()),
        span_ttl_days: config.span_ttl_days,
        ..defaults
    })
}

/// Opens the configured store (without migrating it).
pub async fn open(config: &StoreConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Store, StoreError> {
    match clickhouse_settings(config, env) {
        Some(settings) => {
            let description = format!("clickhouse {} database {}", settings.url, settings.database);
            let backend = Arc::new(ClickHouseBackend::new(settings)?);
            Ok(Store { backend: backend.clone(), reader: backend.clone(), evals: backend, description })
        }
        None => {
            let description = format!("sqlite {}", config.sqlite_path.display());
            // The telemetry store: its batch writes run on a thread of their own, under
            // SCHED_IDLE where it may leave it again to catch up (`store.writer_policy`), at the
            // nice value `store.writer_nice` otherwise, so that they yield the CPU to requests.
            let policy = match config.writer_policy {
                WriterPolicy::Auto => glassbox_store::sqlite::WriterPolicy::Auto,
                WriterPolicy::Normal => glassbox_store::sqlite::WriterPolicy::Normal,
                WriterPolicy::Idle => glassbox_store::sqlite::WriterPolicy::Idle,
            };
            let priority = glassbox_store::sqlite::WriterPriority { nice: config.writer_nice, policy };
            let settings = SqliteSettings { path: config.sqlite_path.clone() };
            let backend = Arc::new(SqliteBackend::open_with_priority(settings, priority).await?);
            Ok(Store { backend: backend.clone(), reader: backend.clone(), evals: backend, description })
        }
    }
}

/// The API keys and spend per tenant and key of the configured store (the same database as
/// [`open`], through a handle of its own). Does not migrate.
pub async fn open_key_store(config: &StoreConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn KeyStore>, StoreError> {
    match clickhouse_settings(config, env) {
        Some(settings) => Ok(Arc::new(ClickHouseBackend::new(settings)?)),
        None => Ok(Arc::new(SqliteBackend::open(SqliteSettings { path: config.sqlite_path.clone() }).await?)),
    }
}
