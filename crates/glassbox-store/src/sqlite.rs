//! The embedded store: SQLite through rusqlite, the default when no ClickHouse is configured.
//!
//! The same logical tables as ClickHouse (`spans` in the OpenTelemetry Collector exporter's
//! column layout, `usage`, `trace_index`) from the numbered files in `migrations/sqlite/`.
//! rusqlite is blocking, so every call runs on Tokio's blocking pool: writes go through one
//! write connection (SQLite has one writer at a time anyway), reads through a small pool of
//! read connections that WAL mode lets run beside the writer. Other processes on the same
//! file wait for each other through `busy_timeout`; every write transaction starts with
//! `BEGIN IMMEDIATE`, so two servers migrating at once simply take turns.
//!
//! Deduplication: spans and usage rows are keyed by `(TraceId, SpanId)` (usage since migration 11), and
//! batches are written with `INSERT OR IGNORE`, so a retried batch adds nothing whatever its
//! token; the trace index only counts spans the insert actually added.

mod checkpointer;
mod codec;
mod keys;
mod evals;
mod read;
mod runs;
mod schema;
mod trace_index;
mod write;
mod write_thread;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode};

use crate::backend::{Backend, MigrationReport, StoreError, TraceReader};
use crate::query::{
    LatencyBy, LatencyRow, Page, PageRequest, TimeRange, RequestStats, TraceFilter, TraceSummary, UsageBy, UsageGroup,
};
use crate::rows::{SpanRow, UsageRow};
use crate::runs::{RunFilter, RunRecord, RunStore, RunTrace, check_run_ids};

pub use schema::MIGRATIONS;
pub use write_thread::{WriterPolicy, WriterPriority};

/// How long a connection waits for another connection's (or process's) write lock before
/// the call fails as [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read connections kept open between calls; more are opened under load and closed after.
const MAX_IDLE_READERS: usize = 4;

/// Where the SQLite store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// The database file; missing parent directories are created. Default
    /// `.glassbox/glassbox.db`, relative to the working directory.
    pub path: PathBuf,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self { path: PathBuf::from(".glassbox").join("glassbox.db") }
    }
}

/// The SQLite backend. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct SqliteBackend {
    shared: Arc<Shared>,
}

struct Shared {
    writer: Mutex<Connection>,
    /// `Some`: the write connection's work runs on this thread, at a lowered priority
    /// ([`SqliteBackend::open_with_priority`]); `None`: on Tokio's blocking pool.
    write_thread: Option<write_thread::WriteThread>,
    /// `None` for an in-memory database, which exists only inside its one connection:
    /// reads then share the write connection.
    readers: Option<ReaderPool>,
    /// `Some` beside a write thread: the file's WAL checkpoints (`checkpointer.rs`).
    checkpointer: Option<checkpointer::Checkpointer>,
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.shared.readers.as_ref().map(|pool| pool.path.as_path());
        formatter.debug_struct("SqliteBackend").field("path", &path).finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Opens (creating when missing) the database file in WAL mode. Does not migrate: call
    /// [`Backend::migrate`] before writing.
    pub async fn open(settings: SqliteSettings) -> Result<Self, StoreError> {
        Self::open_on(settings, None).await
    }

    /// [`open`](Self::open), with the write connection's work on a dedicated thread at
    /// `priority` (see `write_thread`): for the telemetry store, whose batch writes should
    /// not take CPU from requests.
    pub async fn open_with_priority(settings: SqliteSettings, priority: WriterPriority) -> Result<Self, StoreError> {
        Self::open_on(settings, Some(priority)).await
    }

    async fn open_on(settings: SqliteSettings, priority: Option<WriterPriority>) -> Result<Self, StoreError> {
        let path = settings.path;
        let write_thread = priority.map(write_thread::WriteThread::spawn).transpose()?;
        run_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|source| StoreError::Unavailable { source: Box::new(source) })?;
            }
            let writer = open_connection(&path, ConnectionRole::Writer)?;
            // Every handle's write connection, not only the one beside the checkpoint thread:
            // the WAL is the file's, and any commit past SQLite's 1,000 pages would copy it all.
            writer.pragma_update(None, "wal_autocheckpoint", checkpointer::BACKSTOP_PAGES).map_err(store_error)?;
            let checkpointer = write_thread.is_some().then(|| checkpointer::Checkpointer::spawn(&path)).transpose()?;
            let readers = ReaderPool { path, idle: Mutex::new(Vec::new()) };
            Ok(Self {
                shared: Arc::new(Shared {
                    writer: Mutex::new(writer),
                    write_thread,
                    readers: Some(readers),
                    checkpointer,
                }),
            })
        })
        .await
    }

    /// A private in-memory database, gone when the backend is dropped; for tests.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        run_blocking(|| {
            let writer = Connection::open_in_memory().map_err(store_error)?;
            configure(&writer, ConnectionRole::Writer)?;
            Ok(Self {
                shared: Arc::new(Shared {
                    writer: Mutex::new(writer),
                    write_thread: None,
                    readers: None,
                    checkpointer: None,
                }),
            })
        })
        .await
    }

    /// Runs `work` with the write connection, on the write thread if there is one, else on
    /// the blocking pool.
    async fn with_writer<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let work = move || {
            let mut connection = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        };
        match &self.shared.write_thread {
            Some(thread) => {
                let result = thread.run(work).await;
                // Here, on a thread of normal priority, as the WAL has just grown.
                if let Some(checkpointer) = &self.shared.checkpointer {
                    checkpointer.rescue_if_stuck();
                }
                result
            }
            None => run_blocking(work).await,
        }
    }

    /// Runs `work` on the blocking pool with a read connection.
    async fn with_reader<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        run_blocking(move || match &shared.readers {
            Some(pool) => {
                let connection = pool.take()?;
                let result = work(&connection);
                pool.give_back(connection);
                result
            }
            None => {
                let connection = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
                work(&connection)
            }
        })
        .await
    }
}

impl ReaderPool {
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => open_connection(&self.path, ConnectionRole::Reader),
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(connection);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionRole {
    Writer,
    Reader,
    /// The checkpoint thread's connection (`checkpointer.rs`), opened after the writer.
    Checkpointer,
}

fn open_connection(path: &Path, role: ConnectionRole) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(store_error)?;
    configure(&connection, role)?;
    Ok(connection)
}

fn configure(connection: &Connection, role: ConnectionRole) -> Result<(), StoreError> {
    // The busy timeout first: switching to WAL takes a lock another process may hold.
    connection.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
    match role {
        ConnectionRole::Writer => {
            // WAL lets readers run beside the writer; the mode is stored in the file. Two
            // connections switching a new file at once may get SQLITE_BUSY without the busy
            // handler being asked (SQLite refuses to wait where waiting could deadlock), so
            // the switch is retried here, within the same time budget. This runs on a
            // blocking thread, where sleeping is fine.
            let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
            loop {
                match connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get::<_, String>(0)) {
                    Ok(_) => break,
                    Err(error)
                        if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(error) => return Err(store_error(error)),
                }
            }
            // In WAL mode NORMAL syncs at checkpoints instead of at every commit: a commit
            // survives a crash or kill of the process; only a power loss or OS crash may undo
            // the last commits (ClickHouse does not fsync inserts either by default).
            connection.pragma_update(None, "synchronous", "NORMAL").map_err(store_error)?;
            // Span inserts land on random pages of the (TraceId, SpanId) index; a 16 MiB page
            // cache (SQLite's default is 2 MiB) keeps them in memory instead of re-reading them.
            connection.pragma_update(None, "cache_size", -16_384).map_err(store_error)?;
        }
        ConnectionRole::Reader => connection.pragma_update(None, "query_only", true).map_err(store_error)?,
        // A checkpoint syncs as its connection's `synchronous` says: as the writer's did.
        ConnectionRole::Checkpointer => connection.pragma_update(None, "synchronous", "NORMAL").map_err(store_error)?,
    }
    Ok(())
}

/// Runs blocking SQLite work on Tokio's blocking pool.
async fn run_blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|source| StoreError::Unavailable { source: Box::new(source) })?
}

/// Locking, I/O and full-disk failures are worth retrying (and spooling meanwhile); anything
/// else is the database refusing the request.
fn store_error(error: rusqlite::Error) -> StoreError {
    let retryable = matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
        )
    );
    if retryable {
        StoreError::Unavailable { source: Box::new(error) }
    } else {
        StoreError::Rejected { message: error.to_string(), source: Some(Box::new(error)) }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    /// A batch is one write transaction on the write thread, and shorter ones leave the cores
    /// to requests sooner (BENCHMARKS.md: added p99 at 1,800 req/s +2.51 against +3.37 ms at
    /// 1,000 rows, the same instructions per request).
    fn batch_rows(&self) -> usize {
        250
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.with_writer(|connection| schema::migrate(connection, MIGRATIONS)).await
    }

    async fn insert_spans(&self, rows: &[SpanRow], dedup_token: &str) -> Result<(), StoreError> {
        self.insert_spans_shared(Arc::new(rows.to_vec()), dedup_token).await
    }

    async fn insert_usage(&self, rows: &[UsageRow], dedup_token: &str) -> Result<(), StoreError> {
        self.insert_usage_shared(Arc::new(rows.to_vec()), dedup_token).await
    }

    async fn insert_spans_shared(&self, rows: Arc<Vec<SpanRow>>, _dedup_token: &str) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.with_writer(move |connection| write::insert_spans(connection, &rows)).await
    }

    async fn insert_usage_shared(&self, rows: Arc<Vec<UsageRow>>, _dedup_token: &str) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.with_writer(move |connection| write::insert_usage(connection, &rows)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|connection| {
            connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)).map_err(store_error)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl TraceReader for SqliteBackend {
    async fn list_traces(&self, filter: &TraceFilter, page: &PageRequest) -> Result<Page<TraceSummary>, StoreError> {
        let query = read::TraceListQuery::new(filter, page)?;
        self.with_reader(move |connection| query.run(connection)).await
    }

    async fn trace_spans(&self, trace_id: &str) -> Result<Vec<SpanRow>, StoreError> {
        let trace_id = trace_id.to_owned();
        self.with_reader(move |connection| read::trace_spans(connection, &trace_id)).await
    }

    async fn trace_usage(&self, trace_id: &str) -> Result<Vec<UsageRow>, StoreError> {
        let trace_id = trace_id.to_owned();
        self.with_reader(move |connection| read::trace_usage(connection, &trace_id)).await
    }

    async fn usage_by_tenant(
        &self,
        by: UsageBy,
        range: &TimeRange,
        tenant: Option<&str>,
    ) -> Result<Vec<UsageGroup>, StoreError> {
        let (range, tenant) = (*range, tenant.map(str::to_owned));
        self.with_reader(move |connection| read::usage_by(connection, by, &range, tenant.as_deref())).await
    }

    async fn latency_of_tenant(
        &self,
        by: LatencyBy,
        range: &TimeRange,
        bucket_secs: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<LatencyRow>, StoreError> {
        if bucket_secs == 0 {
            return Err(StoreError::InvalidQuery { message: "the latency bucket must be at least one second".into() });
        }
        let (range, tenant) = (*range, tenant.map(str::to_owned));
        self.with_reader(move |connection| read::latency(connection, by, &range, bucket_secs, tenant.as_deref())).await
    }

    async fn request_stats_of_tenant(
        &self,
        range: &TimeRange,
        bucket_secs: u32,
        tenant: Option<&str>,
    ) -> Result<RequestStats, StoreError> {
        if bucket_secs == 0 {
            return Err(StoreError::InvalidQuery { message: "the stats bucket must be at least one second".into() });
        }
        let (range, tenant) = (*range, tenant.map(str::to_owned));
        self.with_reader(move |connection| read::request_stats(connection, &range, bucket_secs, tenant.as_deref())).await
    }
}

#[async_trait]
impl RunStore for SqliteBackend {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let run = run.clone();
        self.with_writer(move |connection| runs::save(connection, &run)).await
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let run_id = run_id.to_owned();
        self.with_reader(move |connection| runs::get(connection, &run_id)).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        filter.check()?;
        let filter = filter.clone();
        self.with_reader(move |connection| runs::list(connection, &filter)).await
    }

    async fn run_traces(&self, run_ids: &[String], since_ns: i64) -> Result<Vec<RunTrace>, StoreError> {
        check_run_ids(run_ids)?;
        let run_ids = run_ids.to_vec();
        self.with_reader(move |connection| runs::traces(connection, &run_ids, since_ns)).await
    }
}
