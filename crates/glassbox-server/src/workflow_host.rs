//! Workflow runs in the server process: the registry of workflows, run records in the store,
//! and background execution with a bounded number of concurrent runs and a bounded queue.
//!
//! Persistence: a run's record (status, input, the engine's snapshot, result or error) is
//! saved when the run is created, when it starts, after every step (the engine's observer
//! waits for the save before the next step starts) and when it ends. Saves of one run are
//! serialized and carry a growing version, so a late save never rolls the run back.
//!
//! Recovery and idempotency: a suspended run resumes from its stored snapshot on any process
//! that serves the workflow. On start, [`WorkflowHost::recover`] continues every run left
//! `running` (a crash, a kill, a shutdown that did not wait) from its last saved snapshot:
//! completed steps are not run again, but the step that was running when the process died
//! runs again from its start, so step bodies with side effects should be idempotent (or
//! detect their own earlier attempt). Two processes must not own the same run at once: runs
//! are continued by whichever process restarts; run one owner per store for recovery.
//!
//! Shutdown: in-flight runs are simply dropped with the runtime; their records stay `running`
//! with the snapshot of their last completed step, and the next start continues them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use glassbox_core::workflow::{Resume, RunEvent, RunObserver, RunOptions, RunOutcome, RunSnapshot, SchemaViolation};
use glassbox_core::{RunStatus, Workflow};
use glassbox_store::{RunFilter, RunRecord, RunStore, StoreError};
use serde_json::Value;
use tokio::sync::{Semaphore, broadcast, watch};

/// Limits of background execution.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowLimits {
    /// Runs executing at once; further runs wait in the queue.
    pub max_concurrent_runs: usize,
    /// Runs waiting for a slot; beyond that a start is refused (503 `queue_full`).
    pub queue_capacity: usize,
    /// How long `start-async` / `resume-async` wait before answering 202 with the run id.
    pub wait_timeout: Duration,
}

impl Default for WorkflowLimits {
    fn default() -> Self {
        Self { max_concurrent_runs: 32, queue_capacity: 1024, wait_timeout: Duration::from_secs(30) }
    }
}

/// Why a run operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown workflow \"{workflow_id}\"")]
    WorkflowNotFound { workflow_id: String },
    #[error("unknown run \"{run_id}\" of workflow \"{workflow_id}\"")]
    RunNotFound { workflow_id: String, run_id: String },
    #[error("run \"{run_id}\" is {status}: {message}")]
    WrongState { run_id: String, status: &'static str, message: &'static str },
    #[error("run \"{run_id}\" already exists")]
    RunExists { run_id: String },
    #[error("{field}: {violation}")]
    InvalidInput { field: String, violation: SchemaViolation },
    #[error("step \"{step}\" of run \"{run_id}\" is not suspended; suspended: {suspended}")]
    NotSuspended { run_id: String, step: String, suspended: String },
    #[error("too many workflow runs are waiting ({capacity} queued); try again later")]
    QueueFull { capacity: usize },
    #[error("workflow run store failed")]
    Store(#[from] StoreError),
    #[error("stored run \"{run_id}\" is unreadable: {message}")]
    Corrupt { run_id: String, message: String },
}

/// A run as the API shows it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub record: RunRecord,
    pub status: RunStatus,
    pub snapshot: RunSnapshot,
}

impl RunView {
    fn from_record(record: RunRecord) -> Result<Self, RunError> {
        let corrupt = |message: String| RunError::Corrupt { run_id: record.run_id.clone(), message };
        let status = RunStatus::parse(&record.status).ok_or_else(|| corrupt(format!("status {:?}", record.status)))?;
        let snapshot_json: Value =
            serde_json::from_str(&record.snapshot).map_err(|error| corrupt(error.to_string()))?;
        let snapshot = RunSnapshot::from_json(&snapshot_json).map_err(corrupt)?;
        Ok(Self { record, status, snapshot })
    }
}

/// One event of a run, for `stream`.
#[derive(Debug, Clone)]
pub enum StepEvent {
    StepStart { step: String, attempt: u32 },
    StepResult { step: String, status: &'static str, output: Option<Value>, error: Option<String> },
    Suspended { steps: Vec<(String, Value)> },
    Finished { status: RunStatus, result: Option<Value>, error: Option<String> },
}

/// A run executing in this process.
struct LiveRun {
    cancel: watch::Sender<bool>,
    done: watch::Receiver<Option<RunView>>,
}

/// The workflows a server runs, and their runs.
#[derive(Clone)]
pub struct WorkflowHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    workflows: Vec<Workflow>,
    /// Workflow ids are fixed at start (as `AgentRegistry`'s agent ids), so the seeded fast hasher.
    index: foldhash::HashMap<String, usize>,
    store: Arc<dyn RunStore>,
    limits: WorkflowLimits,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    live: Mutex<HashMap<String, LiveRun>>,
}

impl std::fmt::Debug for WorkflowHost {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WorkflowHost").field("workflows", &self.inner.index.keys()).finish_non_exhaustive()
    }
}

/// The started run, for the caller to wait on or stream.
#[derive(Debug)]
pub struct Started {
    pub run_id: String,
    pub events: broadcast::Receiver<StepEvent>,
    pub done: watch::Receiver<Option<RunView>>,
}

impl WorkflowHost {
    pub fn new(
        workflows: impl IntoIterator<Item = Workflow>,
        store: Arc<dyn RunStore>,
        limits: WorkflowLimits,
    ) -> Self {
        let mut list: Vec<Workflow> = Vec::new();
        let mut index = foldhash::HashMap::default();
        for workflow in workflows {
            match index.get(workflow.id()) {
                Some(&position) => list[position] = workflow,
                None => {
                    index.insert(workflow.id().to_owned(), list.len());
                    list.push(workflow);
                }
            }
        }
        let limits = WorkflowLimits { max_concurrent_runs: limits.max_concurrent_runs.max(1), ..limits };
        Self {
            inner: Arc::new(HostInner {
                workflows: list,
                index,
                store,
                limits,
                slots: Arc::new(Semaphore::new(limits.max_concurrent_runs)),
                queued: AtomicUsize::new(0),
                live: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn workflows(&self) -> &[Workflow] {
        &self.inner.workflows
    }

    pub fn limits(&self) -> WorkflowLimits {
        self.inner.limits
    }

    pub fn workflow(&self, workflow_id: &str) -> Result<&Workflow, RunError> {
        self.inner
            .index
            .get(workflow_id)
            .map(|&position| &self.inner.workflows[position])
            .ok_or_else(|| RunError::WorkflowNotFound { workflow_id: workflow_id.to_owned() })
    }

    /// Runs executing or queued in this process.
    pub fn live_runs(&self) -> usize {
        self.inner.live.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Creates a `pending` run (with the given id, or a new UUIDv7).
    pub async fn create_run(&self, workflow_id: &str, run_id: Option<String>) -> Result<RunView, RunError> {
        self.workflow(workflow_id)?;
        let run_id = run_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if self.inner.store.get_run(&run_id).await?.is_some() {
            return Err(RunError::RunExists { run_id });
        }
        let now = now_ns();
        let record = RunRecord {
            run_id,
            workflow_id: workflow_id.to_owned(),
            status: RunStatus::Pending.as_str().to_owned(),
            input: "null".to_owned(),
            snapshot: RunSnapshot::default().to_json().to_string(),
            result: String::new(),
            error: String::new(),
            created_ns: now,
            updated_ns: now,
            version: 1,
        };
        self.inner.store.save_run(&record).await?;
        RunView::from_record(record)
    }

    /// One run of a workflow.
    pub async fn get_run(&self, workflow_id: &str, run_id: &str) -> Result<RunView, RunError> {
        self.workflow(workflow_id)?;
        match self.inner.store.get_run(run_id).await? {
            Some(record) if record.workflow_id == workflow_id => RunView::from_record(record),
            _ => Err(RunError::RunNotFound { workflow_id: workflow_id.to_owned(), run_id: run_id.to_owned() }),
        }
    }

    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunView>, RunError> {
        if let Some(workflow_id) = &filter.workflow_id {
            self.workflow(workflow_id)?;
        }
        let records = self.inner.store.list_runs(&filter).await?;
        records.into_iter().map(RunView::from_record).collect()
    }

    /// Starts a run in the background: a new one, or the `pending` run `run_id`.
    pub async fn start(&self, workflow_id: &str, run_id: Option<String>, input: Value) -> Result<Started, RunError> {
        let workflow = self.workflow(workflow_id)?.clone();
        workflow
            .check_input(&input)
            .map_err(|violation| RunError::InvalidInput { field: field("inputData", &violation), violation })?;
        let record = match run_id {
            Some(run_id) => {
                let view = self.get_run(workflow_id, &run_id).await?;
                if view.status != RunStatus::Pending {
                    return Err(RunError::WrongState {
                        run_id,
                        status: view.status.as_str(),
                        message: "only a pending run can be started",
                    });
                }
                view.record
            }
            None => self.create_run(workflow_id, None).await?.record,
        };
        let record = RunRecord { input: input.to_string(), ..record };
        self.launch(workflow, record, input, RunSnapshot::default(), None)
    }

    /// Resumes a suspended run (from the store, so on any process) with data for one of its
    /// suspended steps.
    pub async fn resume(
        &self,
        workflow_id: &str,
        run_id: &str,
        step: Option<String>,
        data: Value,
    ) -> Result<Started, RunError> {
        let workflow = self.workflow(workflow_id)?.clone();
        let view = self.get_run(workflow_id, run_id).await?;
        if view.status != RunStatus::Suspended || self.is_live(run_id) {
            return Err(RunError::WrongState {
                run_id: run_id.to_owned(),
                status: if self.is_live(run_id) { RunStatus::Running.as_str() } else { view.status.as_str() },
                message: "only a suspended run can be resumed",
            });
        }
        let suspended: Vec<String> = view.snapshot.suspended().into_iter().map(|(key, _)| key.to_owned()).collect();
        let step = match step {
            Some(step) => step,
            // One suspended step: the caller need not name it.
            None if suspended.len() == 1 => suspended[0].clone(),
            None => {
                return Err(RunError::NotSuspended {
                    run_id: run_id.to_owned(),
                    step: String::new(),
                    suspended: suspended.join(", "),
                });
            }
        };
        if !suspended.contains(&step) {
            return Err(RunError::NotSuspended { run_id: run_id.to_owned(), step, suspended: suspended.join(", ") });
        }
        workflow
            .check_resume(&step, &data)
            .map_err(|violation| RunError::InvalidInput { field: field("resumeData", &violation), violation })?;
        let input: Value = serde_json::from_str(&view.record.input)
            .map_err(|error| RunError::Corrupt { run_id: run_id.to_owned(), message: error.to_string() })?;
        self.launch(workflow, view.record, input, view.snapshot, Some(Resume { step, data }))
    }

    /// Cancels a run. A run executing here stops at once (its in-flight step is dropped); a
    /// pending or suspended run, or a running one this process does not own, is marked
    /// canceled in the store.
    pub async fn cancel(&self, workflow_id: &str, run_id: &str) -> Result<RunView, RunError> {
        let view = self.get_run(workflow_id, run_id).await?;
        let live = {
            let live = self.inner.live.lock().unwrap_or_else(PoisonError::into_inner);
            live.get(run_id).map(|run| (run.cancel.clone(), run.done.clone()))
        };
        if let Some((cancel, mut done)) = live {
            let _ = cancel.send(true);
            // The run's task saves the canceled record, then publishes it.
            let finished = done.wait_for(Option::is_some).await.map(|view| view.clone());
            return match finished {
                Ok(Some(view)) => Ok(view),
                _ => self.get_run(workflow_id, run_id).await,
            };
        }
        if view.status.is_terminal() {
            return Err(RunError::WrongState {
                run_id: run_id.to_owned(),
                status: view.status.as_str(),
                message: "a finished run cannot be canceled",
            });
        }
        let record = RunRecord {
            status: RunStatus::Canceled.as_str().to_owned(),
            updated_ns: now_ns(),
            version: view.record.version + 1,
            ..view.record
        };
        self.inner.store.save_run(&record).await?;
        RunView::from_record(record)
    }

    /// Continues every run left `running` in the store (by a crash or a shutdown) from its
    /// last saved snapshot. Returns the ids continued.
    pub async fn recover(&self) -> Result<Vec<String>, RunError> {
        let mut continued = Vec::new();
        loop {
            let filter = RunFilter {
                statuses: vec![RunStatus::Running.as_str().to_owned()],
                limit: glassbox_store::runs::MAX_RUNS_PAGE,
                ..RunFilter::default()
            };
            let records = self.inner.store.list_runs(&filter).await?;
            let mut launched_any = false;
            for record in records {
                if self.is_live(&record.run_id) || continued.contains(&record.run_id) {
                    continue;
                }
                let Ok(workflow) = self.workflow(&record.workflow_id).cloned() else {
                    tracing::warn!(run_id = %record.run_id, workflow = %record.workflow_id, "a running run's workflow is not served here; left as is");
                    continue;
                };
                let view = match RunView::from_record(record) {
                    Ok(view) => view,
                    Err(error) => {
                        tracing::error!(error = %crate::error::chain(&error), "cannot recover a run");
                        continue;
                    }
                };
                let input: Value = serde_json::from_str(&view.record.input).unwrap_or(Value::Null);
                let run_id = view.record.run_id.clone();
                tracing::info!(%run_id, workflow = %view.record.workflow_id, "continuing a run left running");
                match self.launch(workflow, view.record, input, view.snapshot, None) {
                    Ok(_) => {
                        continued.push(run_id);
                        launched_any = true;
                    }
                    Err(error) => {
                        tracing::warn!(error = %crate::error::chain(&error), "queue full while recovering runs");
                        return Ok(continued);
                    }
                }
            }
            if !launched_any {
                return Ok(continued);
            }
        }
    }

    fn is_live(&self, run_id: &str) -> bool {
        self.inner.live.lock().unwrap_or_else(PoisonError::into_inner).contains_key(run_id)
    }

    /// Registers the run as live and spawns its task (waiting for a slot in the queue).
    fn launch(
        &self,
        workflow: Workflow,
        record: RunRecord,
        input: Value,
        snapshot: RunSnapshot,
        resume: Option<Resume>,
    ) -> Result<Started, RunError> {
        let capacity = self.inner.limits.queue_capacity;
        let waiting = self.inner.queued.fetch_add(1, Ordering::SeqCst);
        if waiting >= capacity + self.inner.limits.max_concurrent_runs {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(RunError::QueueFull { capacity });
        }
        let run_id = record.run_id.clone();
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (events_tx, events_rx) = broadcast::channel(256);
        let (done_tx, done_rx) = watch::channel(None);
        {
            let mut live = self.inner.live.lock().unwrap_or_else(PoisonError::into_inner);
            if live.contains_key(&run_id) {
                self.inner.queued.fetch_sub(1, Ordering::SeqCst);
                return Err(RunError::WrongState {
                    run_id,
                    status: RunStatus::Running.as_str(),
                    message: "the run is already executing",
                });
            }
            live.insert(run_id.clone(), LiveRun { cancel: cancel_tx, done: done_rx.clone() });
        }
        let host = self.clone();
        let task = RunTask { host, workflow, record, input, snapshot, resume, events: events_tx, done: done_tx };
        // The task owns everything it needs; dropping the runtime drops it, leaving the record
        // `running` for recovery (see the module docs).
        tokio::spawn(task.run(cancel_rx));
        Ok(Started { run_id, events: events_rx, done: done_rx })
    }
}

/// Which request field a violation is about: `inputData.startDate` for `/startDate`.
fn field(root: &str, violation: &SchemaViolation) -> String {
    let path: Vec<&str> = violation.path.split('/').filter(|part| !part.is_empty()).collect();
    if path.is_empty() { root.to_owned() } else { format!("{root}.{}", path.join(".")) }
}

struct RunTask {
    host: WorkflowHost,
    workflow: Workflow,
    record: RunRecord,
    input: Value,
    snapshot: RunSnapshot,
    resume: Option<Resume>,
    events: broadcast::Sender<StepEvent>,
    done: watch::Sender<Option<RunView>>,
}

impl RunTask {
    async fn run(self, mut cancel: watch::Receiver<bool>) {
        let inner = Arc::clone(&self.host.inner);
        let run_id = self.record.run_id.clone();
        let permit = tokio::select! {
            permit = Arc::clone(&inner.slots).acquire_owned() => permit.ok(),
            _ = canceled(&mut cancel) => None,
        };
        let writer = Arc::new(RecordWriter {
            store: Arc::clone(&inner.store),
            state: tokio::sync::Mutex::new(WriterState {
                record: self.record,
                snapshot_version: self.snapshot.version,
            }),
            events: self.events.clone(),
        });
        let final_record = match permit {
            None => writer.finish(RunStatus::Canceled, None, None, None).await,
            Some(_permit) => {
                writer.status(RunStatus::Running).await;
                let mut options = RunOptions::new(run_id.clone());
                options.snapshot = self.snapshot;
                options.resume = self.resume;
                options.observer = Some(Arc::clone(&writer) as Arc<dyn RunObserver>);
                let execution = self.workflow.execute(self.input, options);
                tokio::select! {
                    result = execution => {
                        let snapshot = Some(result.snapshot);
                        match result.outcome {
                            RunOutcome::Success(output) => writer.finish(RunStatus::Success, Some(output), None, snapshot).await,
                            RunOutcome::Failed(failure) => writer.finish(RunStatus::Failed, None, Some(failure.message), snapshot).await,
                            RunOutcome::Suspended(steps) => {
                                let _ = self.events.send(StepEvent::Suspended { steps });
                                writer.finish(RunStatus::Suspended, None, None, snapshot).await
                            }
                        }
                    }
                    _ = canceled(&mut cancel) => writer.finish(RunStatus::Canceled, None, None, None).await,
                }
            }
        };
        inner.queued.fetch_sub(1, Ordering::SeqCst);
        inner.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&run_id);
        let view = RunView::from_record(final_record);
        match view {
            Ok(view) => {
                let _ = self.events.send(StepEvent::Finished {
                    status: view.status,
                    result: serde_json::from_str(&view.record.result).ok(),
                    error: (!view.record.error.is_empty()).then(|| view.record.error.clone()),
                });
                let _ = self.done.send(Some(view));
            }
            Err(error) => tracing::error!(error = %crate::error::chain(&error), "run record unreadable after the run"),
        }
    }
}

/// Resolves when the run is canceled (or its canceler is gone, which never happens while the
/// run is live).
async fn canceled(cancel: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = cancel.wait_for(|canceled| *canceled).await.is_ok();
}

struct WriterState {
    record: RunRecord,
    snapshot_version: u64,
}

/// Saves a run's record, one save at a time, with a growing version.
struct RecordWriter {
    store: Arc<dyn RunStore>,
    state: tokio::sync::Mutex<WriterState>,
    events: broadcast::Sender<StepEvent>,
}

/// Saving is retried this many times before the run goes on without it (logged: a crash
/// before the next save would then re-run more than the interrupted step).
const SAVE_ATTEMPTS: u32 = 3;

impl RecordWriter {
    async fn save(&self, state: &mut WriterState) {
        state.record.version += 1;
        state.record.updated_ns = now_ns();
        for attempt in 1..=SAVE_ATTEMPTS {
            match self.store.save_run(&state.record).await {
                Ok(()) => return,
                Err(error) if attempt < SAVE_ATTEMPTS && error.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(error) => {
                    tracing::error!(run_id = %state.record.run_id, error = %crate::error::chain(&error), "could not save a workflow run");
                    return;
                }
            }
        }
    }

    async fn status(&self, status: RunStatus) {
        let mut state = self.state.lock().await;
        state.record.status = status.as_str().to_owned();
        self.save(&mut state).await;
    }

    async fn finish(
        &self,
        status: RunStatus,
        result: Option<Value>,
        error: Option<String>,
        snapshot: Option<RunSnapshot>,
    ) -> RunRecord {
        let mut state = self.state.lock().await;
        if let Some(snapshot) = snapshot.filter(|snapshot| snapshot.version >= state.snapshot_version) {
            state.snapshot_version = snapshot.version;
            state.record.snapshot = snapshot.to_json().to_string();
        }
        state.record.status = status.as_str().to_owned();
        state.record.result = result.map(|value| value.to_string()).unwrap_or_default();
        state.record.error = error.unwrap_or_default();
        self.save(&mut state).await;
        state.record.clone()
    }
}

#[async_trait]
impl RunObserver for RecordWriter {
    async fn on_event(&self, event: RunEvent<'_>) {
        match event {
            RunEvent::StepStarted { key, attempt } => {
                let _ = self.events.send(StepEvent::StepStart { step: key.to_owned(), attempt });
            }
            RunEvent::StepFinished { key, record, snapshot } => {
                {
                    // Held across the save on purpose: saves of one run are ordered. Only this
                    // run's steps wait on it.
                    let mut state = self.state.lock().await;
                    if snapshot.version > state.snapshot_version {
                        state.snapshot_version = snapshot.version;
                        state.record.snapshot = snapshot.to_json().to_string();
                        self.save(&mut state).await;
                    }
                }
                let _ = self.events.send(StepEvent::StepResult {
                    step: key.to_owned(),
                    status: record.status.as_str(),
                    output: record.output.clone(),
                    error: record.error.clone(),
                });
            }
        }
    }
}

/// Opens the configured store as a run store (the same database the telemetry goes to).
pub async fn open_run_store(
    config: &glassbox_config::StoreConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn RunStore>, StoreError> {
    match crate::store::clickhouse_settings(config, env) {
        Some(settings) => Ok(Arc::new(glassbox_store::clickhouse::ClickHouseBackend::new(settings)?)),
        None => {
            let settings = glassbox_store::sqlite::SqliteSettings { path: config.sqlite_path.clone() };
            Ok(Arc::new(glassbox_store::sqlite::SqliteBackend::open(settings).await?))
        }
    }
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
