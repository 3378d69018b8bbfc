//! The fake backend, row builders and a default test configuration.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use glassbox_store::writer::WriterConfig;
use glassbox_store::{Backend, MigrationReport, SpanRow, StatusCode, StoreError, UsageRow};

/// One insert attempt the fake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub kind: &'static str,
    pub token: String,
    pub rows: usize,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub spans: Vec<SpanRow>,
    pub usage: Vec<UsageRow>,
    /// Tokens whose rows were stored, in order.
    pub committed: Vec<String>,
    seen_tokens: HashSet<String>,
    /// Every insert attempt, in order.
    pub calls: Vec<Call>,
    pub pings: u32,
    /// Every insert and ping fails with `Unavailable`.
    pub down: bool,
    /// The next N inserts fail with `Unavailable` (nothing stored).
    pub fail_next: u32,
    /// The next N inserts store their rows and then report `Unavailable` to the client.
    pub commit_then_fail_next: u32,
    /// Every insert is refused as `Rejected`.
    pub reject: bool,
    /// Each insert takes this long before answering.
    pub delay: Duration,
}

/// An in-memory store with ClickHouse's insert-deduplication semantics: a batch whose token
/// was already stored is acknowledged and not stored again.
#[derive(Debug, Default)]
pub struct FakeBackend {
    state: Mutex<FakeState>,
}

#[derive(Debug, thiserror::Error)]
#[error("fake backend is down")]
struct Down;

impl FakeBackend {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Span ids stored, sorted.
    pub fn span_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state().spans.iter().map(|row| row.span_id.clone()).collect();
        ids.sort();
        ids
    }

    pub fn usage_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state().usage.iter().map(|row| row.span_id.clone()).collect();
        ids.sort();
        ids
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    pub fn committed(&self) -> Vec<String> {
        self.state().committed.clone()
    }

    async fn insert<T: Clone>(
        &self,
        kind: &'static str,
        rows: &[T],
        token: &str,
        store: impl FnOnce(&mut FakeState, Vec<T>),
    ) -> Result<(), StoreError> {
        let delay = {
            let mut state = self.state();
            state.calls.push(Call { kind, token: token.to_owned(), rows: rows.len() });
            state.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.state();
        if state.down {
            return Err(StoreError::Unavailable { source: Box::new(Down) });
        }
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(StoreError::Unavailable { source: Box::new(Down) });
        }
        if state.reject {
            return Err(StoreError::Rejected { message: "no such column".into(), source: None });
        }
        if state.seen_tokens.insert(token.to_owned()) {
            store(&mut state, rows.to_vec());
            state.committed.push(token.to_owned());
        }
        if state.commit_then_fail_next > 0 {
            state.commit_then_fail_next -= 1;
            return Err(StoreError::Unavailable { source: Box::new(Down) });
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        Ok(MigrationReport::default())
    }

    async fn insert_spans(&self, rows: &[SpanRow], dedup_token: &str) -> Result<(), StoreError> {
        self.insert("spans", rows, dedup_token, |state, rows| state.spans.extend(rows)).await
    }

    async fn insert_usage(&self, rows: &[UsageRow], dedup_token: &str) -> Result<(), StoreError> {
        self.insert("usage", rows, dedup_token, |state, rows| state.usage.extend(rows)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        state.pings += 1;
        if state.down { Err(StoreError::Unavailable { source: Box::new(Down) }) } else { Ok(()) }
    }
}

pub fn span(n: u64) -> SpanRow {
    SpanRow {
        timestamp_ns: 1_750_000_000_000_000_000 + n as i64,
        trace_id: format!("{:032x}", n / 10),
        span_id: format!("{n:016x}"),
        parent_span_id: String::new(),
        trace_state: String::new(),
        span_name: "chat gpt-4o-mini".to_owned(),
        span_kind: "Client".to_owned(),
        service_name: "glassbox".to_owned(),
        resource_attributes: vec![("service.name".into(), "glassbox".into())],
        scope_name: "glassbox".to_owned(),
        scope_version: "0.1.0".to_owned(),
        span_attributes: vec![
            ("gen_ai.operation.name".into(), "chat".into()),
            ("gen_ai.request.model".into(), "gpt-4o-mini".into()),
        ],
        duration_ns: 1_000_000,
        status_code: StatusCode::Ok,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

pub fn usage(n: u64) -> UsageRow {
    UsageRow {
        timestamp_ns: 1_750_000_000_000_000_000 + n as i64,
        trace_id: format!("{:032x}", n / 10),
        span_id: format!("{n:016x}"),
        tenant: "acme".to_owned(),
        api_key_id: "key_1".to_owned(),
        agent: "support".to_owned(),
        workflow: String::new(),
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        input_tokens: 100,
        output_tokens: 20,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cost_nano_usd: 27_000,
        cost_unknown: false,
        latency_ns: 5_000_000,
        time_to_first_token_ns: 0,
        status: "ok".to_owned(),
        error_type: String::new(),
    }
}

/// The ids `span(n)` / `usage(n)` produce for `range`, sorted.
pub fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(|n| format!("{n:016x}")).collect();
    ids.sort();
    ids
}

/// Defaults, with small batches and the spool in `dir`.
pub fn config(dir: &Path) -> WriterConfig {
    WriterConfig { batch_rows: Some(10), ..WriterConfig::new(dir) }
}

/// Lets the writer's tasks run until they are idle, moving the paused clock by `ms`.
pub async fn settle(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Batch files in the spool directory (not set-aside ones).
pub fn spool_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jsonl") && !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Dedup tokens of the batch files in the spool, in replay order.
pub fn spool_tokens(dir: &Path) -> Vec<String> {
    let mut tokens: Vec<String> = spool_files(dir)
        .into_iter()
        .map(|name| name.trim_end_matches(".jsonl").split_once('-').unwrap().1.to_owned())
        .collect();
    tokens.sort();
    tokens
}
