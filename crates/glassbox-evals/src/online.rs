//! Online evals: scorers attached to an agent that score sampled production requests after
//! the response is on its way.
//!
//! Sampling is decided by the trace id alone (its low 64 bits against the rate), so every
//! replica makes the same choice for one trace and a test can predict it. Scoring runs in a
//! future the server spawns: it never delays or fails the request. A scorer that errors,
//! panics or overruns its timeout gives an errored score. Each score becomes an
//! `evaluation {scorer}` span (child of whatever span the future runs in, which the server
//! links to the request's trace) with `gen_ai.evaluation.*` attributes, and a row in the
//! store's `eval_scores`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glassbox_core::LanguageModel;
use glassbox_store::pricing::{PricingTable, TokenCounts};
use glassbox_store::{EvalScoreRow, EvalStore};
use serde_json::Value;
use tokio_util::task::TaskTracker;

use crate::scorer::{ConfiguredScorer, ScoreInput};
use crate::scorers::{ScorerSpec, SpecError};

/// One agent's online scorers.
#[derive(Debug, Clone)]
pub struct AgentEvals {
    pub sample_rate: f64,
    pub timeout: Duration,
    pub scorers: Vec<ConfiguredScorer>,
}

impl AgentEvals {
    /// Builds the scorers from their tables (as in glassbox.toml).
    pub fn from_tables(
        sample_rate: f64,
        timeout: Duration,
        tables: &[Value],
        models: &dyn Fn(&str) -> Option<Arc<dyn LanguageModel>>,
    ) -> Result<Self, SpecError> {
        let mut scorers = Vec::with_capacity(tables.len());
        for (idx, table) in tables.iter().enumerate() {
            let position = format!("#{}", idx + 1);
            let spec = ScorerSpec::from_json(table, &position)?;
            scorers.push(spec.build(&position, models)?);
        }
        Ok(Self { sample_rate, timeout, scorers })
    }
}

/// How long the first score row of a group waits for others before they are stored (see
/// [`ScoreGroup`]); `glassbox serve` uses the store's flush interval instead
/// ([`OnlineEvals::with_linger`]).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

/// A group of this many queued rows is stored without waiting for the rest of its linger.
const GROUP_ROWS: usize = 500;

/// Every agent's online scorers, and where their results go.
pub struct OnlineEvals {
    agents: HashMap<String, AgentEvals>,
    store: Option<Arc<dyn EvalStore>>,
    pricing: Arc<PricingTable>,
    scores: ScoreGroup,
    /// A token per request being scored now, for [`flush`](Self::flush) to wait for.
    scoring: TaskTracker,
}

impl std::fmt::Debug for OnlineEvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineEvals").field("agents", &self.agents.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// What the server knows of one finished request, for scoring.
#[derive(Debug, Clone)]
pub struct ScoredRequest {
    pub agent: String,
    pub trace_id: String,
    pub span_id: String,
    pub provider: String,
    pub model: String,
    pub input: ScoreInput,
}

/// Stores get a few tries: a score is telemetry, and losing telemetry is a bug.
const STORE_ATTEMPTS: u32 = 3;

impl OnlineEvals {
    pub fn new(agents: HashMap<String, AgentEvals>, store: Option<Arc<dyn EvalStore>>, pricing: Arc<PricingTable>) -> Self {
        Self {
            agents,
            store,
            pricing,
            scores: ScoreGroup::new(DEFAULT_LINGER),
            scoring: TaskTracker::new(),
        }
    }

    /// How long a score row waits in memory for other requests' rows before they are stored
    /// together ([`DEFAULT_LINGER`] unless set): the store sees one transaction (SQLite) or
    /// insert (ClickHouse, where each insert makes a part) per linger instead of one per
    /// sampled request. [`flush`](Self::flush) writes what waits at once.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.scores.linger = linger;
        self
    }

    /// Waits for the requests being scored now (at most `max_wait`; each scorer is bounded by
    /// its agent's timeout, so the wait ends with the slowest of them), then stores every score
    /// row that waits, after an insert already under way. Call it at shutdown, once the server
    /// stopped answering (`serve` gives it the shutdown grace).
    pub async fn flush(&self, max_wait: Duration) {
        // Closed, the tracker's `wait` ends once no token is left (tokens can still be taken).
        self.scoring.close();
        if tokio::time::timeout(max_wait, self.scoring.wait()).await.is_err() {
            tracing::warn!(
                requests = self.scoring.len(),
                "online scorers still running at shutdown; their scores stay on their evaluation spans only"
            );
        }
        let Some(store) = self.store.clone() else { return };
        self.scores.insert_pending(|batch| async move { insert_with_retries(store.as_ref(), &batch).await }).await;
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Whether this request of `agent` is scored: the low 64 bits of the trace id (hex)
    /// against the agent's sample rate. Cheap; call it before building a [`ScoredRequest`].
    pub fn sampled(&self, agent: &str, trace_id: &str) -> bool {
        let Some(evals) = self.agents.get(agent) else { return false };
        sampled(trace_id, evals.sample_rate)
    }

    /// Scores one request and queues the results for the store (written by a task of their
    /// own, grouped with other requests' scores). The caller spawns this, inside a span that
    /// belongs to the request's trace.
    pub async fn evaluate(self: Arc<Self>, mut request: ScoredRequest) {
        let Some(evals) = self.agents.get(&request.agent) else { return };
        // Dropped once the rows are queued (or the scoring future is dropped).
        let _scoring = self.scoring.token();
        if request.input.cost_usd.is_none() {
            let usage = request.input.usage;
            let cost = self.pricing.cost(
                &request.provider,
                &request.model,
                TokenCounts {
                    input: usage.input_tokens,
                    output: usage.output_tokens,
                    cached_input: usage.cached_input_tokens,
                    reasoning: usage.reasoning_tokens,
                },
            );
            request.input.cost_usd = (!cost.unknown).then_some(cost.nano_usd as f64 / 1e9);
        }
        let mut rows = Vec::with_capacity(evals.scorers.len());
        for scorer in &evals.scorers {
            let span = tracing::info_span!(
                "evaluation",
                otel.name = %format_args!("evaluation {}", scorer.name),
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                "error.type" = tracing::field::Empty,
                gen_ai.operation.name = "evaluation",
                gen_ai.agent.name = %request.agent,
                gen_ai.evaluation.name = %scorer.name,
                gen_ai.evaluation.score.value = tracing::field::Empty,
                gen_ai.evaluation.score.label = tracing::field::Empty,
                gen_ai.evaluation.explanation = tracing::field::Empty,
                glassbox.evaluation.threshold = scorer.threshold,
                glassbox.evaluation.scored_span_id = %request.span_id,
            );
            let outcome = {
                use tracing::Instrument as _;
                scorer.score(&request.input, evals.timeout).instrument(span.clone()).await
            };
            if let Some(value) = outcome.value {
                span.record("gen_ai.evaluation.score.value", value);
            }
            span.record("gen_ai.evaluation.score.label", if outcome.passed { "pass" } else { "fail" });
            span.record("gen_ai.evaluation.explanation", outcome.reason.as_str());
            if let Some(error) = &outcome.error {
                span.record("otel.status_code", "ERROR");
                span.record("otel.status_description", error.as_str());
                span.record("error.type", "scorer_error");
            }
            drop(span);
            rows.push(EvalScoreRow {
                timestamp_ns: now_ns(),
                trace_id: request.trace_id.clone(),
                span_id: request.span_id.clone(),
                agent: request.agent.clone(),
                scorer: scorer.name.clone(),
                score: outcome.value,
                passed: outcome.passed,
                reason: outcome.reason,
                error: outcome.error.unwrap_or_default(),
            });
        }
        let Some(store) = self.store.clone() else { return };
        if self.scores.add(rows) {
            // The writer runs as a task of its own, outside this request's span: it may go on
            // writing the rows of requests that finish after this one.
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                this.scores
                    .drain(|batch| {
                        let store = Arc::clone(&store);
                        async move { insert_with_retries(store.as_ref(), &batch).await }
                    })
                    .await;
            });
        }
    }
}

/// Group commit of score rows: one insert carries the rows of every request that finished
/// scoring within a linger (or while the insert before it was in flight), so the store sees
/// one transaction per linger instead of one per sampled request. (At 5,000 requests a
/// second with 10% sampled, an insert per sampled request was a SQLite transaction every few
/// milliseconds: a WAL commit of its own, and a trip to the write thread and back, each;
/// BENCHMARKS.md.)
///
/// The request that finds no writer running starts one ([`add`](Self::add) says so); the
/// others leave their rows to it. The writer waits for the linger (or until [`GROUP_ROWS`]
/// rows are queued), then loops until nothing is left, so no row waits for a later request.
#[derive(Debug)]
struct ScoreGroup {
    pending: Mutex<Vec<EvalScoreRow>>,
    writing: AtomicBool,
    linger: Duration,
    /// Ends the writer's linger early: a full group.
    full: tokio::sync::Notify,
    /// Held across each insert, so that [`OnlineEvals::flush`] waits for one under way.
    inserting: tokio::sync::Mutex<()>,
}

/// Lets go of [`ScoreGroup::writing`] even if the writer is dropped mid-insert.
struct Writing<'a>(&'a AtomicBool);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ScoreGroup {
    fn new(linger: Duration) -> Self {
        Self {
            pending: Mutex::default(),
            writing: AtomicBool::new(false),
            linger,
            full: tokio::sync::Notify::new(),
            inserting: tokio::sync::Mutex::new(()),
        }
    }

    /// Queues `rows`; true when no writer is running and the caller must run
    /// [`drain`](Self::drain).
    fn add(&self, rows: Vec<EvalScoreRow>) -> bool {
        let queued = {
            let mut pending = self.lock();
            pending.extend(rows);
            pending.len()
        };
        if queued >= GROUP_ROWS {
            self.full.notify_one();
        }
        !self.writing.swap(true, Ordering::AcqRel)
    }

    /// The writer: waits for the linger, then inserts what is queued, batch after batch,
    /// until nothing is.
    async fn drain<F, Fut>(&self, mut insert: F)
    where
        F: FnMut(Vec<EvalScoreRow>) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let writing = Writing(&self.writing);
            if self.lock().len() < GROUP_ROWS {
                // A permit left by an earlier full group ends this wait early: harmless.
                tokio::select! {
                    () = tokio::time::sleep(self.linger) => {}
                    () = self.full.notified() => {}
                }
            }
            self.insert_pending(&mut insert).await;
            drop(writing);
            // Rows queued after the take saw a writer and left them to it: write them too,
            // unless a newer writer has started meanwhile.
            if self.lock().is_empty() || self.writing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// Inserts what is queued now, after an insert under way (if any) has ended: the writer's
    /// step, and [`OnlineEvals::flush`]'s.
    async fn insert_pending<F, Fut>(&self, insert: F)
    where
        F: FnOnce(Vec<EvalScoreRow>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let _inserting = self.inserting.lock().await;
        let batch = std::mem::take(&mut *self.lock());
        if !batch.is_empty() {
            insert(batch).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EvalScoreRow>> {
        // The vector is only extended or taken whole: a panic elsewhere cannot leave it torn.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn insert_with_retries(store: &dyn EvalStore, rows: &[EvalScoreRow]) {
    for attempt in 1..=STORE_ATTEMPTS {
        match store.insert_eval_scores(rows).await {
            Ok(()) => return,
            Err(error) if attempt < STORE_ATTEMPTS && error.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(error) => {
                tracing::error!(
                    first_trace_id = rows.first().map_or("", |row| row.trace_id.as_str()),
                    n_scores = rows.len(),
                    error = %crate::error_chain(&error),
                    "could not store online eval scores (they remain on the traces' evaluation spans)"
                );
                return;
            }
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

/// The sampling decision: the trace id's low 64 bits, as a fraction of 2^64, below `rate`.
/// A malformed id is sampled by rate 1.0 only.
pub fn sampled(trace_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let low = trace_id.len().checked_sub(16).map(|start| &trace_id[start..]);
    match low.and_then(|hex| u64::from_str_radix(hex, 16).ok()) {
        Some(bits) => (bits as f64 / 18_446_744_073_709_551_616.0) < rate,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{ScoreGroup, sampled};
    use glassbox_store::EvalScoreRow;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn row(n: usize) -> EvalScoreRow {
        EvalScoreRow {
            timestamp_ns: 0,
            trace_id: format!("{n:032x}"),
            span_id: format!("{n:016x}"),
            agent: "a".into(),
            scorer: "s".into(),
            score: Some(1.0),
            passed: true,
            reason: String::new(),
            error: String::new(),
        }
    }

    /// Many requests finishing at once against a slow store: every row is written once, in
    /// fewer inserts than rows, and no row is left queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn score_rows_are_grouped_and_none_is_left_behind() {
        let group = Arc::new(ScoreGroup::new(Duration::from_millis(5)));
        let written = Arc::new(Mutex::new(Vec::new()));
        let inserts = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..300 {
            let (group, written, inserts) = (Arc::clone(&group), Arc::clone(&written), Arc::clone(&inserts));
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_micros((n % 7) as u64 * 300)).await;
                if group.add(vec![row(n)]) {
                    group
                        .drain(|batch| {
                            let (written, inserts) = (Arc::clone(&written), Arc::clone(&inserts));
                            async move {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                                inserts.fetch_add(1, Ordering::Relaxed);
                                written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(batch);
                            }
                        })
                        .await;
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            assert!(joined.is_ok(), "{joined:?}");
        }
        let mut ids: Vec<String> =
            written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|row| row.trace_id.clone()).collect();
        ids.sort();
        let expected: Vec<String> = (0..300).map(|n| format!("{n:032x}")).collect();
        assert_eq!(ids, expected);
        let inserts = inserts.load(Ordering::Relaxed);
        assert!(inserts < 100, "{inserts} inserts for 300 rows");
        assert!(group.lock().is_empty());
    }

    /// Records each insert's rows.
    #[derive(Clone, Default)]
    struct Inserts(Arc<Mutex<Vec<Vec<EvalScoreRow>>>>);

    impl Inserts {
        fn insert(&self) -> impl FnMut(Vec<EvalScoreRow>) -> std::future::Ready<()> + 'static {
            let inserts = self.clone();
            move |batch| {
                inserts.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(batch);
                std::future::ready(())
            }
        }

        fn sizes(&self) -> Vec<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(Vec::len).collect()
        }
    }

    /// Rows wait for the linger, grouped; `flush` writes them at once.
    #[tokio::test]
    async fn rows_wait_for_the_linger_and_a_flush_writes_them_at_once() {
        let group = Arc::new(ScoreGroup::new(Duration::from_secs(3600)));
        let inserts = Inserts::default();
        assert!(group.add(vec![row(0)]), "the first rows start the writer");
        assert!(!group.add(vec![row(1), row(2)]), "later rows leave theirs to it");
        let writer = tokio::spawn({
            let (group, insert) = (Arc::clone(&group), inserts.insert());
            async move { group.drain(insert).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(inserts.sizes(), Vec::<usize>::new(), "nothing is written before the linger is over");
        group.insert_pending(inserts.insert()).await;
        assert_eq!(inserts.sizes(), vec![3], "one insert of the three rows");
        assert!(group.lock().is_empty());
        writer.abort();
    }

    /// A group of `GROUP_ROWS` rows does not wait for the linger.
    #[tokio::test]
    async fn a_full_group_is_written_without_waiting_for_the_linger() {
        let group = Arc::new(ScoreGroup::new(Duration::from_secs(3600)));
        let inserts = Inserts::default();
        assert!(group.add((0..super::GROUP_ROWS - 1).map(row).collect()));
        let writer = tokio::spawn({
            let (group, insert) = (Arc::clone(&group), inserts.insert());
            async move { group.drain(insert).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(inserts.sizes(), Vec::<usize>::new(), "one row short of a group: it waits");
        assert!(!group.add(vec![row(super::GROUP_ROWS)]));
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer stores a full group without waiting for the linger")
            .expect("the writer ends");
        assert_eq!(inserts.sizes(), vec![super::GROUP_ROWS]);
    }

    #[test]
    fn sampling_is_by_trace_id_and_rate() {
        assert!(sampled("00000000000000000000000000000000", 0.01));
        assert!(!sampled("0000000000000000ffffffffffffffff", 0.99));
        assert!(sampled("0000000000000000ffffffffffffffff", 1.0));
        assert!(!sampled("00000000000000000000000000000000", 0.0));
        let ids: Vec<String> = (0..1000u64).map(|i| format!("{:032x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
        let n = ids.iter().filter(|id| sampled(id, 0.25)).count();
        assert!((200..300).contains(&n), "{n} of 1000 sampled at 0.25");
        // The same id always gets the same answer.
        assert_eq!(ids.iter().filter(|id| sampled(id, 0.25)).count(), n);
    }
}
