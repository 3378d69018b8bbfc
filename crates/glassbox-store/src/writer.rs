//! The delivery pipeline: span and usage rows from the request path to the store, batched,
//! retried, and spooled to disk when the store is down or slow, so none is lost.
//!
//! ```text
//! write_span / write_usage ──try_send──> bounded queue ──> batcher ──insert (retry, backoff)──> Backend
//!        │ queue full                                        │ still failing / rejected
//!        └──> overflow buffer ──> spiller ──────────────────>┴──> spool ──> replayer ──> Backend
//! ```
//!
//! - `write_*` never blocks and never fails: a full queue spills the row to an overflow buffer
//!   that the spiller writes to the spool. A row is dropped only when the spool cannot take it
//!   (over `spool_max_bytes`, disk full, I/O error); every loss is counted in
//!   [`WriterStats::dropped_rows`] and logged at error level (at most once per
//!   [`LOSS_LOG_INTERVAL`], with the count of losses it stood for).
//! - Each batch gets a fresh deduplication token before its first insert attempt and keeps it
//!   through retries, spooling and replay, so a batch the store took but failed to acknowledge
//!   is never written twice.
//! - After a batch fails every attempt the store is taken as down: later batches go straight to
//!   the spool, without waiting out retries, until the replayer's `ping` answers again.
//! - A batch the store rejects (not retryable) is logged at error level and spooled too; the
//!   replayer tries it again with exponential backoff, not in a loop.
//!
//! The memory held is bounded by `max_queued_rows` rows and `max_queued_bytes` (estimated heap)
//! bytes in the queue — whichever is reached first sends rows to the overflow buffer — two
//! batches in the batcher, and the overflow buffer, which only admits rows whose (estimated) spool size still
//! fits under `spool_max_bytes`.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{Backend, StoreError};
use crate::rows::{SpanRow, UsageRow};
use crate::spool::{BatchRows, Spool, SpoolEntry, SpoolError, approx_span_bytes, approx_usage_bytes};

/// How often, at most, a loss of telemetry is logged; the losses in between are summed into
/// the next log line (and always counted in [`WriterStats::dropped_rows`]).
pub const LOSS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The longest a rejected spooled batch waits between replay attempts.
const MAX_REJECTED_BACKOFF: Duration = Duration::from_secs(3600);

/// How many queued messages the batcher takes per wake-up.
const INBOX_LIMIT: usize = 256;

/// Tuning of a [`TelemetryWriter`]; [`WriterConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// A batch is sent when it has this many rows; `None` (the default) is the store's own
    /// size, [`Backend::batch_rows`](crate::Backend::batch_rows).
    pub batch_rows: Option<usize>,
    /// ...or when its oldest row has waited this long (default 1 s).
    pub flush_interval: Duration,
    /// Rows the in-memory queue holds before rows spill to the spool (default 100 000).
    pub max_queued_rows: usize,
    /// Estimated bytes of memory the rows in the queue hold before rows spill to the spool
    /// (default 16 MiB). Rows carry captured prompts and completions, so a row count alone does not
    /// bound memory: 100 000 rows of a few kilobytes each are hundreds of megabytes.
    pub max_queued_bytes: u64,
    /// Retries after a failed first attempt, on retryable errors (default 3: four attempts).
    pub retry_attempts: u32,
    /// The first retry waits about this long, each next one twice as long, with jitter
    /// (default 200 ms).
    pub retry_base: Duration,
    /// One insert attempt is abandoned (and counted as a retryable failure) after this long
    /// (default 10 s).
    pub insert_timeout: Duration,
    /// Where undelivered batches wait.
    pub spool_dir: PathBuf,
    /// How often the spool is replayed while it has batches (default 5 s); also at start.
    pub replay_interval: Duration,
    /// The spool's size limit (default 1 GiB). Past it, rows are dropped, counted and logged.
    pub spool_max_bytes: u64,
    /// At shutdown, each remaining batch gets one attempt of at most this long before it is
    /// spooled (default 2 s).
    pub shutdown_insert_timeout: Duration,
}

impl WriterConfig {
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            batch_rows: None,
            flush_interval: Duration::from_secs(1),
            max_queued_rows: 100_000,
            max_queued_bytes: 16 << 20,
            retry_attempts: 3,
            retry_base: Duration::from_millis(200),
            insert_timeout: Duration::from_secs(10),
            spool_dir: spool_dir.into(),
            replay_interval: Duration::from_secs(5),
            spool_max_bytes: 1 << 30,
            shutdown_insert_timeout: Duration::from_secs(2),
        }
    }
}

/// Counters of a writer since it started. `written_rows + spooled_rows + dropped_rows`
/// accounts for every row handed to it once `queued_rows` is 0; `replayed_rows` counts spooled
/// rows that later reached the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Rows accepted and not yet written, spooled or dropped.
    pub queued_rows: u64,
    /// Rows inserted into the store from the queue.
    pub written_rows: u64,
    /// Rows written to the spool (failed batches and queue overflow).
    pub spooled_rows: u64,
    /// Spooled rows inserted into the store by replay.
    pub replayed_rows: u64,
    /// Rows lost because the spool could not take them. Anything but 0 is a problem.
    pub dropped_rows: u64,
    /// Bytes of batch files in the spool now.
    pub spool_bytes: u64,
    /// Batch files in the spool now.
    pub spool_files: u64,
}

/// The handle to the delivery pipeline; clones share it. Call [`TelemetryWriter::shutdown`]
/// before exit; dropping every handle also stops the tasks (draining the queue with one
/// attempt per batch) but nobody waits for that to finish.
#[derive(Clone)]
pub struct TelemetryWriter {
    inner: Arc<Inner>,
}

impl fmt::Debug for TelemetryWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryWriter")
            .field("backend", &self.inner.shared.backend.name())
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the handles own. The tasks only hold [`Shared`], so dropping the last handle closes
/// the queue and the stop signal, which ends them.
struct Inner {
    sender: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held for the whole of `shutdown`; `true` once it has completed.
    shutdown_done: tokio::sync::Mutex<bool>,
}

/// Rows carry their estimated size, counted in [`Shared::queued_bytes`] while queued.
enum Message {
    Span(SpanRow, u32),
    Usage(UsageRow, u32),
    /// Acknowledged once every message before it is delivered or spooled.
    Flush(oneshot::Sender<()>),
}

/// The memory a queued row holds: its own size and every heap allocation's capacity, plus
/// what the allocator keeps per allocation. The queue's byte bound counts this, not the row's
/// (much smaller) spool size: a span of twenty attributes is some forty allocations.
mod heap {
    use std::borrow::Cow;

    use crate::rows::{AttributeKey, AttributeText, Attributes, SpanRow, UsageRow};

    /// Allocator bookkeeping and rounding per allocation (glibc: a 16-byte header and
    /// 16-byte alignment).
    const PER_ALLOCATION: usize = 24;

    fn text(text: &str, capacity: usize) -> usize {
        if capacity == 0 { 0 } else { capacity.max(text.len()) + PER_ALLOCATION }
    }

    fn string(value: &String) -> usize {
        text(value, value.capacity())
    }

    /// Inline (up to 24 bytes) and `&'static` text owns no heap.
    fn compact(value: &AttributeText) -> usize {
        if value.is_heap_allocated() { text(value, value.capacity()) } else { 0 }
    }

    /// A borrowed key (a `tracing` field's name) is static: no heap.
    fn key(key: &AttributeKey) -> usize {
        match key {
            Cow::Owned(key) => string(key),
            Cow::Borrowed(_) => 0,
        }
    }

    fn pairs(pairs: &Attributes) -> usize {
        let pair = size_of::<(AttributeKey, AttributeText)>();
        let own = if pairs.capacity() == 0 { 0 } else { pairs.capacity() * pair + PER_ALLOCATION };
        own + pairs.iter().map(|(name, value)| key(name) + compact(value)).sum::<usize>()
    }

    pub(super) fn span(row: &SpanRow) -> usize {
        size_of::<SpanRow>()
            + [&row.trace_id, &row.span_id, &row.parent_span_id, &row.trace_state, &row.span_name, &row.span_kind]
                .into_iter()
                .chain([&row.service_name, &row.scope_name, &row.scope_version, &row.status_message])
                .map(string)
                .sum::<usize>()
            + pairs(&row.resource_attributes)
            + pairs(&row.span_attributes)
            + row
                .events
                .iter()
                .map(|event| size_of_val(event) + compact(&event.name) + pairs(&event.attributes))
                .sum::<usize>()
            + row
                .links
                .iter()
                .map(|link| {
                    size_of_val(link)
                        + string(&link.trace_id)
                        + string(&link.span_id)
                        + string(&link.trace_state)
                        + pairs(&link.attributes)
                })
                .sum::<usize>()
    }

    pub(super) fn usage(row: &UsageRow) -> usize {
        size_of::<UsageRow>()
            + [&row.trace_id, &row.span_id, &row.tenant, &row.api_key_id, &row.agent, &row.workflow, &row.provider]
                .into_iter()
                .chain([&row.model, &row.status, &row.error_type])
                .map(string)
                .sum::<usize>()
    }
}

impl Message {
    fn bytes(&self) -> u32 {
        match self {
            Message::Span(_, bytes) | Message::Usage(_, bytes) => *bytes,
            Message::Flush(_) => 0,
        }
    }
}

/// What the writer's tasks share.
struct Shared {
    backend: Arc<dyn Backend>,
    config: WriterConfig,
    /// `config.batch_rows`, or the store's own size when it is `None`; at least 1.
    batch_rows: usize,
    spool: Arc<Spool>,
    counters: Counters,
    /// Estimated bytes of the rows in the queue (`max_queued_bytes`).
    queued_bytes: AtomicU64,
    /// Signalled each time the batcher takes rows off the queue ([`TelemetryWriter::admit`]).
    room: Notify,
    /// Rows that found the queue full, waiting for the spiller.
    overflow: Mutex<Overflow>,
    overflow_ready: Notify,
    /// Held while overflow rows are taken and written, so `flush` can wait for a spill in
    /// progress.
    spill_lock: tokio::sync::Mutex<()>,
    /// The last batch failed every attempt and the store has not answered a ping since.
    backend_down: AtomicBool,
    /// Spooled batches the store rejected, by token: when the replayer may try them again.
    rejected: Mutex<HashMap<String, RejectedBackoff>>,
    loss_log: LossLog,
    /// `true` (or closed) once the writer is shutting down.
    stop: watch::Receiver<bool>,
}

#[derive(Default)]
struct Counters {
    /// Rows the batcher has taken from the queue and not yet delivered, spooled or dropped.
    in_batcher: AtomicU64,
    written: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Overflow {
    spans: Vec<SpanRow>,
    usage: Vec<UsageRow>,
    /// Estimated spool bytes of the rows held here and of those being written by a spill.
    reserved_bytes: u64,
    /// Set after the final spill at shutdown: later rows cannot be spooled any more.
    closed: bool,
}

struct RejectedBackoff {
    failures: u32,
    next_attempt: Instant,
}

impl TelemetryWriter {
    /// Opens (creating) the spool directory and starts the batcher, the spiller and the
    /// replayer; the replayer makes its first pass over the spool right away, in the
    /// background.
    pub async fn start(backend: Arc<dyn Backend>, config: WriterConfig) -> Result<TelemetryWriter, StoreError> {
        let mut config = config;
        let batch_rows = config.batch_rows.unwrap_or_else(|| backend.batch_rows()).max(1);
        config.max_queued_rows = config.max_queued_rows.max(1);

        let spool_dir = config.spool_dir.clone();
        let spool_max_bytes = config.spool_max_bytes;
        let spool = tokio::task::spawn_blocking(move || Spool::open(spool_dir, spool_max_bytes)).await.map_err(
            |join_error| StoreError::Spool {
                path: config.spool_dir.clone(),
                source: std::io::Error::other(join_error),
            },
        )??;
        if spool.files() > 0 {
            tracing::info!(
                spool_dir = %config.spool_dir.display(),
                files = spool.files(),
                bytes = spool.bytes(),
                "telemetry spool has batches from an earlier run; replaying them in the background"
            );
        }

        let (sender, receiver) = mpsc::channel(config.max_queued_rows);
        let (stop_sender, stop_receiver) = watch::channel(false);
        let shared = Arc::new(Shared {
            backend,
            config,
            batch_rows,
            spool: Arc::new(spool),
            counters: Counters::default(),
            queued_bytes: AtomicU64::new(0),
            room: Notify::new(),
            overflow: Mutex::new(Overflow::default()),
            overflow_ready: Notify::new(),
            spill_lock: tokio::sync::Mutex::new(()),
            backend_down: AtomicBool::new(false),
            rejected: Mutex::new(HashMap::new()),
            loss_log: LossLog::default(),
            stop: stop_receiver,
        });
        let tasks = vec![
            tokio::spawn(run_batcher(Arc::clone(&shared), receiver)),
            tokio::spawn(run_spiller(Arc::clone(&shared))),
            tokio::spawn(run_replayer(Arc::clone(&shared))),
        ];
        Ok(TelemetryWriter {
            inner: Arc::new(Inner {
                sender,
                shared,
                stop: stop_sender,
                tasks: Mutex::new(tasks),
                shutdown_done: tokio::sync::Mutex::new(false),
            }),
        })
    }

    /// Hands a finished span to the writer. Never blocks, never fails; safe to call from any
    /// thread, inside or outside the runtime.
    pub fn write_span(&self, row: SpanRow) {
        let bytes = heap::span(&row);
        self.enqueue(Message::Span(row, u32::try_from(bytes).unwrap_or(u32::MAX)));
    }

    /// Hands a model call's usage row to the writer. Never blocks, never fails.
    pub fn write_usage(&self, row: UsageRow) {
        let bytes = heap::usage(&row);
        self.enqueue(Message::Usage(row, u32::try_from(bytes).unwrap_or(u32::MAX)));
    }

    #[inline]
    fn enqueue(&self, message: Message) {
        let shared = &self.inner.shared;
        let bytes = u64::from(message.bytes());
        // Reserved before the send, so concurrent writers cannot all pass the check at once.
        let before = shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > shared.config.max_queued_bytes && before > 0 {
            shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            shared.overflow(message);
            return;
        }
        match self.inner.sender.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                shared.overflow(message);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                RowsLost { rows: 1, reason: "a row arrived after the writer shut down", cause: &WriterShutDown }
                    .emit(&self.inner.shared);
            }
        }
    }

    /// Backpressure for the request path: returns at once while the queue is less than
    /// three quarters full (in bytes), otherwise when the batcher has made room or after
    /// `max_wait`, whichever comes first. A caller that awaits this before making rows slows
    /// its intake to what the store takes, so a store that falls behind under sustained load
    /// costs latency (bounded by `max_wait`) instead of memory and spool traffic. It never
    /// fails and never waits longer: a store that is down still gets every row spooled.
    pub async fn admit(&self, max_wait: Duration) {
        let shared = &self.inner.shared;
        let high_water = shared.config.max_queued_bytes / 4 * 3;
        if shared.queued_bytes.load(Ordering::Relaxed) < high_water {
            return;
        }
        let deadline = Instant::now() + max_wait;
        loop {
            // Registered before the check, so a notification in between is not missed.
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if shared.queued_bytes.load(Ordering::Relaxed) < high_water {
                return;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return;
            }
        }
    }

    pub fn stats(&self) -> WriterStats {
        let shared = &self.inner.shared;
        let sender = &self.inner.sender;
        let in_queue =
            if sender.is_closed() { 0 } else { sender.max_capacity().saturating_sub(sender.capacity()) as u64 };
        let in_overflow = {
            let overflow = shared.overflow.lock().unwrap_or_else(PoisonError::into_inner);
            (overflow.spans.len() + overflow.usage.len()) as u64
        };
        let counters = &shared.counters;
        WriterStats {
            queued_rows: in_queue + counters.in_batcher.load(Ordering::Relaxed) + in_overflow,
            written_rows: counters.written.load(Ordering::Relaxed),
            spooled_rows: counters.spooled.load(Ordering::Relaxed),
            replayed_rows: counters.replayed.load(Ordering::Relaxed),
            dropped_rows: counters.dropped.load(Ordering::Relaxed),
            spool_bytes: shared.spool.bytes(),
            spool_files: shared.spool.files(),
        }
    }

    /// Returns when every row handed over before the call is in the store, in the spool, or
    /// counted as dropped.
    pub async fn flush(&self) {
        let (ack, acked) = oneshot::channel();
        if self.inner.sender.send(Message::Flush(ack)).await.is_ok() {
            // An error means the batcher stopped; its final drain has handled the rows.
            let _ = acked.await;
        }
        self.inner.shared.spill_overflow(false).await;
    }

    /// Stops accepting rows, delivers what is queued (one attempt per batch, each at most
    /// `shutdown_insert_timeout`; an attempt under way gets that long again), spools the rest,
    /// stops the tasks and syncs the spool directory. Idempotent; concurrent calls all return
    /// once it is done.
    pub async fn shutdown(&self) {
        let mut done = self.inner.shutdown_done.lock().await;
        if *done {
            return;
        }
        self.inner.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if let Err(join_error) = task.await {
                tracing::error!(error = %ErrorChain(&join_error), "a telemetry writer task failed during shutdown");
            }
        }
        let shared = &self.inner.shared;
        shared.spill_overflow(true).await;
        shared.report_unlogged_losses(true);
        let spool = Arc::clone(&shared.spool);
        match tokio::task::spawn_blocking(move || spool.sync_dir()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(error = %ErrorChain(&error), "could not sync the telemetry spool directory")
            }
            Err(join_error) => {
                tracing::error!(error = %ErrorChain(&join_error), "could not sync the telemetry spool directory")
            }
        }
        let stats = self.stats();
        tracing::info!(
            written_rows = stats.written_rows,
            spooled_rows = stats.spooled_rows,
            replayed_rows = stats.replayed_rows,
            dropped_rows = stats.dropped_rows,
            spool_files = stats.spool_files,
            "telemetry writer shut down"
        );
        *done = true;
    }
}

// ---------------------------------------------------------------------------------------------
// The batcher: takes rows off the queue, cuts batches by size and age, delivers them.

/// How a batch is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// With retries and backoff (skipped while the store is down).
    Normal,
    /// Shutting down: one short attempt (none while the store is down), then the spool.
    Final,
}

struct PendingBatch<T> {
    rows: Vec<T>,
    /// When the oldest row's batch must be sent.
    due: Option<Instant>,
    /// How many rows the last batch had: the room a new batch gets at once.
    last_len: usize,
}

impl<T> PendingBatch<T> {
    fn new() -> Self {
        Self { rows: Vec::new(), due: None, last_len: 0 }
    }

    /// Adds `row`. A new batch gets room for as many rows as the last one had (up to
    /// `batch_rows`) at once, rather than growing by doubling, which copied a full batch of
    /// span rows seven times over; a trickle of rows reserves a trickle.
    fn push(&mut self, row: T, flush_interval: Duration, batch_rows: usize) {
        if self.rows.is_empty() {
            self.due = Some(Instant::now() + flush_interval);
            self.rows.reserve_exact(self.last_len.min(batch_rows));
        }
        self.rows.push(row);
    }

    fn take(&mut self) -> Vec<T> {
        self.due = None;
        self.last_len = self.rows.len();
        std::mem::take(&mut self.rows)
    }
}

enum BatcherEvent {
    Received(usize),
    Due,
    Stop,
}

async fn run_batcher(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Message>) {
    let batch_rows = shared.batch_rows;
    let flush_interval = shared.config.flush_interval;
    let mut spans = PendingBatch::<SpanRow>::new();
    let mut usage = PendingBatch::<UsageRow>::new();
    let mut inbox: Vec<Message> = Vec::with_capacity(INBOX_LIMIT);
    let mut stop = shared.stop.clone();
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);

    loop {
        let next_due = match (spans.due, usage.due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (due, None) | (None, due) => due,
        };
        if let Some(due) = next_due
            && timer.deadline() != due
        {
            timer.as_mut().reset(due);
        }
        let event = tokio::select! {
            received = receiver.recv_many(&mut inbox, INBOX_LIMIT) => BatcherEvent::Received(received),
            () = &mut timer, if next_due.is_some() => BatcherEvent::Due,
            () = stopped(&mut stop) => BatcherEvent::Stop,
        };
        match event {
            BatcherEvent::Received(0) | BatcherEvent::Stop => break,
            BatcherEvent::Received(_) => {
                let n_rows = inbox.iter().filter(|message| !matches!(message, Message::Flush(_))).count();
                shared.counters.in_batcher.fetch_add(n_rows as u64, Ordering::Relaxed);
                let bytes: u64 = inbox.iter().map(|message| u64::from(message.bytes())).sum();
                shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                shared.room.notify_waiters();
                for message in inbox.drain(..) {
                    match message {
                        Message::Span(row, _) => {
                            spans.push(row, flush_interval, batch_rows);
                            if spans.rows.len() >= batch_rows {
                                shared.deliver(BatchRows::Spans(spans.take()), Delivery::Normal).await;
                            }
                        }
                        Message::Usage(row, _) => {
                            usage.push(row, flush_interval, batch_rows);
                            if usage.rows.len() >= batch_rows {
                                shared.deliver(BatchRows::Usage(usage.take()), Delivery::Normal).await;
                            }
                        }
                        Message::Flush(ack) => {
                            shared.deliver_pending(&mut spans, &mut usage, Delivery::Normal).await;
                            let _ = ack.send(());
                        }
                    }
                }
            }
            BatcherEvent::Due => {
                let now = Instant::now();
                if spans.due.is_some_and(|due| due <= now) {
                    shared.deliver(BatchRows::Spans(spans.take()), Delivery::Normal).await;
                }
                if usage.due.is_some_and(|due| due <= now) {
                    shared.deliver(BatchRows::Usage(usage.take()), Delivery::Normal).await;
                }
            }
        }
    }

    // Shutting down (or every handle is gone): take what is left, refuse more, deliver it.
    receiver.close();
    let mut acks = Vec::new();
    while let Some(message) = receiver.recv().await {
        match message {
            Message::Span(row, _) => spans.rows.push(row),
            Message::Usage(row, _) => usage.rows.push(row),
            Message::Flush(ack) => acks.push(ack),
        }
    }
    let late_rows = (spans.rows.len() + usage.rows.len()) as u64;
    // Rows already counted in `in_batcher` before the loop ended are part of `late_rows`;
    // re-base the counter on what is actually held now.
    shared.counters.in_batcher.store(late_rows, Ordering::Relaxed);
    shared.deliver_pending(&mut spans, &mut usage, Delivery::Final).await;
    for ack in acks {
        let _ = ack.send(());
    }
}

/// Resolves once the writer is stopping (or every handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The returned guard is dropped at once; holding it would block `send_replace`.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

impl Shared {
    fn is_stopping(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Delivers both pending batches, cut to `batch_rows`.
    async fn deliver_pending(
        self: &Arc<Self>,
        spans: &mut PendingBatch<SpanRow>,
        usage: &mut PendingBatch<UsageRow>,
        delivery: Delivery,
    ) {
        let batch_rows = self.batch_rows;
        let mut span_rows = spans.take();
        while !span_rows.is_empty() {
            let rest = span_rows.split_off(batch_rows.min(span_rows.len()));
            self.deliver(BatchRows::Spans(std::mem::replace(&mut span_rows, rest)), delivery).await;
        }
        let mut usage_rows = usage.take();
        while !usage_rows.is_empty() {
            let rest = usage_rows.split_off(batch_rows.min(usage_rows.len()));
            self.deliver(BatchRows::Usage(std::mem::replace(&mut usage_rows, rest)), delivery).await;
        }
    }

    /// Inserts one batch under a fresh token, retrying as `delivery` allows; spools it when
    /// that fails. The batch's rows leave `in_batcher` either way.
    async fn deliver(self: &Arc<Self>, rows: BatchRows, delivery: Delivery) {
        let n_rows = rows.len() as u64;
        if n_rows == 0 {
            return;
        }
        let kind = rows.kind();
        let rows = SharedRows::from(rows);
        let token = new_token();
        // A batch cut while shutting down gets the shutdown treatment.
        let delivery = if self.is_stopping() { Delivery::Final } else { delivery };
        let (attempts, timeout) = match delivery {
            Delivery::Normal => (1 + self.config.retry_attempts, self.config.insert_timeout),
            Delivery::Final => (1, self.config.shutdown_insert_timeout),
        };
        let mut stop = self.stop.clone();
        let mut last_error: Option<StoreError> = None;
        for attempt in 0..attempts {
            if self.backend_down.load(Ordering::Relaxed) {
                break;
            }
            if attempt > 0 {
                let delay = backoff(self.config.retry_base, attempt - 1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    // Shutting down: spool now rather than wait out the backoff.
                    () = stopped(&mut stop), if delivery == Delivery::Normal => break,
                }
            }
            let result = {
                let attempt_in_flight = insert(&*self.backend, &rows, &token, timeout);
                tokio::pin!(attempt_in_flight);
                tokio::select! {
                    result = &mut attempt_in_flight => result,
                    // Shutting down: the attempt in flight gets what a final attempt gets, then is
                    // abandoned (safe: the spooled batch keeps the token). Abandoning it at once
                    // would spool a batch the store was about to take.
                    () = stopped(&mut stop), if delivery == Delivery::Normal => {
                        match tokio::time::timeout(self.config.shutdown_insert_timeout, attempt_in_flight).await {
                            Ok(result) => result,
                            Err(_elapsed) => break,
                        }
                    }
                }
            };
            match result {
                Ok(()) => {
                    self.counters.written.fetch_add(n_rows, Ordering::Relaxed);
                    self.counters.in_batcher.fetch_sub(n_rows, Ordering::Relaxed);
                    drop_off_the_runtime(rows);
                    return;
                }
                Err(error) if error.is_retryable() => {
                    tracing::debug!(kind = kind.as_str(), token, attempt, error = %ErrorChain(&error), "telemetry insert failed; retrying");
                    last_error = Some(error);
                }
                Err(error) => {
                    tracing::error!(
                        kind = kind.as_str(),
                        token,
                        rows = n_rows,
                        error = %ErrorChain(&error),
                        "the store rejected a telemetry batch; it is kept in the spool and retried with backoff"
                    );
                    self.note_rejected(&token);
                    self.spool_batch(token, rows.into_batch()).await;
                    return;
                }
            }
        }
        if let Some(error) = last_error
            && !self.backend_down.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                backend = self.backend.name(),
                kind = kind.as_str(),
                error = %ErrorChain(&error),
                "the store is unavailable; telemetry goes to the spool until it answers again"
            );
        }
        self.spool_batch(token, rows.into_batch()).await;
    }

    fn note_rejected(&self, token: &str) {
        let next_attempt = Instant::now() + self.config.replay_interval * 2;
        let mut rejected = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        rejected.insert(token.to_owned(), RejectedBackoff { failures: 1, next_attempt });
    }

    /// Writes a batch from the batcher to the spool on the blocking pool.
    async fn spool_batch(self: &Arc<Self>, token: String, rows: BatchRows) {
        let n_rows = rows.len() as u64;
        let spool = Arc::clone(&self.spool);
        // The rows are dropped on the blocking pool too: freeing a thousand rows is not free.
        let result = tokio::task::spawn_blocking(move || spool.write(&token, &rows)).await;
        self.counters.in_batcher.fetch_sub(n_rows, Ordering::Relaxed);
        match result {
            Ok(Ok(_entry)) => {
                self.counters.spooled.fetch_add(n_rows, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                RowsLost { rows: n_rows, reason: "the spool cannot take a batch", cause: &error }.emit(self)
            }
            Err(join_error) => {
                RowsLost { rows: n_rows, reason: "the spool write task failed", cause: &join_error }.emit(self)
            }
        }
    }
}

/// A batch being delivered, shared with the backend's attempts so none of them copies it.
enum SharedRows {
    Spans(Arc<Vec<SpanRow>>),
    Usage(Arc<Vec<UsageRow>>),
}

/// Drops a delivered batch on the blocking pool. Freeing a thousand span rows is some forty
/// thousand `free`s, milliseconds of a core; on a runtime worker the requests queued behind it
/// waited that long (the batcher usually holds the batch's last reference).
fn drop_off_the_runtime(rows: SharedRows) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(rows));
        }
        Err(_) => drop(rows),
    }
}

impl From<BatchRows> for SharedRows {
    fn from(rows: BatchRows) -> Self {
        match rows {
            BatchRows::Spans(rows) => Self::Spans(Arc::new(rows)),
            BatchRows::Usage(rows) => Self::Usage(Arc::new(rows)),
        }
    }
}

impl SharedRows {
    /// The rows back for the spool; copied only when an abandoned attempt still holds them.
    fn into_batch(self) -> BatchRows {
        match self {
            Self::Spans(rows) => BatchRows::Spans(Arc::try_unwrap(rows).unwrap_or_else(|rows| rows.as_ref().clone())),
            Self::Usage(rows) => BatchRows::Usage(Arc::try_unwrap(rows).unwrap_or_else(|rows| rows.as_ref().clone())),
        }
    }
}

/// One attempt, bounded by `timeout` (a timeout is retryable: the dedup token makes a late
/// success harmless).
async fn insert(backend: &dyn Backend, rows: &SharedRows, token: &str, timeout: Duration) -> Result<(), StoreError> {
    let attempt = async {
        match rows {
            SharedRows::Spans(rows) => backend.insert_spans_shared(Arc::clone(rows), token).await,
            SharedRows::Usage(rows) => backend.insert_usage_shared(Arc::clone(rows), token).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_elapsed) => Err(StoreError::Unavailable { source: Box::new(InsertTimedOut { after: timeout }) }),
    }
}

/// `base * 2^retry`, scaled by a random factor in [0.5, 1.0) so writers that failed together
/// do not retry together.
fn backoff(base: Duration, retry: u32) -> Duration {
    let exponential = base.saturating_mul(1u32 << retry.min(16));
    exponential.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// A fresh deduplication token: a UUIDv7 in simple hex form (sorts by creation time, which
/// gives the spool its replay order).
fn new_token() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

// ---------------------------------------------------------------------------------------------
// The overflow path: rows that found the queue full go to the spool.

impl Shared {
    /// Takes a row the queue had no room for. Runs on the caller's thread: a short lock, no
    /// I/O.
    #[cold]
    fn overflow(&self, message: Message) {
        // The row's size in the spool (the queue counted its size in memory).
        let estimate = match &message {
            Message::Span(row, _) => approx_span_bytes(row),
            Message::Usage(row, _) => approx_usage_bytes(row),
            Message::Flush(_) => return,
        } as u64;
        let limit = self.spool.max_bytes();
        let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        if overflow.closed {
            drop(overflow);
            RowsLost { rows: 1, reason: "a row arrived after the writer shut down", cause: &WriterShutDown }.emit(self);
            return;
        }
        let used = self.spool.bytes().saturating_add(overflow.reserved_bytes);
        if used.saturating_add(estimate) > limit {
            drop(overflow);
            let full = SpoolError::Full { needed: estimate, used, limit };
            RowsLost { rows: 1, reason: "the queue is full and the spool has no room", cause: &full }.emit(self);
            return;
        }
        overflow.reserved_bytes += estimate;
        let batch_rows = self.batch_rows;
        let full_batch = match message {
            Message::Span(row, _) => {
                overflow.spans.push(row);
                overflow.spans.len() == batch_rows
            }
            Message::Usage(row, _) => {
                overflow.usage.push(row);
                overflow.usage.len() == batch_rows
            }
            Message::Flush(_) => false,
        };
        drop(overflow);
        if full_batch {
            self.overflow_ready.notify_one();
        }
    }

    /// Writes the overflow rows to the spool, in batches of `batch_rows`. With `close`, rows
    /// arriving later are refused (shutdown).
    async fn spill_overflow(self: &Arc<Self>, close: bool) {
        let _spilling = self.spill_lock.lock().await;
        let (spans, usage, reserved) = {
            let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
            overflow.closed |= close;
            (std::mem::take(&mut overflow.spans), std::mem::take(&mut overflow.usage), overflow.reserved_bytes)
        };
        if spans.is_empty() && usage.is_empty() {
            return;
        }
        let n_rows = (spans.len() + usage.len()) as u64;
        let shared = Arc::clone(self);
        let accounted = Arc::new(AtomicU64::new(0));
        let accounted_in_task = Arc::clone(&accounted);
        let result =
            tokio::task::spawn_blocking(move || shared.spill_blocking(&spans, &usage, &accounted_in_task)).await;
        {
            let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
            overflow.reserved_bytes = overflow.reserved_bytes.saturating_sub(reserved);
        }
        if let Err(join_error) = result {
            let unaccounted = n_rows.saturating_sub(accounted.load(Ordering::Relaxed));
            RowsLost { rows: unaccounted, reason: "the overflow spill task failed", cause: &join_error }.emit(self);
        }
    }

    fn spill_blocking(&self, spans: &[SpanRow], usage: &[UsageRow], accounted: &AtomicU64) {
        let batch_rows = self.batch_rows;
        let record = |n_rows: usize, result: Result<SpoolEntry, SpoolError>| {
            let n_rows = n_rows as u64;
            match result {
                Ok(_entry) => {
                    self.counters.spooled.fetch_add(n_rows, Ordering::Relaxed);
                }
                Err(error) => {
                    RowsLost { rows: n_rows, reason: "the spool cannot take overflow rows", cause: &error }.emit(self)
                }
            }
            accounted.fetch_add(n_rows, Ordering::Relaxed);
        };
        for chunk in spans.chunks(batch_rows) {
            record(chunk.len(), self.spool.write_spans(&new_token(), chunk));
        }
        for chunk in usage.chunks(batch_rows) {
            record(chunk.len(), self.spool.write_usage(&new_token(), chunk));
        }
    }
}

async fn run_spiller(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            () = shared.overflow_ready.notified() => {}
            () = tokio::time::sleep(shared.config.flush_interval) => {}
            () = stopped(&mut stop) => break,
        }
        shared.spill_overflow(false).await;
    }
    shared.spill_overflow(false).await;
}

// ---------------------------------------------------------------------------------------------
// The replayer: spooled batches back into the store once it answers.

async fn run_replayer(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        shared.replay_pass(&mut stop).await;
        shared.report_unlogged_losses(false);
        tokio::select! {
            () = tokio::time::sleep(shared.config.replay_interval) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

enum ReplayOutcome {
    Replayed,
    Rejected,
    Unavailable,
    Stopped,
}

impl Shared {
    async fn replay_pass(self: &Arc<Self>, stop: &mut watch::Receiver<bool>) {
        let down = self.backend_down.load(Ordering::Relaxed);
        if self.spool.files() == 0 && !down {
            return;
        }
        let ping = tokio::select! {
            result = tokio::time::timeout(self.config.insert_timeout, self.backend.ping()) => result,
            () = stopped(stop) => return,
        };
        match ping {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(error = %ErrorChain(&error), "store still unavailable; the spool waits");
                self.backend_down.store(true, Ordering::Relaxed);
                return;
            }
            Err(_elapsed) => {
                tracing::debug!("store ping timed out; the spool waits");
                self.backend_down.store(true, Ordering::Relaxed);
                return;
            }
        }
        if self.backend_down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                backend = self.backend.name(),
                spool_files = self.spool.files(),
                "the store answers again; replaying the telemetry spool"
            );
        }

        let spool = Arc::clone(&self.spool);
        let entries = match tokio::task::spawn_blocking(move || spool.list()).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(error)) => {
                tracing::error!(error = %ErrorChain(&error), "could not list the telemetry spool");
                return;
            }
            Err(join_error) => {
                tracing::error!(error = %ErrorChain(&join_error), "could not list the telemetry spool");
                return;
            }
        };
        for entry in entries {
            if self.is_stopping() {
                return;
            }
            if !self.rejected_batch_due(&entry.token) {
                continue;
            }
            match self.replay_one(entry, stop).await {
                ReplayOutcome::Replayed | ReplayOutcome::Rejected => {}
                ReplayOutcome::Unavailable => {
                    self.backend_down.store(true, Ordering::Relaxed);
                    return;
                }
                ReplayOutcome::Stopped => return,
            }
        }
    }

    /// `false` while a batch the store rejected waits out its backoff.
    fn rejected_batch_due(&self, token: &str) -> bool {
        let rejected = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        rejected.get(token).is_none_or(|backoff| backoff.next_attempt <= Instant::now())
    }

    async fn replay_one(self: &Arc<Self>, entry: SpoolEntry, stop: &mut watch::Receiver<bool>) -> ReplayOutcome {
        let spool = Arc::clone(&self.spool);
        let read_entry = entry.clone();
        let read = tokio::task::spawn_blocking(move || match spool.read(&read_entry) {
            Err(error @ SpoolError::Corrupt { .. }) => {
                if let Err(set_aside_error) = spool.set_aside(&read_entry, &error) {
                    tracing::error!(
                        path = %read_entry.path.display(),
                        error = %ErrorChain(&set_aside_error),
                        "could not set a corrupt spool file aside"
                    );
                }
                Err(error)
            }
            other => other,
        })
        .await;
        let batch = match read {
            Ok(Ok(batch)) => batch,
            Ok(Err(SpoolError::Corrupt { .. })) => {
                self.forget_rejected(&entry.token);
                return ReplayOutcome::Rejected;
            }
            Ok(Err(error)) => {
                tracing::error!(path = %entry.path.display(), error = %ErrorChain(&error), "could not read a spooled telemetry batch; will try again");
                return ReplayOutcome::Rejected;
            }
            Err(join_error) => {
                tracing::error!(path = %entry.path.display(), error = %ErrorChain(&join_error), "could not read a spooled telemetry batch; will try again");
                return ReplayOutcome::Rejected;
            }
        };
        let n_rows = batch.rows.len() as u64;
        let rows = SharedRows::from(batch.rows);
        let result = tokio::select! {
            result = insert(&*self.backend, &rows, &batch.token, self.config.insert_timeout) => result,
            () = stopped(stop) => return ReplayOutcome::Stopped,
        };
        match result {
            Ok(()) => {
                self.counters.replayed.fetch_add(n_rows, Ordering::Relaxed);
                self.forget_rejected(&entry.token);
                let spool = Arc::clone(&self.spool);
                let remove_entry = entry.clone();
                let removed = tokio::task::spawn_blocking(move || spool.remove(&remove_entry)).await;
                let error: Option<Box<dyn Error + Send + Sync>> = match removed {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(Box::new(error)),
                    Err(join_error) => Some(Box::new(join_error)),
                };
                if let Some(error) = error {
                    // It replays again later; the token keeps that from doubling rows.
                    tracing::error!(path = %entry.path.display(), error = %ErrorChain(&*error), "could not remove a replayed spool file");
                }
                ReplayOutcome::Replayed
            }
            Err(error) if error.is_retryable() => {
                tracing::debug!(error = %ErrorChain(&error), "store unavailable during replay; the spool waits");
                ReplayOutcome::Unavailable
            }
            Err(error) => {
                let (failures, wait) = self.back_off_rejected(&entry.token);
                tracing::error!(
                    path = %entry.path.display(),
                    token = %entry.token,
                    kind = entry.kind.as_str(),
                    rows = n_rows,
                    failures,
                    retry_in_secs = wait.as_secs(),
                    error = %ErrorChain(&error),
                    "the store rejected a spooled telemetry batch again; it stays in the spool"
                );
                ReplayOutcome::Rejected
            }
        }
    }

    fn back_off_rejected(&self, token: &str) -> (u32, Duration) {
        let mut rejected = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        let backoff =
            rejected.entry(token.to_owned()).or_insert(RejectedBackoff { failures: 0, next_attempt: Instant::now() });
        backoff.failures = backoff.failures.saturating_add(1);
        let wait =
            self.config.replay_interval.saturating_mul(1u32 << backoff.failures.min(16)).min(MAX_REJECTED_BACKOFF);
        backoff.next_attempt = Instant::now() + wait;
        (backoff.failures, wait)
    }

    fn forget_rejected(&self, token: &str) {
        self.rejected.lock().unwrap_or_else(PoisonError::into_inner).remove(token);
    }
}

// ---------------------------------------------------------------------------------------------
// Internal events and small error types.

/// Telemetry was lost: counted in `dropped_rows` and logged at error level, at most once per
/// [`LOSS_LOG_INTERVAL`] (the log line carries the rows lost since the previous one).
struct RowsLost<'a> {
    rows: u64,
    reason: &'static str,
    cause: &'a dyn Error,
}

impl RowsLost<'_> {
    fn emit(self, shared: &Shared) {
        if self.rows == 0 {
            return;
        }
        let total = shared.counters.dropped.fetch_add(self.rows, Ordering::Relaxed) + self.rows;
        let log = &shared.loss_log;
        let now = std::time::Instant::now();
        let mut last = log.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| now.duration_since(last) < LOSS_LOG_INTERVAL) {
            log.unlogged_rows.fetch_add(self.rows, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        let rows_since_last_log = log.unlogged_rows.swap(0, Ordering::Relaxed) + self.rows;
        tracing::error!(
            rows = self.rows,
            rows_since_last_log,
            total_dropped_rows = total,
            spool_dir = %shared.config.spool_dir.display(),
            spool_bytes = shared.spool.bytes(),
            spool_max_bytes = shared.spool.max_bytes(),
            error = %ErrorChain(self.cause),
            "TELEMETRY LOST: {}", self.reason
        );
    }
}

#[derive(Default)]
struct LossLog {
    last: Mutex<Option<std::time::Instant>>,
    unlogged_rows: AtomicU64,
}

impl Shared {
    /// Logs losses counted but not yet logged (they happened within [`LOSS_LOG_INTERVAL`] of a
    /// logged one), once the interval has passed, or now with `force`: no loss goes unsaid
    /// because the losses stopped.
    fn report_unlogged_losses(&self, force: bool) {
        let log = &self.loss_log;
        if log.unlogged_rows.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let mut last = log.last.lock().unwrap_or_else(PoisonError::into_inner);
        if !force && last.is_some_and(|last| now.duration_since(last) < LOSS_LOG_INTERVAL) {
            return;
        }
        let rows_since_last_log = log.unlogged_rows.swap(0, Ordering::Relaxed);
        if rows_since_last_log == 0 {
            return;
        }
        *last = Some(now);
        drop(last);
        tracing::error!(
            rows_since_last_log,
            total_dropped_rows = self.counters.dropped.load(Ordering::Relaxed),
            spool_dir = %self.config.spool_dir.display(),
            spool_bytes = self.spool.bytes(),
            spool_max_bytes = self.spool.max_bytes(),
            "TELEMETRY LOST: {rows_since_last_log} more rows were dropped since the last report"
        );
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the telemetry writer is shut down")]
struct WriterShutDown;

#[derive(Debug, thiserror::Error)]
#[error("insert timed out after {after:?}")]
struct InsertTimedOut {
    after: Duration,
}

/// Displays an error with its causes: `outer: inner: root`.
pub(crate) struct ErrorChain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline and static attribute text owns no heap; longer text is counted with its
    /// allocation, so the queue's byte bound still sees captured prompts.
    #[test]
    fn heap_estimate_counts_only_heap_attribute_text() {
        use crate::rows::{AttributeText, SpanEvent};
        let event = |name: AttributeText, value: AttributeText| SpanEvent {
            timestamp_ns: 0,
            name,
            attributes: vec![("k".into(), value)],
        };
        let size =
            |value: AttributeText| heap::span(&SpanRow { events: vec![event("e".into(), value)], ..SpanRow::default() });
        let inline = size("twenty-four bytes of txt".into());
        let long = "a static str well over twenty-four bytes";
        assert_eq!(size(AttributeText::const_new(long)), inline, "a borrowed static str");
        assert!(size(long.to_owned().into()) >= inline + long.len(), "heap text is counted");
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let base = Duration::from_millis(200);
        for retry in 0..5 {
            let full = base * (1 << retry);
            for _ in 0..100 {
                let delay = backoff(base, retry);
                assert!(delay >= full / 2 && delay <= full, "{retry}: {delay:?}");
            }
        }
        assert!(backoff(Duration::from_secs(1), 1000) <= Duration::from_secs(1 << 16));
    }

    #[test]
    fn tokens_are_unique_and_sort_by_creation() {
        let tokens: Vec<String> = (0..10_000).map(|_| new_token()).collect();
        let mut sorted = tokens.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, tokens);
        assert!(tokens.iter().all(|token| token.len() == 32));
    }

    #[test]
    fn error_chain_shows_causes() {
        let error = StoreError::Unavailable { source: Box::new(InsertTimedOut { after: Duration::from_secs(1) }) };
        assert_eq!(ErrorChain(&error).to_string(), "store unavailable: insert timed out after 1s");
    }
}
