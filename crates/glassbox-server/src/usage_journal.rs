//! A write-ahead journal of usage rows as JSON lines, so that a server killed without warning
//! (SIGKILL, an OOM kill, a crash) loses no usage row of a request it acknowledged; and the
//! file handling, rotation and deletion both journals share. `serve` journals usage rows in
//! the span journal's segments instead (the last paragraph below); this journal is for a
//! library that journals usage rows alone, and its segments an earlier version left are
//! still recovered.
//!
//! The telemetry writer batches rows in memory for up to a flush interval (and longer while
//! the store is down and batches are being spooled); a kill loses those rows. Usage rows are
//! what budgets and bills are made of, so each one is also appended to a journal file as it
//! is handed to the writer — on the request's own path, before the response is sent:
//!
//! - `<spool_dir>/journal/usage-<uuidv7>.jsonl`, one row as JSON per line, appended with one
//!   `write` call under a short lock; for a request, one `write` for all its rows when its
//!   request span closes (the group commit of `span_journal`). A failed append (a full disk)
//!   is counted and logged when failures start and stop; the first append after failures
//!   writes a newline first, so a line the failure left torn cannot swallow the next one.
//!   Page cache only: a killed process loses nothing, a power cut may lose the last lines;
//!   the spool's fsync is for batches, not for every request.
//! - The row is handed to the writer *before* its line is appended, so every line of a segment
//!   is in the writer once the segment is rotated out. A rotation task swaps in a new segment
//!   every few seconds, waits for [`TelemetryWriter::flush`] (every row handed over before it
//!   is then in the store or the spool) and deletes the old segment.
//! - At start, segments left by an earlier process are recovered in the background, with the
//!   span journal's (`span_journal::recover`): a row that is neither in a spooled batch nor in
//!   the store is written again; then the segment is deleted. The spool is checked before the
//!   store, so a batch the replayer moves from one to the other meanwhile is still seen. While
//!   the store does not answer, recovery waits.
//!
//! Spans are journaled the same way, in segments of their own (`span_journal`), with the
//! file handling, rotation and deletion of this module. When both are on (as in `serve`),
//! usage rows go into the span journal's segments as records of their own, so a request
//! makes one `write`; this module's JSON lines are then only read, at recovery, from the
//! segments an earlier version left.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use glassbox_store::UsageRow;
use glassbox_store::writer::TelemetryWriter;

/// How often the journal is cut and its settled segment deleted.
pub const ROTATE_EVERY: Duration = Duration::from_secs(5);

/// The journal of one process; see the module documentation.
#[derive(Debug)]
pub struct UsageJournal {
    dir: PathBuf,
    /// `usage-` or `spans-`: the start of every segment's file name.
    prefix: &'static str,
    /// `jsonl` (usage: JSON lines) or `<key>.v2.bin` (`span_journal`'s binary records).
    extension: String,
    current: Mutex<Segment>,
    /// The last append failed (a full disk): failures are logged once, not once per request.
    failing: AtomicBool,
    failed_appends: AtomicU64,
}

#[derive(Debug)]
struct Segment {
    file: std::fs::File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("journal {path}")]
pub struct JournalError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl UsageJournal {
    /// Opens `dir` (creating it) with a fresh segment; returns the segments an earlier process
    /// left there, for [`crate::span_journal::recover`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<(Arc<UsageJournal>, Vec<PathBuf>), JournalError> {
        Self::open_segments(dir, USAGE_PREFIX, "jsonl".to_owned(), &[USAGE_PREFIX])
    }

    /// [`open`](Self::open) for new segments named `{prefix}*.{extension}` (the span journal
    /// shares the directory and all but the records' format). The leftover segments are those
    /// whose names start with one of `leftover_prefixes`, of any extension, for a format an
    /// older version wrote; the directory is listed once for all of them.
    pub(crate) fn open_segments(
        dir: impl Into<PathBuf>,
        prefix: &'static str,
        extension: String,
        leftover_prefixes: &[&str],
    ) -> Result<(Arc<UsageJournal>, Vec<PathBuf>), JournalError> {
        let dir = dir.into();
        let leftover = leftover_segments(&dir, leftover_prefixes)?;
        let segment = Segment::create(&dir, prefix, &extension)?;
        let journal = UsageJournal {
            dir,
            prefix,
            extension,
            current: Mutex::new(segment),
            failing: AtomicBool::new(false),
            failed_appends: AtomicU64::new(0),
        };
        Ok((Arc::new(journal), leftover))
    }

    /// Appends the JSON line of `row` to `lines`; made before the row is handed to the writer
    /// (which takes it). Nothing if it cannot be encoded, which a `UsageRow` always can.
    pub fn encode_into(row: &UsageRow, lines: &mut Vec<u8>) {
        // An error leaves `lines` as it was (`encode_usage_line`).
        let _unencodable = glassbox_store::spool::encode_usage_line(row, lines);
    }

    /// Appends one or more lines made by [`encode_into`](Self::encode_into), with one `write`.
    /// A failure (a full disk) leaves the rows in the writer, only their protection against a
    /// kill is gone: it is counted, and logged when appends start failing and when they work
    /// again, not once per request. The first append after failures starts on a new line, so
    /// a line a failed write left torn cannot swallow the next one.
    pub fn append(&self, line: &[u8]) {
        let mut segment = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let recovering = self.failing.load(Ordering::Acquire);
        let file = &mut segment.file;
        let written = if recovering { file.write_all(b"\n").and_then(|()| file.write_all(line)) } else { file.write_all(line) };
        match written {
            Ok(()) if recovering => {
                self.failing.store(false, Ordering::Release);
                tracing::warn!(
                    path = %segment.path.display(),
                    failed_appends = self.failed_appends(),
                    "appending to the journal works again"
                );
            }
            Ok(()) => {}
            Err(error) => {
                self.failed_appends.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("glassbox_journal_failed_appends_total", "journal" => self.prefix.trim_end_matches('-'))
                    .increment(1);
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        path = %segment.path.display(),
                        error = %error,
                        "could not append to the journal: the rows still go to the store, but a kill would now lose \
                         them; later failures are counted, not logged, until an append works again"
                    );
                }
            }
        }
    }

    /// Appends that failed since the journal was opened.
    pub fn failed_appends(&self) -> u64 {
        self.failed_appends.load(Ordering::Relaxed)
    }

    /// Starts a new segment and returns the path of the one it replaces.
    fn rotate(&self) -> Result<PathBuf, JournalError> {
        let fresh = Segment::create(&self.dir, self.prefix, &self.extension)?;
        let mut segment = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *segment, fresh);
        Ok(old.path)
    }

    /// Deletes the current segment; for after the writer shut down (it wrote or spooled all).
    pub fn remove_current(&self) {
        let segment = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        remove(&segment.path);
    }
}

impl Segment {
    fn create(dir: &Path, prefix: &str, extension: &str) -> Result<Segment, JournalError> {
        let path = dir.join(format!("{prefix}{}.{extension}", uuid::Uuid::now_v7().simple()));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|source| JournalError { path: path.clone(), source })?;
        Ok(Segment { file, path })
    }
}

/// The start of this journal's segment names. `serve` journals usage rows in the span
/// journal's segments, and recovers the ones a version before that left under this name.
pub(crate) const USAGE_PREFIX: &str = "usage-";

fn leftover_segments(dir: &Path, prefixes: &[&str]) -> Result<Vec<PathBuf>, JournalError> {
    std::fs::create_dir_all(dir).map_err(|source| JournalError { path: dir.to_owned(), source })?;
    let mut leftover: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| JournalError { path: dir.to_owned(), source })?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| prefixes.iter().any(|prefix| is_segment(path, prefix)))
        .collect();
    leftover.sort();
    Ok(leftover)
}

fn is_segment(path: &Path, prefix: &str) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(prefix) && (name.ends_with(".jsonl") || name.ends_with(".bin")))
}

pub(crate) fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "could not delete a settled usage journal segment");
    }
}

/// Every [`ROTATE_EVERY`]: a new segment, a writer flush, the old segment deleted. Ends when
/// the writer has shut down (a flush then returns at once, and the last rotation still holds).
pub fn spawn_rotation(journal: Arc<UsageJournal>, writer: TelemetryWriter) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ROTATE_EVERY).await;
            let old = match journal.rotate() {
                Ok(old) => old,
                Err(error) => {
                    tracing::error!(error = %crate::error::chain(&error), "could not rotate the usage journal");
                    continue;
                }
            };
            // Every line of `old` was handed to the writer before it was written.
            writer.flush().await;
            // On the blocking pool: unlinking a segment of tens of megabytes frees its page
            // cache, milliseconds a runtime worker's requests would wait for.
            if let Err(error) = tokio::task::spawn_blocking(move || remove(&old)).await {
                tracing::warn!(%error, "could not delete a settled journal segment");
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    fn encode(row: &UsageRow) -> Vec<u8> {
        let mut line = Vec::new();
        UsageJournal::encode_into(row, &mut line);
        line
    }

    /// A usage row with every field set and text that needs escaping.
    pub(crate) fn row(n: u64) -> UsageRow {
        UsageRow {
            timestamp_ns: 1_700_000_000_000_000_000,
            trace_id: format!("{n:032x}"),
            span_id: format!("{n:016x}"),
            tenant: "acme".into(),
            api_key_id: "key_1".into(),
            agent: "echo".into(),
            workflow: String::new(),
            provider: "openai".into(),
            model: "gpt-\"quoted\"\n".into(),
            input_tokens: n,
            output_tokens: 2 * n,
            cached_input_tokens: 0,
            reasoning_tokens: 1,
            cost_nano_usd: -5,
            cost_unknown: true,
            latency_ns: 42,
            time_to_first_token_ns: 7,
            status: "error".into(),
            error_type: "provider_error".into(),
        }
    }

    #[test]
    fn lines_read_back_as_the_rows_written_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, leftover) = UsageJournal::open(dir.path()).unwrap();
        assert!(leftover.is_empty());
        for n in 1..=3 {
            journal.append(&encode(&row(n)));
        }
        // A line cut by a kill mid-write.
        let torn = encode(&row(4));
        journal.append(&torn[..torn.len() / 2]);
        let (_second, leftover) = UsageJournal::open(dir.path()).unwrap();
        assert_eq!(leftover.len(), 1, "the first process's segment is left over");
        let text = std::fs::read_to_string(&leftover[0]).unwrap();
        let rows: Vec<UsageRow> =
            text.lines().filter_map(|line| glassbox_store::spool::decode_usage_line(line).ok()).collect();
        assert_eq!(rows, vec![row(1), row(2), row(3)]);
    }

    /// A full disk (`/dev/full` answers every write with ENOSPC): appends are counted as failed,
    /// and once writes work again the next line starts on a line of its own.
    #[cfg(target_os = "linux")]
    #[test]
    fn failed_appends_are_counted_and_the_next_line_after_them_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = UsageJournal::open(dir.path()).unwrap();
        let path = {
            let mut segment = journal.current.lock().unwrap();
            let path = segment.path.clone();
            segment.file = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
            path
        };
        journal.append(&encode(&row(1)));
        journal.append(&encode(&row(2)));
        assert_eq!(journal.failed_appends(), 2);
        {
            let mut segment = journal.current.lock().unwrap();
            segment.file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            // What a write cut short by the full disk left behind.
            let torn = encode(&row(3));
            segment.file.write_all(&torn[..torn.len() / 2]).unwrap();
        }
        journal.append(&encode(&row(4)));
        journal.append(&encode(&row(5)));
        assert_eq!(journal.failed_appends(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<UsageRow> =
            text.lines().filter_map(|line| glassbox_store::spool::decode_usage_line(line).ok()).collect();
        assert_eq!(rows, vec![row(4), row(5)]);
    }

    #[test]
    fn rotation_hands_back_the_old_segment_and_writes_on_in_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = UsageJournal::open(dir.path()).unwrap();
        journal.append(&encode(&row(1)));
        let old = journal.rotate().unwrap();
        journal.append(&encode(&row(2)));
        assert_eq!(std::fs::read_to_string(&old).unwrap().lines().count(), 1);
        remove(&old);
        journal.remove_current();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "both segments deleted");
    }
}
