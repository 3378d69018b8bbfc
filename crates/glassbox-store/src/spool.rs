//! The append-only on-disk spool: batches the writer could not deliver, one file per batch,
//! kept until they are replayed into the store.
//!
//! # Format
//! `<spool_dir>/<kind>-<token>.jsonl`, where `kind` is `spans` or `usage` and `token` is the
//! batch's deduplication token (a UUIDv7 in simple hex form, so names sort in creation order).
//! The first line is a header, `{"glassbox_spool":1,"kind":"spans","token":"…","rows":N}`;
//! each following line is one row as a JSON object whose keys are the row's field names.
//!
//! # Durability
//! A batch is written to `.tmp-<kind>-<token>.jsonl`, fsynced, renamed to its final name, and
//! the directory is fsynced: a process killed at any point leaves either a complete batch
//! or a temporary file, never a half batch under a name that replays. Temporary files found at
//! open are set aside as `<kind>-<token>.jsonl.partial` with a warning; a file that does not
//! parse, or whose header disagrees with its name or row count, is set aside as
//! `<name>.corrupt` with an error log. Nothing is deleted except after a successful replay.
//!
//! Every function here does blocking file I/O: async callers run them on the blocking pool.
//! One writer owns a spool directory at a time.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::backend::StoreError;
use crate::json_out::{self, Object};
use crate::rows::{AttributeKey, AttributeText, Attributes, SpanEvent, SpanLink, SpanRow, StatusCode, UsageRow};

/// The version written in every file's header; a file of another version is not replayed.
pub const SPOOL_FORMAT_VERSION: u32 = 1;

const TEMP_PREFIX: &str = ".tmp-";
const EXTENSION: &str = ".jsonl";
const CORRUPT_SUFFIX: &str = ".corrupt";
const PARTIAL_SUFFIX: &str = ".partial";

/// Which table a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BatchKind {
    Spans,
    Usage,
}

impl BatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::Usage => "usage",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "spans" => Some(Self::Spans),
            "usage" => Some(Self::Usage),
            _ => None,
        }
    }
}

/// The rows of one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchRows {
    Spans(Vec<SpanRow>),
    Usage(Vec<UsageRow>),
}

impl BatchRows {
    pub fn kind(&self) -> BatchKind {
        match self {
            Self::Spans(_) => BatchKind::Spans,
            Self::Usage(_) => BatchKind::Usage,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Spans(rows) => rows.len(),
            Self::Usage(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch read back from the spool, with the token it was first sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct SpooledBatch {
    pub token: String,
    pub rows: BatchRows,
}

/// One batch file in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    pub kind: BatchKind,
    pub token: String,
    pub path: PathBuf,
    /// The file's size.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Writing the batch would take the spool past its size limit.
    #[error("spool is full: a batch of {needed} bytes does not fit ({used} of {limit} bytes in use)")]
    Full { needed: u64, used: u64, limit: u64 },
    #[error("spool I/O failed at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file cannot be replayed: it does not parse, or disagrees with its name.
    #[error("spool file {path} is corrupt: {reason}")]
    Corrupt {
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("batch token {token:?} cannot name a spool file (want 1 to 64 of [A-Za-z0-9_-])")]
    BadToken { token: String },
    #[error("could not encode a {kind} batch")]
    Encode {
        kind: &'static str,
        #[source]
        source: sonic_rs::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

/// An open spool directory with running totals of its batch files.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    bytes: AtomicU64,
    files: AtomicU64,
}

impl Spool {
    /// Creates the directory if needed, sets aside temporary files a killed process left
    /// behind, and counts the batches waiting to be replayed.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Spool { path: dir.clone(), source })?;
        let spool = Self { dir, max_bytes, bytes: AtomicU64::new(0), files: AtomicU64::new(0) };
        spool.set_aside_leftover_temporaries()?;
        let entries = spool.list()?;
        spool.files.store(entries.len() as u64, Ordering::Relaxed);
        spool.bytes.store(entries.iter().map(|entry| entry.bytes).sum(), Ordering::Relaxed);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes of batch files waiting to be replayed.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Batch files waiting to be replayed.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    fn set_aside_leftover_temporaries(&self) -> Result<(), StoreError> {
        let read_dir =
            fs::read_dir(&self.dir).map_err(|source| StoreError::Spool { path: self.dir.clone(), source })?;
        for dir_entry in read_dir {
            let dir_entry = dir_entry.map_err(|source| StoreError::Spool { path: self.dir.clone(), source })?;
            let file_name = dir_entry.file_name();
            let Some(name) = file_name.to_str() else { continue };
            let Some(final_name) = name.strip_prefix(TEMP_PREFIX) else { continue };
            let from = dir_entry.path();
            let to = self.dir.join(format!("{final_name}{PARTIAL_SUFFIX}"));
            tracing::warn!(
                from = %from.display(),
                to = %to.display(),
                "spool: an unfinished batch file from a process that stopped mid-write was set aside, not replayed"
            );
            fs::rename(&from, &to).map_err(|source| StoreError::Spool { path: from.clone(), source })?;
        }
        Ok(())
    }

    /// The batch files waiting to be replayed, oldest first (by token, then kind).
    pub fn list(&self) -> Result<Vec<SpoolEntry>, StoreError> {
        let read_dir =
            fs::read_dir(&self.dir).map_err(|source| StoreError::Spool { path: self.dir.clone(), source })?;
        let mut entries = Vec::new();
        for dir_entry in read_dir {
            let dir_entry = dir_entry.map_err(|source| StoreError::Spool { path: self.dir.clone(), source })?;
            let file_name = dir_entry.file_name();
            let Some((kind, token)) = file_name.to_str().and_then(parse_file_name) else { continue };
            let path = dir_entry.path();
            let metadata = match dir_entry.metadata() {
                Ok(metadata) => metadata,
                // Replayed and removed since read_dir saw it.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Spool { path, source }),
            };
            if !metadata.is_file() {
                continue;
            }
            entries.push(SpoolEntry { kind, token: token.to_owned(), path, bytes: metadata.len() });
        }
        entries.sort_by(|a, b| a.token.cmp(&b.token).then(a.kind.cmp(&b.kind)));
        Ok(entries)
    }

    /// Writes a batch of spans durably under its token.
    pub fn write_spans(&self, token: &str, rows: &[SpanRow]) -> Result<SpoolEntry, SpoolError> {
        let encoded = encode_spans(token, rows)?;
        self.write_encoded(BatchKind::Spans, token, &encoded)
    }

    /// Writes a batch of usage rows durably under its token.
    pub fn write_usage(&self, token: &str, rows: &[UsageRow]) -> Result<SpoolEntry, SpoolError> {
        let encoded = encode_usage(token, rows)?;
        self.write_encoded(BatchKind::Usage, token, &encoded)
    }

    pub fn write(&self, token: &str, rows: &BatchRows) -> Result<SpoolEntry, SpoolError> {
        match rows {
            BatchRows::Spans(rows) => self.write_spans(token, rows),
            BatchRows::Usage(rows) => self.write_usage(token, rows),
        }
    }

    fn write_encoded(&self, kind: BatchKind, token: &str, encoded: &[u8]) -> Result<SpoolEntry, SpoolError> {
        if !valid_token(token) {
            return Err(SpoolError::BadToken { token: token.to_owned() });
        }
        let needed = encoded.len() as u64;
        self.reserve(needed)?;
        let result = self.write_file(kind, token, encoded);
        match result {
            Ok(path) => {
                self.files.fetch_add(1, Ordering::Relaxed);
                Ok(SpoolEntry { kind, token: token.to_owned(), path, bytes: needed })
            }
            Err(error) => {
                self.bytes.fetch_sub(needed, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Counts `needed` bytes as used if they fit under the limit.
    fn reserve(&self, needed: u64) -> Result<(), SpoolError> {
        let limit = self.max_bytes;
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(needed).filter(|&total| total <= limit)
            })
            .map(|_| ())
            .map_err(|used| SpoolError::Full { needed, used, limit })
    }

    fn write_file(&self, kind: BatchKind, token: &str, encoded: &[u8]) -> Result<PathBuf, SpoolError> {
        let final_name = format!("{}-{token}{EXTENSION}", kind.as_str());
        let temp_path = self.dir.join(format!("{TEMP_PREFIX}{final_name}"));
        let final_path = self.dir.join(final_name);
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&temp_path)?;
            file.write_all(encoded)?;
            file.sync_all()
        })();
        if let Err(source) = written {
            // Best effort: a leftover temporary is set aside at the next open anyway.
            let _ = fs::remove_file(&temp_path);
            return Err(SpoolError::Io { path: temp_path, source });
        }
        fs::rename(&temp_path, &final_path).map_err(io_error(&temp_path))?;
        self.sync_dir()?;
        Ok(final_path)
    }

    /// Makes renames and removals in the directory durable.
    pub fn sync_dir(&self) -> Result<(), SpoolError> {
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(io_error(&self.dir))
    }

    /// Reads a batch back. A file that cannot be replayed is reported as
    /// [`SpoolError::Corrupt`] and left where it is; see [`Spool::set_aside`].
    pub fn read(&self, entry: &SpoolEntry) -> Result<SpooledBatch, SpoolError> {
        let text = fs::read_to_string(&entry.path).map_err(|source| {
            if source.kind() == io::ErrorKind::InvalidData {
                SpoolError::Corrupt { path: entry.path.clone(), reason: "not UTF-8".to_owned(), source: None }
            } else {
                SpoolError::Io { path: entry.path.clone(), source }
            }
        })?;
        decode(&entry.path, entry.kind, &entry.token, &text)
    }

    /// Removes a replayed batch.
    pub fn remove(&self, entry: &SpoolEntry) -> Result<(), SpoolError> {
        match fs::remove_file(&entry.path) {
            Ok(()) => {
                self.forget(entry);
                Ok(())
            }
            // Already gone: nothing is waiting any more either way.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError::Io { path: entry.path.clone(), source }),
        }
    }

    /// Moves a batch that cannot be replayed to `<name>.corrupt`, with an error log, so a
    /// person can look at it; it is never deleted.
    pub fn set_aside(&self, entry: &SpoolEntry, why: &SpoolError) -> Result<PathBuf, SpoolError> {
        let mut aside = entry.path.clone().into_os_string();
        aside.push(CORRUPT_SUFFIX);
        let aside = PathBuf::from(aside);
        tracing::error!(
            path = %entry.path.display(),
            moved_to = %aside.display(),
            error = %crate::writer::ErrorChain(why),
            "spool: a batch file cannot be replayed; set aside for inspection"
        );
        fs::rename(&entry.path, &aside).map_err(io_error(&entry.path))?;
        self.forget(entry);
        Ok(aside)
    }

    fn forget(&self, entry: &SpoolEntry) {
        let _ = self.files.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |files| Some(files.saturating_sub(1)));
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bytes| Some(bytes.saturating_sub(entry.bytes)));
    }
}

/// (trace id, span id), the key of a span or usage row, of every row in the `kind` batch files
/// of the spool in `dir`: for journals recovering after a kill, which write again only rows
/// that are neither spooled nor stored. Blocking; reads the files without opening the spool
/// (the writer owns it). A file that cannot be read or a line that does not parse is skipped:
/// the replayer reports and sets aside such files.
pub fn spooled_row_keys(dir: &Path, kind: BatchKind) -> HashSet<(String, String)> {
    #[derive(Deserialize)]
    struct Key {
        trace_id: String,
        span_id: String,
    }
    let mut keys = HashSet::new();
    let Ok(read_dir) = fs::read_dir(dir) else { return keys };
    for dir_entry in read_dir.flatten() {
        let file_name = dir_entry.file_name();
        if file_name.to_str().and_then(parse_file_name).is_none_or(|(file_kind, _)| file_kind != kind) {
            continue;
        }
        let Ok(text) = fs::read_to_string(dir_entry.path()) else { continue };
        for line in text.lines().skip(1) {
            if let Ok(Key { trace_id, span_id }) = serde_json::from_str(line) {
                keys.insert((trace_id, span_id));
            }
        }
    }
    keys
}

/// `spans-<token>.jsonl` → (`Spans`, token).
fn parse_file_name(name: &str) -> Option<(BatchKind, &str)> {
    let stem = name.strip_suffix(EXTENSION)?;
    let (kind, token) = stem.split_once('-')?;
    let kind = BatchKind::parse(kind)?;
    valid_token(token).then_some((kind, token))
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

// ---------------------------------------------------------------------------------------------
// Encoding. The row types stay serde-free; these remote definitions mirror them field by
// field (a field added to a row and not here fails to compile, as it does in `write_span`).

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    glassbox_spool: u32,
    kind: &'a str,
    token: &'a str,
    rows: u64,
}

// Serialize only for the tests that hold `write_span` and `write_span_postcard` to the
// derives' output.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(remote = "SpanRow")]
struct SpanRowDef {
    timestamp_ns: i64,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    trace_state: String,
    span_name: String,
    span_kind: String,
    service_name: String,
    resource_attributes: Attributes,
    scope_name: String,
    scope_version: String,
    span_attributes: Attributes,
    duration_ns: u64,
    #[serde(with = "status_code")]
    status_code: StatusCode,
    status_message: String,
    #[serde(with = "span_events")]
    events: Vec<SpanEvent>,
    #[serde(with = "span_links")]
    links: Vec<SpanLink>,
}

// Serialize only for the tests, as `SpanRowDef`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(remote = "SpanEvent")]
struct SpanEventDef {
    timestamp_ns: i64,
    name: AttributeText,
    attributes: Attributes,
}

// Serialize only for the tests, as `SpanRowDef`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(remote = "SpanLink")]
struct SpanLinkDef {
    trace_id: String,
    span_id: String,
    trace_state: String,
    attributes: Attributes,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "UsageRow")]
struct UsageRowDef {
    timestamp_ns: i64,
    trace_id: String,
    span_id: String,
    tenant: String,
    api_key_id: String,
    agent: String,
    workflow: String,
    provider: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    reasoning_tokens: u64,
    cost_nano_usd: i64,
    cost_unknown: bool,
    latency_ns: u64,
    time_to_first_token_ns: u64,
    status: String,
    error_type: String,
}

mod status_code {
    #[cfg(test)]
    use serde::Serializer;
    use serde::{Deserialize, Deserializer};

    use crate::rows::StatusCode;

    #[cfg(test)]
    pub fn serialize<S: Serializer>(code: &StatusCode, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(code.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<StatusCode, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(StatusCode::parse(&text))
    }
}

mod span_events {
    use serde::{Deserialize, Deserializer};
    #[cfg(test)]
    use serde::{Serialize, Serializer};

    use super::SpanEventDef;
    use crate::rows::SpanEvent;

    #[cfg(test)]
    struct Ref<'a>(&'a SpanEvent);

    #[cfg(test)]
    impl Serialize for Ref<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            SpanEventDef::serialize(self.0, serializer)
        }
    }

    #[derive(Deserialize)]
    struct Owned(#[serde(with = "SpanEventDef")] SpanEvent);

    #[cfg(test)]
    pub fn serialize<S: Serializer>(events: &[SpanEvent], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(events.iter().map(Ref))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SpanEvent>, D::Error> {
        let owned = Vec::<Owned>::deserialize(deserializer)?;
        Ok(owned.into_iter().map(|Owned(event)| event).collect())
    }
}

mod span_links {
    use serde::{Deserialize, Deserializer};
    #[cfg(test)]
    use serde::{Serialize, Serializer};

    use super::SpanLinkDef;
    use crate::rows::SpanLink;

    #[cfg(test)]
    struct Ref<'a>(&'a SpanLink);

    #[cfg(test)]
    impl Serialize for Ref<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            SpanLinkDef::serialize(self.0, serializer)
        }
    }

    #[derive(Deserialize)]
    struct Owned(#[serde(with = "SpanLinkDef")] SpanLink);

    #[cfg(test)]
    pub fn serialize<S: Serializer>(links: &[SpanLink], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(links.iter().map(Ref))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SpanLink>, D::Error> {
        let owned = Vec::<Owned>::deserialize(deserializer)?;
        Ok(owned.into_iter().map(|Owned(link)| link).collect())
    }
}

/// Appends `row` to `out` as one spool line (JSON and `\n`), the format of a batch file's
/// rows; for journals outside the spool that must read back as the same rows. Written by
/// `json_out` (the text `SpanRowDef`'s serde derive reads back; a test holds the two together);
/// on an error `out` is left as it was.
pub fn encode_span_line(row: &SpanRow, out: &mut Vec<u8>) -> Result<(), sonic_rs::Error> {
    append_line(out, |out| write_span(row, out)).map_err(<sonic_rs::Error as serde::ser::Error>::custom)
}

fn write_span(row: &SpanRow, out: &mut Vec<u8>) -> io::Result<()> {
    // Destructured without `..`: a field added to the row and not written here fails to compile.
    let SpanRow {
        timestamp_ns,
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        span_name,
        span_kind,
        service_name,
        resource_attributes,
        scope_name,
        scope_version,
        span_attributes,
        duration_ns,
        status_code,
        status_message,
        events,
        links,
    } = row;
    let mut object = Object::start(out);
    object.i64("timestamp_ns", *timestamp_ns)?;
    object.str("trace_id", trace_id)?;
    object.str("span_id", span_id)?;
    object.str("parent_span_id", parent_span_id)?;
    object.str("trace_state", trace_state)?;
    object.str("span_name", span_name)?;
    object.str("span_kind", span_kind)?;
    object.str("service_name", service_name)?;
    json_out::pairs_as_arrays(object.key("resource_attributes"), resource_attributes)?;
    object.str("scope_name", scope_name)?;
    object.str("scope_version", scope_version)?;
    json_out::pairs_as_arrays(object.key("span_attributes"), span_attributes)?;
    object.u64("duration_ns", *duration_ns)?;
    object.str("status_code", status_code.as_str())?;
    object.str("status_message", status_message)?;
    json_out::array(object.key("events"), events, |out, event| {
        let SpanEvent { timestamp_ns, name, attributes } = event;
        let mut object = Object::start(out);
        object.i64("timestamp_ns", *timestamp_ns)?;
        object.str("name", name)?;
        json_out::pairs_as_arrays(object.key("attributes"), attributes)?;
        object.end();
        Ok(())
    })?;
    json_out::array(object.key("links"), links, |out, link| {
        let SpanLink { trace_id, span_id, trace_state, attributes } = link;
        let mut object = Object::start(out);
        object.str("trace_id", trace_id)?;
        object.str("span_id", span_id)?;
        object.str("trace_state", trace_state)?;
        json_out::pairs_as_arrays(object.key("attributes"), attributes)?;
        object.end();
        Ok(())
    })?;
    object.end();
    Ok(())
}

/// The first bytes of every span journal record (`encode_span_record`), and the format's
/// version: postcard is positional, so a change to the row definition (`SpanRowDef`) needs a
/// new marker and a reader kept for this one (a test pins the bytes).
pub const SPAN_RECORD_MAGIC: [u8; 4] = *b"gbs1";

/// The first bytes of a usage row's record in the span journal (`encode_usage_record`), with
/// the same framing as a span's; versioned the same way (`UsageRowDef`).
pub const USAGE_RECORD_MAGIC: [u8; 4] = *b"gbu1";

/// Appends `row` to `out` as one binary record of the span journal: [`SPAN_RECORD_MAGIC`],
/// the payload's length (`u32`, little-endian), the payload (the row in postcard's encoding of
/// the spool's row definition: lengths and bytes, no escaping) and the CRC-32 of `key`
/// (little-endian) then the payload (`u32`, little-endian). On an error (a row of 4 GiB or
/// more) `out` is left as it was.
///
/// `key` is the writer's secret, kept with its segments (`span_journal`): a reader that lost
/// its place after a damaged record scans for the next marker, and a record forged inside a
/// span's text (a prompt is the caller's) must not check out there.
///
/// The JSON line (`encode_span_line`) cost 41 K instructions per benchmark request, most of
/// them escaping strings that are read back only after a crash (BENCHMARKS.md).
pub fn encode_span_record(row: &SpanRow, key: u32, out: &mut Vec<u8>) -> io::Result<()> {
    out.reserve(approx_span_bytes(row) + 16);
    encode_record(SPAN_RECORD_MAGIC, key, out, |out| {
        write_span_postcard(row, out);
        Ok(())
    })
}

/// Appends `row` to `out` as one record of the span journal, framed as
/// [`encode_span_record`]'s but marked [`USAGE_RECORD_MAGIC`], so that a request's spans and
/// usage rows leave in one `write` (`span_journal`). On an error `out` is left as it was.
pub fn encode_usage_record(row: &UsageRow, key: u32, out: &mut Vec<u8>) -> io::Result<()> {
    /// Postcard appends through `Extend`; this extends the caller's buffer in place.
    struct Appender<'a>(&'a mut Vec<u8>);
    impl Extend<u8> for Appender<'_> {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
            self.0.extend(bytes);
        }
    }
    out.reserve(approx_usage_bytes(row) + 16);
    encode_record(USAGE_RECORD_MAGIC, key, out, |out| {
        postcard::to_extend(&UsageRowRef(row), Appender(out))
            .map(drop)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    })
}

/// The framing of a journal record around the payload `write` appends (see
/// [`encode_span_record`]); on an error `out` is left as it was.
fn encode_record(
    magic: [u8; 4],
    key: u32,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&magic);
    out.extend_from_slice(&[0; 4]);
    let payload_start = out.len();
    if let Err(error) = write(out) {
        out.truncate(start);
        return Err(error);
    }
    let Ok(length) = u32::try_from(out.len() - payload_start) else {
        out.truncate(start);
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a row of 4 GiB or more cannot be journaled"));
    };
    out[payload_start - 4..payload_start].copy_from_slice(&length.to_le_bytes());
    let checksum = keyed_crc(key, &out[payload_start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// What a span journal segment holds: its span rows and usage rows, in the order written.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JournalRecords {
    pub spans: Vec<SpanRow>,
    pub usage: Vec<UsageRow>,
}

/// Reads the records [`encode_span_record`] and [`encode_usage_record`] wrote into `bytes`. A
/// record that is cut short (a write a kill interrupted) or does not check out is skipped, and
/// reading goes on at the next marker of either kind; returns the rows and how many such
/// stretches were skipped. `key` is the one the records were written with.
pub fn decode_journal_records(bytes: &[u8], key: u32) -> (JournalRecords, usize) {
    let mut records = JournalRecords::default();
    let mut skipped = 0;
    let mut at = 0;
    let marked = |rest: &[u8]| rest.starts_with(&SPAN_RECORD_MAGIC) || rest.starts_with(&USAGE_RECORD_MAGIC);
    while at < bytes.len() {
        match record_at(bytes, at, key) {
            Some((Record::Span(row), next)) => {
                records.spans.push(row);
                at = next;
            }
            Some((Record::Usage(row), next)) => {
                records.usage.push(row);
                at = next;
            }
            // The newline the journal writes before its first append after a failed one
            // (`UsageJournal::append`), right before a record: not damage. (The record after it
            // is read once, by the next turn.)
            None if bytes[at] == b'\n' && marked(&bytes[at + 1..]) => at += 1,
            None => {
                skipped += 1;
                at = bytes[at + 1..]
                    .windows(SPAN_RECORD_MAGIC.len())
                    .position(marked)
                    .map_or(bytes.len(), |offset| at + 1 + offset);
            }
        }
    }
    (records, skipped)
}

enum Record {
    Span(SpanRow),
    Usage(UsageRow),
}

/// The row of the record at `at` and where the next one starts, if the record is whole.
fn record_at(bytes: &[u8], at: usize, key: u32) -> Option<(Record, usize)> {
    let rest = bytes.get(at..)?;
    let magic: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    if magic != SPAN_RECORD_MAGIC && magic != USAGE_RECORD_MAGIC {
        return None;
    }
    let length = usize::try_from(u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?)).ok()?;
    let (payload, rest) = rest.get(8..)?.split_at_checked(length)?;
    let checksum = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    if keyed_crc(key, payload) != checksum {
        return None;
    }
    let record = if magic == SPAN_RECORD_MAGIC {
        let SpanRowOwned(row) = postcard::from_bytes(payload).ok()?;
        Record::Span(row)
    } else {
        let UsageRowOwned(row) = postcard::from_bytes(payload).ok()?;
        Record::Usage(row)
    };
    Some((record, at + magic.len() + 8 + length))
}

#[derive(Deserialize)]
struct UsageRowOwned(#[serde(with = "UsageRowDef")] UsageRow);

/// A usage row through its serde definition ([`UsageRowDef`]).
struct UsageRowRef<'a>(&'a UsageRow);

impl Serialize for UsageRowRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        UsageRowDef::serialize(self.0, serializer)
    }
}

#[derive(Deserialize)]
struct SpanRowOwned(#[serde(with = "SpanRowDef")] SpanRow);

fn keyed_crc(key: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&key.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// `row` in postcard's encoding of [`SpanRowDef`], written field by field (postcard through
/// serde cost 20.5 K instructions per benchmark request, this a fraction of it). A test holds
/// it to postcard's own bytes, which [`decode_journal_records`] reads.
fn write_span_postcard(row: &SpanRow, out: &mut Vec<u8>) {
    // Destructured without `..`: a field added to the row and not written here fails to compile.
    let SpanRow {
        timestamp_ns,
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        span_name,
        span_kind,
        service_name,
        resource_attributes,
        scope_name,
        scope_version,
        span_attributes,
        duration_ns,
        status_code,
        status_message,
        events,
        links,
    } = row;
    postcard_out::i64(out, *timestamp_ns);
    for text in [trace_id, span_id, parent_span_id, trace_state, span_name, span_kind, service_name] {
        postcard_out::str(out, text);
    }
    postcard_out::pairs(out, resource_attributes);
    postcard_out::str(out, scope_name);
    postcard_out::str(out, scope_version);
    postcard_out::pairs(out, span_attributes);
    postcard_out::varint(out, *duration_ns);
    postcard_out::str(out, status_code.as_str());
    postcard_out::str(out, status_message);
    postcard_out::len(out, events.len());
    for SpanEvent { timestamp_ns, name, attributes } in events {
        postcard_out::i64(out, *timestamp_ns);
        postcard_out::str(out, name);
        postcard_out::pairs(out, attributes);
    }
    postcard_out::len(out, links.len());
    for SpanLink { trace_id, span_id, trace_state, attributes } in links {
        postcard_out::str(out, trace_id);
        postcard_out::str(out, span_id);
        postcard_out::str(out, trace_state);
        postcard_out::pairs(out, attributes);
    }
}

/// The pieces of postcard's wire format the span record uses: unsigned integers and lengths
/// as LEB128 varints, signed ones zigzag-encoded first, a string as its length and bytes, a
/// sequence as its length and elements, a tuple as its elements.
mod postcard_out {
    use crate::rows::AttributeKey;

    pub fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    pub fn len(out: &mut Vec<u8>, len: usize) {
        varint(out, len as u64);
    }

    pub fn i64(out: &mut Vec<u8>, value: i64) {
        varint(out, ((value << 1) ^ (value >> 63)) as u64);
    }

    pub fn str(out: &mut Vec<u8>, text: &str) {
        len(out, text.len());
        out.extend_from_slice(text.as_bytes());
    }

    pub fn pairs(out: &mut Vec<u8>, pairs: &[(AttributeKey, crate::rows::AttributeText)]) {
        len(out, pairs.len());
        for (key, value) in pairs {
            str(out, key);
            str(out, value);
        }
    }
}

/// Reads back one line made by [`encode_span_line`] (without its `\n`).
pub fn decode_span_line(line: &str) -> Result<SpanRow, serde_json::Error> {
    SpanRowDef::deserialize(&mut serde_json::Deserializer::from_str(line))
}

/// One usage row as a JSON line in the spool's row format, for kill-safety journals.
pub fn encode_usage_line(row: &UsageRow, out: &mut Vec<u8>) -> Result<(), sonic_rs::Error> {
    out.reserve(2 * approx_usage_bytes(row));
    append_line(out, |out| UsageRowDef::serialize(row, &mut sonic_rs::Serializer::new(out)))
}

/// Appends one JSON line to `out`; on an error `out` is left as it was (no torn line).
///
/// Usage rows and headers are encoded through serde with sonic-rs (SIMD string escaping), span
/// rows by `json_out` (`write_span`); all are read back with serde_json, the text is plain
/// JSON either way. sonic-rs reserves six bytes per byte of each string it writes, so callers
/// reserve room first.
fn append_line<E>(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
    let start = out.len();
    match write(out) {
        Ok(()) => {
            out.push(b'\n');
            Ok(())
        }
        Err(error) => {
            out.truncate(start);
            Err(error)
        }
    }
}

/// Reads back one line made by [`encode_usage_line`] (without its `\n`).
pub fn decode_usage_line(line: &str) -> Result<UsageRow, serde_json::Error> {
    UsageRowDef::deserialize(&mut serde_json::Deserializer::from_str(line))
}

fn encode_header(out: &mut Vec<u8>, kind: BatchKind, token: &str, rows: usize) -> Result<(), sonic_rs::Error> {
    let header = Header { glassbox_spool: SPOOL_FORMAT_VERSION, kind: kind.as_str(), token, rows: rows as u64 };
    sonic_rs::to_writer(&mut *out, &header)?;
    out.push(b'\n');
    Ok(())
}

fn encode_spans(token: &str, rows: &[SpanRow]) -> Result<Vec<u8>, SpoolError> {
    let encode = || -> Result<Vec<u8>, sonic_rs::Error> {
        let mut out = Vec::with_capacity(2 * rows.iter().map(approx_span_bytes).sum::<usize>() + 128);
        encode_header(&mut out, BatchKind::Spans, token, rows.len())?;
        for row in rows {
            encode_span_line(row, &mut out)?;
        }
        Ok(out)
    };
    encode().map_err(|source| SpoolError::Encode { kind: "spans", source })
}

fn encode_usage(token: &str, rows: &[UsageRow]) -> Result<Vec<u8>, SpoolError> {
    let encode = || -> Result<Vec<u8>, sonic_rs::Error> {
        let mut out = Vec::with_capacity(2 * rows.iter().map(approx_usage_bytes).sum::<usize>() + 128);
        encode_header(&mut out, BatchKind::Usage, token, rows.len())?;
        for row in rows {
            encode_usage_line(row, &mut out)?;
        }
        Ok(out)
    };
    encode().map_err(|source| SpoolError::Encode { kind: "usage", source })
}

fn decode(path: &Path, kind: BatchKind, token: &str, text: &str) -> Result<SpooledBatch, SpoolError> {
    let corrupt = |reason: String, source: Option<serde_json::Error>| SpoolError::Corrupt {
        path: path.to_owned(),
        reason,
        source,
    };
    if !text.ends_with('\n') {
        return Err(corrupt("the last line is unterminated".to_owned(), None));
    }
    let mut lines = text.lines();
    let header_line = lines.next().ok_or_else(|| corrupt("the file is empty".to_owned(), None))?;
    let header: Header<'_> =
        serde_json::from_str(header_line).map_err(|error| corrupt("bad header".to_owned(), Some(error)))?;
    if header.glassbox_spool != SPOOL_FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {}", header.glassbox_spool), None));
    }
    if header.kind != kind.as_str() || header.token != token {
        return Err(corrupt(
            format!(
                "the header says {}-{} but the file name says {}-{token}",
                header.kind,
                header.token,
                kind.as_str()
            ),
            None,
        ));
    }
    let expected = header.rows;
    let row_error = |line: usize, error| corrupt(format!("row {line} does not parse"), Some(error));
    let rows = match kind {
        BatchKind::Spans => {
            let mut rows = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(1 << 16));
            for (index, line) in lines.enumerate() {
                let mut deserializer = serde_json::Deserializer::from_str(line);
                let row = SpanRowDef::deserialize(&mut deserializer)
                    .and_then(|row| deserializer.end().map(|()| row))
                    .map_err(|error| row_error(index + 1, error))?;
                rows.push(row);
            }
            BatchRows::Spans(rows)
        }
        BatchKind::Usage => {
            let mut rows = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(1 << 16));
            for (index, line) in lines.enumerate() {
                let mut deserializer = serde_json::Deserializer::from_str(line);
                let row = UsageRowDef::deserialize(&mut deserializer)
                    .and_then(|row| deserializer.end().map(|()| row))
                    .map_err(|error| row_error(index + 1, error))?;
                rows.push(row);
            }
            BatchRows::Usage(rows)
        }
    };
    if rows.len() as u64 != expected {
        return Err(corrupt(format!("the header promises {expected} rows, the file has {}", rows.len()), None));
    }
    Ok(SpooledBatch { token: token.to_owned(), rows })
}

/// The JSON size of an attribute list, give or take its punctuation.
fn approx_pairs_bytes(pairs: &[(AttributeKey, AttributeText)]) -> usize {
    pairs.iter().map(|(key, value)| key.len() + value.len() + 8).sum()
}

/// Roughly how many bytes a span takes in the spool, without encoding it: for admission
/// decisions on the overflow path, where encoding every row would cost too much.
pub(crate) fn approx_span_bytes(row: &SpanRow) -> usize {
    const FIXED: usize = 420; // key names, punctuation and numbers
    let pairs = approx_pairs_bytes;
    FIXED
        + row.trace_id.len()
        + row.span_id.len()
        + row.parent_span_id.len()
        + row.trace_state.len()
        + row.span_name.len()
        + row.span_kind.len()
        + row.service_name.len()
        + pairs(&row.resource_attributes)
        + row.scope_name.len()
        + row.scope_version.len()
        + pairs(&row.span_attributes)
        + row.status_message.len()
        + row.events.iter().map(|event| 60 + event.name.len() + pairs(&event.attributes)).sum::<usize>()
        + row
            .links
            .iter()
            .map(|link| {
                70 + link.trace_id.len() + link.span_id.len() + link.trace_state.len() + pairs(&link.attributes)
            })
            .sum::<usize>()
}

/// Like [`approx_span_bytes`], for a usage row.
pub(crate) fn approx_usage_bytes(row: &UsageRow) -> usize {
    const FIXED: usize = 480;
    FIXED
        + row.trace_id.len()
        + row.span_id.len()
        + row.tenant.len()
        + row.api_key_id.len()
        + row.agent.len()
        + row.workflow.len()
        + row.provider.len()
        + row.model.len()
        + row.status.len()
        + row.error_type.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(n: u32) -> SpanRow {
        SpanRow {
            timestamp_ns: 1_700_000_000_000_000_000 + i64::from(n),
            trace_id: format!("{n:032x}"),
            span_id: format!("{n:016x}"),
            parent_span_id: String::new(),
            trace_state: String::new(),
            span_name: "chat gpt-4o \"quoted\"\nnewline ünïcode".to_owned(),
            span_kind: "Client".to_owned(),
            service_name: "glassbox".to_owned(),
            resource_attributes: vec![("service.name".into(), "glassbox".into())],
            scope_name: "glassbox".to_owned(),
            scope_version: "0.1.0".to_owned(),
            span_attributes: vec![("gen_ai.request.model".into(), "gpt-4o".into())],
            duration_ns: 1_234,
            status_code: StatusCode::Error,
            status_message: "boom".to_owned(),
            events: vec![SpanEvent {
                timestamp_ns: 5,
                name: "exception".into(),
                attributes: vec![("a".into(), "b".into())],
            }],
            links: vec![SpanLink {
                trace_id: "t".into(),
                span_id: "s".into(),
                trace_state: String::new(),
                attributes: vec![],
            }],
        }
    }

    fn usage(n: u32) -> UsageRow {
        UsageRow {
            timestamp_ns: 1,
            trace_id: format!("{n:032x}"),
            span_id: format!("{n:016x}"),
            tenant: "acme".into(),
            api_key_id: "key_1".into(),
            agent: "support".into(),
            workflow: String::new(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 10,
            output_tokens: 20,
            cached_input_tokens: 3,
            reasoning_tokens: 4,
            cost_nano_usd: -5,
            cost_unknown: true,
            latency_ns: u64::MAX,
            time_to_first_token_ns: 7,
            status: "error".into(),
            error_type: "provider_timeout".into(),
        }
    }

    /// The record's bytes are pinned: segments a killed process left are read by the next
    /// version. A change to the row definition changes them; it needs a new
    /// [`SPAN_RECORD_MAGIC`] and a reader for the old one. (The expected bytes were made by an
    /// independent encoder of the format, not by this code.)
    #[test]
    fn span_records_keep_their_bytes() {
        let expected = [
            "67627331dc0000008280d0e2c6bfce972f20303030303030303030303030303030303030303030303030303030303030",
            "3031103030303030303030303030303030303100002663686174206770742d346f202271756f746564220a6e65776c69",
            "6e6520c3bc6ec3af636f646506436c69656e7408676c617373626f78010c736572766963652e6e616d6508676c617373",
            "626f7808676c617373626f7805302e312e30011467656e5f61692e726571756573742e6d6f64656c066770742d346fd2",
            "09054572726f7204626f6f6d010a09657863657074696f6e0101610162010174017300006e761fca",
        ]
        .concat();
        let mut record = Vec::new();
        encode_span_record(&span(1), 0x0102_0304, &mut record).unwrap();
        let hex: String = record.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, expected);
    }

    /// The hand-written record payload is byte for byte postcard's encoding through serde,
    /// which `decode_journal_records` reads: rows with every field set, odd text and numbers at
    /// the varints' edges, and an empty one.
    #[test]
    fn span_records_are_postcards_encoding_and_read_back() {
        struct Ref<'a>(&'a SpanRow);
        impl Serialize for Ref<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                SpanRowDef::serialize(self.0, serializer)
            }
        }
        let mut odd = span(7);
        odd.timestamp_ns = i64::MIN;
        odd.duration_ns = u64::MAX;
        odd.span_attributes.push(("k\u{0}\"".to_owned().into(), "x".repeat(300).into()));
        odd.events[0].timestamp_ns = -1;
        let mut empty = span(0);
        empty.resource_attributes.clear();
        empty.span_attributes.clear();
        empty.events.clear();
        empty.links.clear();
        empty.status_code = StatusCode::Unset;
        for row in [span(1), odd, empty] {
            let mut mine = Vec::new();
            write_span_postcard(&row, &mut mine);
            assert_eq!(mine, postcard::to_allocvec(&Ref(&row)).unwrap());
            let mut record = Vec::new();
            encode_span_record(&row, 7, &mut record).unwrap();
            let spans = |key| {
                let (records, skipped) = decode_journal_records(&record, key);
                (records.spans, skipped)
            };
            assert_eq!(spans(8), (vec![], 1), "another key's record does not check out");
            assert_eq!(spans(7), (vec![row], 0));
        }
    }

    /// Usage records read back among span records, in the order written; a torn or damaged
    /// record of either kind is skipped and reading goes on at the next marker of either kind;
    /// another key's records do not check out.
    #[test]
    fn usage_records_read_back_among_span_records() {
        let mut odd = usage(9);
        odd.model = "m\u{0}\"\n".into();
        odd.cost_nano_usd = i64::MIN;
        odd.latency_ns = u64::MAX;
        let mut bytes = Vec::new();
        encode_span_record(&span(1), 7, &mut bytes).unwrap();
        encode_usage_record(&usage(1), 7, &mut bytes).unwrap();
        encode_usage_record(&odd, 7, &mut bytes).unwrap();
        let torn_at = bytes.len();
        encode_usage_record(&usage(2), 7, &mut bytes).unwrap();
        bytes.truncate(bytes.len() - 3);
        let damaged_at = bytes.len();
        encode_span_record(&span(2), 7, &mut bytes).unwrap();
        bytes[damaged_at + 12] ^= 0x40;
        encode_span_record(&span(3), 7, &mut bytes).unwrap();
        bytes.push(b'\n');
        encode_usage_record(&usage(3), 7, &mut bytes).unwrap();
        assert!(bytes[torn_at..].starts_with(&USAGE_RECORD_MAGIC));
        let (records, skipped) = decode_journal_records(&bytes, 7);
        assert_eq!(records.spans, vec![span(1), span(3)]);
        assert_eq!(records.usage, vec![usage(1), odd, usage(3)]);
        assert_eq!(skipped, 2, "the torn record, then the damaged one");
        let (other_key, skipped) = decode_journal_records(&bytes, 8);
        assert_eq!((other_key, skipped > 0), (JournalRecords::default(), true));
    }

    /// A usage record's bytes are pinned (the span journal's fuzz seed `usage-record` is the
    /// golden record): postcard is positional, so a field added to `UsageRowDef`, which the
    /// spool's JSON shares, changes `gbu1` records and needs a new marker and a reader kept for
    /// this one. Appended after what the buffer holds.
    #[test]
    fn usage_records_keep_their_bytes() {
        let row = UsageRow {
            timestamp_ns: 1_700_000_000_000_000_000,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            tenant: "acme".into(),
            api_key_id: "key_1a2b3c4d5e6f".into(),
            agent: "assistant".into(),
            workflow: String::new(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 12,
            output_tokens: 34,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cost_nano_usd: 15_000,
            cost_unknown: false,
            latency_ns: 1_234_567,
            time_to_first_token_ns: 0,
            status: "ok".into(),
            error_type: String::new(),
        };
        let golden = include_bytes!("../../../fuzz/corpus/span_journal/usage-record");
        let mut record = b"before".to_vec();
        encode_usage_record(&row, 0x0102_0304, &mut record).unwrap();
        assert_eq!(&record[..6], b"before");
        assert_eq!(&record[6..], golden);
        assert_eq!(record[6..].len(), golden.len());
        let payload = postcard::to_allocvec(&UsageRowRef(&row)).unwrap();
        assert_eq!(&record[14..14 + payload.len()], &payload[..], "the payload is postcard's, through serde");
    }

    /// The hand-written line is exactly the text `SpanRowDef`'s serde derive writes (the
    /// format decoders and earlier files use), for a row with every list filled and strings
    /// that need escaping; and it reads back as the same row.
    #[test]
    fn span_lines_are_the_serde_derives_text() {
        let mut row = span(7);
        row.links = vec![SpanLink {
            trace_id: "t\"1".into(),
            span_id: "s".into(),
            trace_state: "k=v".into(),
            attributes: vec![("x".into(), "\u{1}\\".into()), ("x".into(), Default::default())],
        }];
        row.events.push(SpanEvent { timestamp_ns: -1, name: Default::default(), attributes: vec![] });
        row.duration_ns = u64::MAX;
        // Earlier files were written through this derive by sonic-rs; serde_json writes the same.
        let mut derived = Vec::new();
        SpanRowDef::serialize(&row, &mut sonic_rs::Serializer::new(&mut derived)).expect("sonic-rs");
        derived.push(b'\n');
        let mut by_serde_json = Vec::new();
        SpanRowDef::serialize(&row, &mut serde_json::Serializer::new(&mut by_serde_json)).expect("serde_json");
        by_serde_json.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&derived), String::from_utf8_lossy(&by_serde_json));
        let mut written = b"earlier line\n".to_vec();
        encode_span_line(&row, &mut written).expect("encode");
        assert_eq!(String::from_utf8_lossy(&written[13..]), String::from_utf8_lossy(&derived));
        let line = std::str::from_utf8(&written[13..written.len() - 1]).expect("utf-8");
        assert_eq!(decode_span_line(line).expect("decode"), row);
    }

    /// The keys of one kind's rows only; unrelated and unreadable files are skipped.
    #[test]
    fn spooled_row_keys_are_of_the_kind_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let spans: Vec<SpanRow> = (0..2).map(span).collect();
        spool.write_spans("0001", &spans).unwrap();
        spool.write_usage("0002", &[usage(5)]).unwrap();
        fs::write(dir.path().join("notes.txt"), "not a batch").unwrap();
        fs::write(dir.path().join("spans-0003.jsonl.corrupt"), "{}\n{").unwrap();
        let key = |trace_id: &str, span_id: &str| (trace_id.to_owned(), span_id.to_owned());
        let span_keys = spooled_row_keys(dir.path(), BatchKind::Spans);
        assert_eq!(span_keys, spans.iter().map(|row| key(&row.trace_id, &row.span_id)).collect());
        let usage_row = usage(5);
        assert_eq!(spooled_row_keys(dir.path(), BatchKind::Usage), HashSet::from([key(&usage_row.trace_id, &usage_row.span_id)]));
    }

    #[test]
    fn round_trips_both_kinds_and_counts_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let spans: Vec<SpanRow> = (0..3).map(span).collect();
        let usage_rows: Vec<UsageRow> = (0..2).map(usage).collect();
        let a = spool.write_spans("0001", &spans).unwrap();
        let b = spool.write_usage("0002", &usage_rows).unwrap();
        assert_eq!(spool.files(), 2);
        assert_eq!(spool.bytes(), a.bytes + b.bytes);
        assert_eq!(a.path, dir.path().join("spans-0001.jsonl"));

        let entries = spool.list().unwrap();
        assert_eq!(entries, vec![a.clone(), b.clone()]);
        assert_eq!(spool.read(&a).unwrap(), SpooledBatch { token: "0001".into(), rows: BatchRows::Spans(spans) });
        assert_eq!(spool.read(&b).unwrap(), SpooledBatch { token: "0002".into(), rows: BatchRows::Usage(usage_rows) });

        // A reopened spool counts the same.
        let reopened = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!((reopened.files(), reopened.bytes()), (2, a.bytes + b.bytes));

        spool.remove(&a).unwrap();
        assert_eq!((spool.files(), spool.bytes()), (1, b.bytes));
        spool.remove(&a).unwrap();
        assert_eq!(spool.files(), 1);
    }

    #[test]
    fn approximate_sizes_are_in_the_right_range() {
        let row = span(1);
        let exact = encode_spans("t", std::slice::from_ref(&row)).unwrap().len();
        let approx = approx_span_bytes(&row);
        assert!(approx * 2 > exact && approx < exact * 2, "approx {approx}, exact {exact}");
        let row = usage(1);
        let exact = encode_usage("t", std::slice::from_ref(&row)).unwrap().len();
        let approx = approx_usage_bytes(&row);
        assert!(approx * 2 > exact && approx < exact * 2, "approx {approx}, exact {exact}");
    }

    #[test]
    fn refuses_writes_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode_spans("0001", &[span(1)]).unwrap().len() as u64;
        let spool = Spool::open(dir.path(), one * 2 + 10).unwrap();
        spool.write_spans("0001", &[span(1)]).unwrap();
        spool.write_spans("0002", &[span(2)]).unwrap();
        assert!(matches!(spool.write_spans("0003", &[span(3)]), Err(SpoolError::Full { .. })));
        assert_eq!(spool.files(), 2);
        assert!(!dir.path().join("spans-0003.jsonl").exists());
    }

    #[test]
    fn corrupt_and_mismatched_files_are_reported_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let good = spool.write_spans("0001", &[span(1), span(2)]).unwrap();
        let text = fs::read_to_string(&good.path).unwrap();
        // Truncated: drop the last row.
        let truncated: String = text.lines().take(2).map(|line| format!("{line}\n")).collect();
        fs::write(dir.path().join("spans-0002.jsonl"), truncated).unwrap();
        // Cut in the middle of a line.
        fs::write(dir.path().join("spans-0003.jsonl"), &text[..text.len() - 7]).unwrap();
        // Renamed: header token differs from the file name.
        fs::write(dir.path().join("spans-0004.jsonl"), &text).unwrap();
        fs::write(dir.path().join("usage-0005.jsonl"), "garbage\n").unwrap();
        // Not ours: ignored entirely.
        fs::write(dir.path().join("notes.txt"), "hello").unwrap();

        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let entries = spool.list().unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(spool.files(), 5);
        assert!(spool.read(&entries[0]).is_ok());
        for entry in &entries[1..] {
            let error = spool.read(entry).unwrap_err();
            assert!(matches!(error, SpoolError::Corrupt { .. }), "{entry:?}: {error:?}");
            let aside = spool.set_aside(entry, &error).unwrap();
            assert!(aside.exists());
            assert!(aside.to_string_lossy().ends_with(".jsonl.corrupt"));
        }
        assert_eq!(spool.files(), 1);
        assert_eq!(spool.bytes(), good.bytes);
        assert_eq!(spool.list().unwrap(), vec![good]);
    }

    #[test]
    fn leftover_temporaries_are_set_aside_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-spans-0009.jsonl"), "{\"glassbox_spool\":1,\"kind\":\"spans\"").unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(spool.files(), 0);
        assert!(spool.list().unwrap().is_empty());
        assert!(dir.path().join("spans-0009.jsonl.partial").exists());
        assert!(!dir.path().join(".tmp-spans-0009.jsonl").exists());
    }

    #[test]
    fn rejects_tokens_that_cannot_name_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        for token in ["", "../x", "a/b", "a.b", &"x".repeat(65)] {
            assert!(matches!(spool.write_spans(token, &[span(1)]), Err(SpoolError::BadToken { .. })), "{token}");
        }
        assert_eq!(spool.bytes(), 0);
    }
}
