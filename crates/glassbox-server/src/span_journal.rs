//! A write-ahead journal of span rows and usage rows, so that a server killed without warning
//! (SIGKILL, an OOM kill, a crash) loses no span or usage row of a request it answered.
//!
//! The telemetry writer holds rows in memory for up to a flush interval (longer while the
//! store is down and batches wait on the spool); a kill loses them. So every span row is also
//! appended to a journal, on the thread that ended the span:
//!
//! - `<spool_dir>/journal/spans-<uuidv7>.<key>.v2.bin`, one binary record per row
//!   (`glassbox_store::spool::encode_span_record`: a marker, a length, the row in postcard's
//!   encoding, a CRC-32 keyed by the process's random `<key>`, so that a record forged in a
//!   span's text never checks out; no JSON escaping on the request path), appended with one
//!   `write` under a short lock; the file handling, rotation and deletion are [`UsageJournal`]'s.
//!   Usage rows are records of the same segments (`encode_usage_record`, marker `gbu1`), so a
//!   request's spans and usage rows leave in one `write` (the usage journal's own JSON line was
//!   a second `write` per request). `.v2` names the segments that may hold usage records: a
//!   version from before them reads no key from such a name and sets the segment aside rather
//!   than drop its usage records as damage; this version reads `<key>.bin` segments too.
//!   Page cache only: a killed process loses nothing, a power cut may lose the last records.
//!   Segments of JSON lines (`spans-*.jsonl`, which versions before the binary journal wrote)
//!   are still read at recovery. (Going back to such a version leaves `spans-*.bin` segments
//!   unread: recover them first by starting this version once.)
//! - Group commit: the line of a span inside a request span (kind `Server`) waits in its
//!   parent's registry extensions, which the registry closes only after all its children;
//!   when the request span closes, the lines of all its spans and usage rows go out in one
//!   `write`. A span marked with `SpanExt::gather_journal_lines` (online evals' `online_evals`)
//!   gathers its children's lines the same way. Other spans outside a request write their own
//!   line when they end. (A `write(2)` per span was a tenth of the server's CPU under load.)
//! - The row is handed to the writer *before* its line is appended, so a segment rotated out
//!   holds only rows the writer has; it is deleted once a writer flush after the rotation
//!   returns (the rows are then stored or spooled).
//! - A request's own span ends when hyper drops its response body, which it does before it
//!   flushes the body's last bytes: so the span of every request a client saw answered, and
//!   of all its children, is in the journal before the answer is complete. (Work that
//!   outlives its request, like the online scorers, runs in spans outside the request's
//!   registry tree, so it does not hold the request span open.)
//! - At start, the segments of an earlier process are recovered in the background: a row that
//!   is neither in a spooled batch of its kind (checked first, so a replay in between is seen)
//!   nor in the store is written again (a usage row also to the budgets' observer); then the
//!   segment is deleted. Recovery waits while the store does not answer.
//!
//! What a kill can still lose: spans not yet ended when it lands (they belong to requests
//! whose answer was not complete, or to work that outlives its request), and a span between
//! its hand-over to the writer and its journal `write` (microseconds, also before the
//! answer's end).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use glassbox_store::spool::{BatchKind, JournalRecords};
use glassbox_store::writer::TelemetryWriter;
use glassbox_store::{SpanRow, TraceReader, UsageRow};

use crate::usage_journal::{JournalError, USAGE_PREFIX, UsageJournal};

const PREFIX: &str = "spans-";

/// The name tag of segments that may hold usage records (`spans-<uuid>.<key>.v2.bin`). A
/// version from before usage records reads no key from such a name, so it sets the segment
/// aside unread (`*.unreadable`) instead of skipping its usage records as damage and deleting
/// it; this version reads both namings.
const WITH_USAGE_TAG: &str = "v2";

/// Opens the span journal in `dir` (shared with the usage journal) with a fresh segment;
/// returns the segments an earlier process left, for [`recover`]: this journal's, and the
/// usage journal's (`usage_journal`) that an older `serve` wrote. Rotate it with
/// [`crate::usage_journal::spawn_rotation`].
pub fn open(dir: impl Into<PathBuf>) -> Result<(Arc<UsageJournal>, Vec<PathBuf>), JournalError> {
    UsageJournal::open_segments(dir, PREFIX, format!("{:08x}.{WITH_USAGE_TAG}.bin", key()), &[PREFIX, USAGE_PREFIX])
}

/// This process's key for its span records, from the operating system's CSPRNG (a clock
/// and counter if that fails: forging then needs the start time); in its segments' names.
fn key() -> u32 {
    static KEY: OnceLock<u32> = OnceLock::new();
    *KEY.get_or_init(|| match crate::access::secret::random_bytes::<4>() {
        Ok(bytes) => u32::from_le_bytes(bytes),
        Err(_) => fastrand::u32(..),
    })
}

/// The key in a segment's name (`spans-<uuid>.<key>.v2.bin`, or `spans-<uuid>.<key>.bin` from
/// before usage records).
fn segment_key(path: &Path) -> Option<u32> {
    let stem = path.file_stem()?.to_str()?;
    let stem = stem.strip_suffix(WITH_USAGE_TAG).and_then(|stem| stem.strip_suffix('.')).unwrap_or(stem);
    let (_, key) = stem.rsplit_once('.')?;
    u32::from_str_radix(key, 16).ok()
}

/// Appends the journal record of `row` to `lines`; made before the row is handed to the
/// writer (which takes it). Nothing if it cannot be encoded, which a `SpanRow` always can.
pub fn encode_into(row: &SpanRow, lines: &mut Vec<u8>) {
    // An error leaves `lines` as it was (`encode_span_record`).
    let _unencodable = glassbox_store::spool::encode_span_record(row, key(), lines);
}

/// Appends the journal record of the usage row `row` to `lines`, which then leave with the
/// request's span records in one `write`. Nothing if it cannot be encoded, which a `UsageRow`
/// always can.
pub fn encode_usage_into(row: &UsageRow, lines: &mut Vec<u8>) {
    // An error leaves `lines` as it was (`encode_usage_record`).
    let _unencodable = glassbox_store::spool::encode_usage_record(row, key(), lines);
}

/// The rows of one segment: binary records (spans, and usage rows since the `v2` segments), or
/// JSON lines an older version wrote (spans in `spans-*.jsonl`, usage rows in the usage
/// journal's `usage-*.jsonl`). A record or line cut short (a write a kill interrupted) is
/// skipped: its request was never answered. `None` for a segment of records in a format this
/// version does not know (no key in its name, or it does not start with one of this version's
/// markers): a later version's, which must not be deleted unread.
pub fn segment_rows(path: &Path, bytes: &[u8]) -> Option<JournalRecords> {
    use glassbox_store::spool::{SPAN_RECORD_MAGIC, USAGE_RECORD_MAGIC, decode_span_line, decode_usage_line};
    if path.extension().is_some_and(|extension| extension == "jsonl") {
        let text = String::from_utf8_lossy(bytes);
        let lines = text.lines();
        let usage_segment = path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(USAGE_PREFIX));
        let mut records = JournalRecords::default();
        match usage_segment {
            true => records.usage = lines.filter_map(|line| decode_usage_line(line).ok()).collect(),
            false => records.spans = lines.filter_map(|line| decode_span_line(line).ok()).collect(),
        }
        return Some(records);
    }
    let key = segment_key(path)?;
    // A segment may start with the newline `UsageJournal::append` writes before its first
    // append after a failed one (also into a fresh segment after a rotation): not a format.
    let first = bytes.iter().position(|&byte| byte != b'\n').unwrap_or(bytes.len());
    let records = &bytes[first..];
    if !records.is_empty() && !records.starts_with(&SPAN_RECORD_MAGIC) && !records.starts_with(&USAGE_RECORD_MAGIC) {
        return None;
    }
    let (records, skipped) = glassbox_store::spool::decode_journal_records(records, key);
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "span journal records cut short or damaged were skipped");
    }
    Some(records)
}

/// Renames a segment this version cannot read to `*.unreadable`: kept for a version that can,
/// and not offered to recovery again.
fn set_aside(segment: &Path) {
    let aside = segment.with_extension("unreadable");
    match std::fs::rename(segment, &aside) {
        Ok(()) => tracing::error!(path = %aside.display(),
            "a span journal segment is in a format this version cannot read; kept, not recovered"),
        Err(error) => tracing::error!(path = %segment.display(), %error,
            "a span journal segment in an unknown format could not be set aside"),
    }
}

/// Writes again the rows of `segments` (an earlier process's: this journal's, and the usage
/// journal's an older version left) that are neither spooled in `spool_dir` nor in the store,
/// span rows and usage rows alike, then deletes the segments. Waits while the store is down.
/// `observer` hears every usage row written again (budgets rebuilt from the store missed them).
pub async fn recover(
    segments: Vec<PathBuf>,
    spool_dir: PathBuf,
    reader: Arc<dyn TraceReader>,
    writer: TelemetryWriter,
    observer: Option<crate::telemetry::UsageObserver>,
) {
    // The spool's row keys, read once for every segment: a row spooled before this start is
    // stored by the spool's replay, and recovery's own rows come from one segment each.
    let spooled = tokio::task::spawn_blocking(move || {
        [BatchKind::Spans, BatchKind::Usage].map(|kind| glassbox_store::spool::spooled_row_keys(&spool_dir, kind))
    })
    .await
    .unwrap_or_default();
    let [spooled_spans, spooled_usage] = &spooled;
    for segment in segments {
        let records = match tokio::fs::read(&segment).await {
            Ok(bytes) => match segment_rows(&segment, &bytes) {
                Some(records) => records,
                None => {
                    set_aside(&segment);
                    continue;
                }
            },
            Err(error) => {
                tracing::error!(path = %segment.display(), %error, "could not read a journal segment");
                continue;
            }
        };
        let mut delay = Duration::from_millis(200);
        let (spans, usage) = loop {
            let found = async {
                let spans = missing(&records.spans, BatchKind::Spans, span_key, spooled_spans, reader.as_ref()).await?;
                let usage = missing(&records.usage, BatchKind::Usage, usage_key, spooled_usage, reader.as_ref()).await?;
                Ok::<_, String>((spans, usage))
            };
            match found.await {
                Ok(missing) => break missing,
                Err(error) => {
                    tracing::warn!(path = %segment.display(), error = %error, retry_in = ?delay,
                        "cannot recover the journal yet: the store does not answer");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        let (recovered, recovered_usage) = (spans.len(), usage.len());
        for row in spans {
            writer.write_span(row);
        }
        for row in usage {
            if let Some(observer) = &observer {
                observer(&row);
            }
            writer.write_usage(row);
        }
        writer.flush().await;
        crate::usage_journal::remove(&segment);
        tracing::info!(path = %segment.display(), rows = records.spans.len(), recovered,
            usage_rows = records.usage.len(), recovered_usage, "journal of an earlier run recovered");
    }
}

fn span_key(row: &SpanRow) -> (&str, &str) {
    (&row.trace_id, &row.span_id)
}

fn usage_key(row: &UsageRow) -> (&str, &str) {
    (&row.trace_id, &row.span_id)
}

/// The span ids of a trace's stored rows.
fn ids_of<T>(rows: Vec<T>, key: fn(&T) -> (&str, &str)) -> HashSet<String> {
    rows.iter().map(|row| key(row).1.to_owned()).collect()
}

/// The rows of `rows` (of `kind`; `key` gives a row's trace and span id) that are neither in
/// a spooled batch of that kind (checked first, so a replay in between is seen) nor in the
/// store.
async fn missing<T: Clone>(
    rows: &[T],
    kind: BatchKind,
    key: fn(&T) -> (&str, &str),
    spooled: &HashSet<(String, String)>,
    reader: &dyn TraceReader,
) -> Result<Vec<T>, String> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut stored: HashMap<String, HashSet<String>> = HashMap::new();
    let mut missing = Vec::new();
    for row in rows {
        let (trace_id, span_id) = key(row);
        if spooled.contains(&(trace_id.to_owned(), span_id.to_owned())) {
            continue;
        }
        if !stored.contains_key(trace_id) {
            let ids = match kind {
                BatchKind::Spans => reader.trace_spans(trace_id).await.map(|rows| ids_of(rows, span_key)),
                BatchKind::Usage => reader.trace_usage(trace_id).await.map(|rows| ids_of(rows, usage_key)),
            };
            stored.insert(trace_id.to_owned(), ids.map_err(|error| crate::error::chain(&error))?);
        }
        if !stored.get(trace_id).is_some_and(|ids| ids.contains(span_id)) {
            missing.push(row.clone());
        }
    }
    Ok(missing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use glassbox_store::{SpanEvent, SpanLink, StatusCode};

    use super::*;
    use crate::usage_journal::tests::row as usage;

    fn encode(row: &SpanRow) -> Vec<u8> {
        let mut line = Vec::new();
        encode_into(row, &mut line);
        line
    }

    fn row(n: u64) -> SpanRow {
        SpanRow {
            timestamp_ns: 1_700_000_000_000_000_000,
            trace_id: format!("{n:032x}"),
            span_id: format!("{n:016x}"),
            parent_span_id: String::new(),
            trace_state: String::new(),
            span_name: "chat \"quoted\"\nmodel".into(),
            span_kind: "Client".into(),
            service_name: "glassbox".into(),
            resource_attributes: vec![("service.name".into(), "glassbox".into())],
            scope_name: "glassbox".into(),
            scope_version: String::new(),
            span_attributes: vec![("gen_ai.operation.name".into(), "chat".into())],
            duration_ns: n,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            events: vec![SpanEvent { timestamp_ns: 5, name: "retry".into(), attributes: vec![("n".into(), "1".into())] }],
            links: vec![SpanLink { trace_id: "t".into(), span_id: "s".into(), trace_state: String::new(), attributes: vec![] }],
        }
    }

    #[test]
    fn records_read_back_as_the_rows_written_a_torn_record_is_skipped_and_usage_segments_are_not_mixed_in() {
        let dir = tempfile::tempdir().unwrap();
        let (spans, leftover) = open(dir.path()).unwrap();
        assert!(leftover.is_empty());
        // An older version's usage journal, and a file of neither journal.
        let (usage, _) = UsageJournal::open(dir.path()).unwrap();
        usage.append(b"{\"not\":\"a span\"}\n");
        std::fs::write(dir.path().join("notes.bin"), b"not a segment").unwrap();
        for n in 1..=3 {
            spans.append(&encode(&row(n)));
        }
        let torn = encode(&row(4));
        spans.append(&torn[..torn.len() / 2]);
        // The newline a failed append leaves before the next one (`UsageJournal::append`).
        spans.append(b"\n");
        spans.append(&encode(&row(5)));
        let (_second, leftover) = open(dir.path()).unwrap();
        // One listing finds both journals' segments (the usage journal's for `recover` too).
        assert_eq!(leftover.len(), 2, "the first process's span segment and the usage segment: {leftover:?}");
        assert!(leftover[0].to_string_lossy().ends_with(&format!(".{:08x}.v2.bin", key())), "{leftover:?}");
        assert!(leftover[1].file_name().unwrap().to_string_lossy().starts_with(USAGE_PREFIX), "{leftover:?}");
        let rows = segment_rows(&leftover[0], &std::fs::read(&leftover[0]).unwrap()).map(|records| records.spans);
        assert_eq!(rows, Some(vec![row(1), row(2), row(3), row(5)]));
        let usage_rows = segment_rows(&leftover[1], &std::fs::read(&leftover[1]).unwrap()).map(|records| records.spans);
        assert_eq!(usage_rows, Some(vec![]), "no span rows read from the usage segment");
    }

    /// The newline the journal writes before its first append after a failed one, when the
    /// failed write left nothing, sits between two whole records: nothing is counted skipped.
    #[test]
    fn a_newline_between_records_is_not_damage() {
        let mut bytes = encode(&row(1));
        bytes.push(b'\n');
        bytes.extend_from_slice(&encode(&row(2)));
        let (records, skipped) = glassbox_store::spool::decode_journal_records(&bytes, key());
        assert_eq!((records.spans, skipped), (vec![row(1), row(2)], 0));
    }

    /// A bit flipped inside a record fails its checksum: that record alone is lost.
    #[test]
    fn a_damaged_record_is_skipped_and_the_next_one_read() {
        let mut bytes = Vec::new();
        for n in 1..=3 {
            bytes.extend_from_slice(&encode(&row(n)));
        }
        let second = encode(&row(1)).len() + 20;
        bytes[second] ^= 0x40;
        let (records, skipped) = glassbox_store::spool::decode_journal_records(&bytes, key());
        let rows = records.spans;
        assert_eq!((rows, skipped), (vec![row(1), row(3)], 1));
    }

    /// A request's usage rows go into its span records' `write` and read back from the
    /// segment with them; a segment that starts with a usage record is this version's too.
    #[test]
    fn usage_records_share_the_segment_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (spans, _) = open(dir.path()).unwrap();
        let mut lines = Vec::new();
        encode_usage_into(&usage(1), &mut lines);
        encode_into(&row(1), &mut lines);
        encode_into(&row(2), &mut lines);
        spans.append(&lines);
        let mut lines = Vec::new();
        encode_into(&row(3), &mut lines);
        encode_usage_into(&usage(3), &mut lines);
        spans.append(&lines);
        let (_second, leftover) = open(dir.path()).unwrap();
        let records = segment_rows(&leftover[0], &std::fs::read(&leftover[0]).unwrap()).unwrap();
        assert_eq!(records.spans, vec![row(1), row(2), row(3)]);
        assert_eq!(records.usage, vec![usage(1), usage(3)]);
    }

    /// A segment that starts with the newline an append after failed ones writes first (as
    /// a fresh segment after a rotation may) is read, not set aside as an unknown format.
    #[test]
    fn a_segment_starting_with_the_newline_after_failed_appends_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("spans-0190aaaabbbbccccddddeeeeffff0000.{:08x}.v2.bin", key()));
        let mut bytes = b"\n".to_vec();
        encode_usage_into(&usage(1), &mut bytes);
        encode_into(&row(1), &mut bytes);
        let records = segment_rows(&path, &bytes).expect("read, not set aside");
        assert_eq!((records.spans, records.usage), (vec![row(1)], vec![usage(1)]));
        assert_eq!(segment_rows(&path, b"\n\n"), Some(JournalRecords::default()));
    }

    /// The usage journal's JSON lines an older `serve` left (`usage-*.jsonl`) are read as usage
    /// rows, a torn last line skipped, so one recovery serves both journals.
    #[test]
    fn usage_journal_segments_read_as_usage_rows() {
        let path = Path::new("/journal/usage-0190aaaabbbbccccddddeeeeffff0000.jsonl");
        let mut text = Vec::new();
        for n in 1..=2 {
            UsageJournal::encode_into(&usage(n), &mut text);
        }
        text.extend_from_slice(b"{\"torn\":");
        let records = segment_rows(path, &text).unwrap();
        assert_eq!((records.spans, records.usage), (vec![], vec![usage(1), usage(2)]));
    }

    /// Segments named before usage records (`spans-<uuid>.<key>.bin`) are still read.
    #[test]
    fn segments_named_without_the_usage_tag_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("spans-0190aaaabbbbccccddddeeeeffff0000.{:08x}.bin", key()));
        let bytes = [encode(&row(1)), encode(&row(2))].concat();
        std::fs::write(&path, &bytes).unwrap();
        let (_journal, leftover) = open(dir.path()).unwrap();
        assert_eq!(leftover, vec![path.clone()]);
        assert_eq!(segment_rows(&path, &bytes).map(|records| records.spans), Some(vec![row(1), row(2)]));
        assert_eq!(segment_key(&path), Some(key()));
        assert_eq!(segment_key(&dir.path().join("spans-0190.00000abc.v2.bin")), Some(0xabc));
        assert_eq!(segment_key(&dir.path().join("spans-0190.bin")), None);
    }

    /// Segments of JSON lines, as versions before the binary records wrote them, are read at
    /// recovery.
    #[test]
    fn segments_of_json_lines_from_older_versions_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spans-0190aaaabbbbccccddddeeeeffff0000.jsonl");
        let mut text = Vec::new();
        for n in 1..=2 {
            glassbox_store::spool::encode_span_line(&row(n), &mut text).unwrap();
        }
        text.extend_from_slice(b"{\"torn\":");
        std::fs::write(&path, &text).unwrap();
        let (_journal, leftover) = open(dir.path()).unwrap();
        assert_eq!(leftover, vec![path.clone()]);
        assert_eq!(segment_rows(&path, &text).map(|records| records.spans), Some(vec![row(1), row(2)]));
    }

    /// A segment of another record format (a later version's marker) is not read as torn
    /// records and deleted: it is set aside.
    #[test]
    fn a_segment_in_an_unknown_format_is_set_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("spans-0190aaaabbbbccccddddeeeeffff0000.{:08x}.bin", key()));
        let mut bytes = encode(&row(1));
        bytes[..4].copy_from_slice(b"gbs9");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(segment_rows(&path, &bytes), None);
        assert_eq!(segment_rows(&path, &[]), Some(JournalRecords::default()), "an empty segment is just empty");
        set_aside(&path);
        assert!(!path.exists());
        assert_eq!(std::fs::read(path.with_extension("unreadable")).unwrap(), bytes);
        let (_journal, leftover) = open(dir.path()).unwrap();
        assert!(leftover.is_empty(), "not offered to recovery again: {leftover:?}");
    }
}
