//! WAL checkpoints on a thread of their own, at a lowered priority.
//!
//! In WAL mode every commit appends its pages to the `-wal` file, and a checkpoint copies them
//! into the database file. Left to SQLite, the connection that commits past
//! `wal_autocheckpoint` pages (1,000 by default, 4 MB) runs the checkpoint at the end of its
//! commit: on the write thread, a few milliseconds of copying and two `fsync`s at a stretch,
//! about 10 times a second at 5,000 requests a second. Those stretches hold a core of a small
//! machine while requests wait for it (BENCHMARKS.md: with this thread the added p99 at half
//! peak fell from +1.75 to +1.02 ms, lower in each of 4 alternated rounds, CPU per request 4%
//! lower).
//!
//! So the handle with a write thread (`SqliteBackend::open_with_priority`, the server's
//! telemetry store: one per process and file) gets a second connection on this thread, at nice
//! [`NICE`], which runs a `PASSIVE` checkpoint every [`INTERVAL`]: it copies what any handle
//! has committed without ever blocking a writer or a reader. Every handle's write connection
//! keeps its own checkpoint as a backstop, at [`BACKSTOP_PAGES`]: if this thread falls behind
//! (a saturated machine gives a niced thread little CPU), the writer checkpoints what is left
//! and the WAL restarts from its beginning, so the `-wal` file stays under about 80 MB. A
//! process without a write thread (a CLI command, a test) checkpoints at that backstop or when
//! its last connection closes. A checkpoint that fails is retried at the next interval and
//! logged once until one succeeds again; the data stays safe in the WAL meanwhile.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::write_thread::lower_priority;
use super::{ConnectionRole, open_connection};
use crate::backend::StoreError;

/// How often the thread checkpoints.
pub(super) const INTERVAL: Duration = Duration::from_millis(100);

/// The thread's nice value: it yields to request threads, and still gets CPU time on a busy
/// machine (unlike `SCHED_IDLE`, which starved the write thread in the same trial).
pub(super) const NICE: i32 = 10;

/// The write connection's `wal_autocheckpoint` (pages of 4 KB) while this thread runs.
pub(super) const BACKSTOP_PAGES: u32 = 20_000;

/// The checkpoint thread; it ends when this handle is dropped (without waiting for it).
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (a file in WAL mode), on a connection of
    /// its own.
    pub(super) fn spawn(path: &Path) -> Result<Checkpointer, StoreError> {
        let connection = open_connection(path, ConnectionRole::Checkpointer)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let path = path.display().to_string();
        std::thread::Builder::new()
            .name("glassbox-wal-checkpoint".into())
            .spawn(move || {
                lower_priority(NICE, "SQLite checkpoint thread");
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!(path, "SQLite WAL checkpoints work again");
                        }
                        Ok(()) => {}
                        Err(error) if !failing => {
                            failing = true;
                            tracing::warn!(path, error = %error,
                                "a SQLite WAL checkpoint failed; retried every interval, and the write connection \
                                 checkpoints at its backstop meanwhile");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|source| StoreError::Unavailable { source: Box::new(source) })?;
        Ok(Checkpointer { _stop: stop })
    }
}
