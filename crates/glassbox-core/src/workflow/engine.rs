//! Running a workflow: replaying its graph against a snapshot, running the steps that have no
//! successful record yet, with retries, timeouts, schema checks and one span per attempt.
//!
//! Spans: `invoke_workflow {workflow}` for the run (attributes `glassbox.workflow.id`,
//! `glassbox.workflow.run_id`, `glassbox.workflow.status`), and below it one
//! `workflow_step {key}` per attempt (`glassbox.workflow.step.id`, `.attempt`, `.status`), so
//! retries are visible; anything a step body does (an agent call) nests inside its attempt.
//!
//! The observer hears every step start and every step result together with the snapshot as
//! it is after that result: that is where the server persists the run, once per step.
//! Dropping the future returned by [`Workflow::execute`] cancels the run where it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::future::{BoxFuture, join_all};
use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use tracing::Instrument;

use super::{
    MapContext, Node, RunSnapshot, SchemaViolation, Step, StepContext, StepError, StepRecord, StepStatus, Workflow,
};

/// Resume a suspended step with data.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// The step's key, as in the snapshot.
    pub step: String,
    pub data: Value,
}

/// How to execute a run.
#[derive(Clone)]
pub struct RunOptions {
    pub run_id: String,
    /// Where the run stands: empty for a new run, the stored snapshot to continue one.
    pub snapshot: RunSnapshot,
    pub resume: Option<Resume>,
    pub observer: Option<Arc<dyn RunObserver>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RunOptions")
            .field("run_id", &self.run_id)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    pub fn new(run_id: impl Into<String>) -> Self {
        Self { run_id: run_id.into(), snapshot: RunSnapshot::default(), resume: None, observer: None }
    }
}

/// What a run's observer hears, in order.
#[derive(Debug)]
pub enum RunEvent<'a> {
    StepStarted {
        key: &'a str,
        attempt: u32,
    },
    /// A step has a new record (success, failure or suspension); `snapshot` includes it.
    StepFinished {
        key: &'a str,
        record: &'a StepRecord,
        snapshot: &'a RunSnapshot,
    },
}

/// Hears a run's progress: persists it, streams it.
#[async_trait]
pub trait RunObserver: Send + Sync {
    async fn on_event(&self, event: RunEvent<'_>);
}

/// Why a run failed: which step, a stable kind, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: String,
    /// `step_failed`, `timeout`, `input_invalid`, `output_invalid`, `foreach_input`,
    /// `loop_limit`, `map_failed`, `workflow_input_invalid`.
    pub kind: &'static str,
    pub message: String,
}

/// How a run ended (for now: a suspended run can be resumed).
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Success(Value),
    /// The keys of the suspended steps, with their payloads.
    Suspended(Vec<(String, Value)>),
    Failed(StepFailure),
}

/// The outcome and the final snapshot.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub snapshot: RunSnapshot,
}

enum Halt {
    Suspended,
    Failed(StepFailure),
}

impl Workflow {
    /// Runs to the end (or a suspension) with a fresh run id and no persistence.
    pub async fn run(&self, input: Value) -> RunResult {
        self.execute(input, RunOptions::new(local_run_id())).await
    }

    /// Checks data meant to resume `step_key` against that step's resume schema.
    pub fn check_resume(&self, step_key: &str, data: &Value) -> Result<(), SchemaViolation> {
        match self.step(step_key).and_then(|step| step.resume_schema.as_ref()) {
            Some(schema) => schema.check(data),
            None => Ok(()),
        }
    }

    /// Runs (or continues, from `options.snapshot`) the workflow on `input`.
    pub async fn execute(&self, input: Value, options: RunOptions) -> RunResult {
        let span = tracing::info_span!(
            "invoke_workflow",
            otel.name = %format_args!("invoke_workflow {}", self.inner.id),
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            gen_ai.operation.name = "invoke_workflow",
            glassbox.workflow.id = %self.inner.id,
            glassbox.workflow.run_id = %options.run_id,
            glassbox.workflow.status = tracing::field::Empty,
            glassbox.workflow.resumed = options.resume.is_some() || !options.snapshot.steps.is_empty(),
        );
        let exec = Exec {
            workflow: self,
            run_id: options.run_id,
            input: Arc::new(input),
            state: Mutex::new(options.snapshot),
            resume: options.resume,
            observer: options.observer,
        };
        let outcome = async {
            if let Err(violation) = self.check_input(&exec.input) {
                return RunOutcome::Failed(StepFailure {
                    step: String::new(),
                    kind: "workflow_input_invalid",
                    message: format!("workflow input: {violation}"),
                });
            }
            let mut value = (*exec.input).clone();
            for node in &self.inner.nodes {
                match exec.node(node, value, String::new()).await {
                    Ok(output) => value = output,
                    Err(Halt::Suspended) => {
                        let snapshot = exec.snapshot();
                        let suspended = snapshot
                            .suspended()
                            .into_iter()
                            .map(|(key, payload)| (key.to_owned(), payload.clone()))
                            .collect();
                        return RunOutcome::Suspended(suspended);
                    }
                    Err(Halt::Failed(failure)) => return RunOutcome::Failed(failure),
                }
            }
            RunOutcome::Success(value)
        }
        .instrument(span.clone())
        .await;
        let status = match &outcome {
            RunOutcome::Success(_) => "success",
            RunOutcome::Suspended(_) => "suspended",
            RunOutcome::Failed(failure) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", failure.kind);
                span.record("otel.status_description", failure.message.as_str());
                "failed"
            }
        };
        span.record("glassbox.workflow.status", status);
        RunResult { outcome, snapshot: exec.snapshot() }
    }
}

struct Exec<'w> {
    workflow: &'w Workflow,
    run_id: String,
    input: Arc<Value>,
    state: Mutex<RunSnapshot>,
    resume: Option<Resume>,
    observer: Option<Arc<dyn RunObserver>>,
}

impl Exec<'_> {
    fn snapshot(&self) -> RunSnapshot {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn record_of(&self, key: &str) -> Option<StepRecord> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).steps.get(key).cloned()
    }

    async fn started(&self, key: &str, attempt: u32) {
        if let Some(observer) = &self.observer {
            observer.on_event(RunEvent::StepStarted { key, attempt }).await;
        }
    }

    /// Stores a step's record (bumping the version) and tells the observer.
    async fn finished(&self, key: &str, record: StepRecord) {
        let snapshot = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.version += 1;
            state.steps.insert(key.to_owned(), record.clone());
            // The observer needs a consistent picture; the lock is not held across its await.
            self.observer.as_ref().map(|_| state.clone())
        };
        if let (Some(observer), Some(snapshot)) = (&self.observer, snapshot) {
            observer.on_event(RunEvent::StepFinished { key, record: &record, snapshot: &snapshot }).await;
        }
    }

    fn node<'a>(&'a self, node: &'a Node, input: Value, scope: String) -> BoxFuture<'a, Result<Value, Halt>> {
        async move {
            match node {
                Node::Step(step) => self.step(step, input, scope).await,
                Node::Parallel(children) => {
                    let runs = children.iter().map(|child| {
                        let input = input.clone();
                        let scope = scope.clone();
                        async move { (child.id(), self.node(child, input, scope).await) }
                    });
                    let results = join_all(runs).await;
                    collect_object(results)
                }
                Node::Branch(arms) => match arms.iter().find(|(condition, _)| condition(&input)) {
                    Some((_, chosen)) => self.node(chosen, input, scope).await,
                    None => Ok(input),
                },
                Node::Foreach { node: child, concurrency } => {
                    let Value::Array(items) = input else {
                        return Err(Halt::Failed(StepFailure {
                            step: format!("{}{scope}", node.id()),
                            kind: "foreach_input",
                            message: format!("foreach needs an array as input, got {}", kind_of(&input)),
                        }));
                    };
                    let results: Vec<Result<Value, Halt>> = futures::stream::iter(items.into_iter().enumerate())
                        .map(|(index, item)| self.node(child, item, format!("{scope}[{index}]")))
                        .buffered(*concurrency)
                        .collect()
                        .await;
                    collect_array(results)
                }
                Node::Loop { node: child, condition, until, max_iterations } => {
                    let mut value = input;
                    for iteration in 1..=*max_iterations {
                        value = self.node(child, value, format!("{scope}#{iteration}")).await?;
                        let holds = condition(&value);
                        let done = if *until { holds } else { !holds };
                        if done {
                            return Ok(value);
                        }
                    }
                    Err(Halt::Failed(StepFailure {
                        step: format!("{}{scope}", node.id()),
                        kind: "loop_limit",
                        message: format!("the loop did not finish within {max_iterations} iterations"),
                    }))
                }
                Node::Sleep { id, duration } => {
                    let key = format!("{id}{scope}");
                    if let Some(record) = self.record_of(&key).filter(|record| record.status == StepStatus::Success) {
                        return Ok(record.output.unwrap_or(Value::Null));
                    }
                    let started_ns = now_ns();
                    self.started(&key, 1).await;
                    tokio::time::sleep(*duration).await;
                    let record = StepRecord {
                        status: StepStatus::Success,
                        input: Value::Null,
                        output: Some(input.clone()),
                        error: None,
                        suspend_payload: None,
                        resume_data: None,
                        attempts: 1,
                        started_ns,
                        ended_ns: now_ns(),
                    };
                    self.finished(&key, record).await;
                    Ok(input)
                }
                Node::Map { id, function } => {
                    let outputs = self.snapshot().outputs();
                    let context = MapContext { input: &input, workflow_input: &self.input, outputs: &outputs };
                    function(&context).map_err(|message| {
                        Halt::Failed(StepFailure { step: format!("{id}{scope}"), kind: "map_failed", message })
                    })
                }
            }
        }
        .boxed()
    }

    async fn step(&self, step: &Step, input: Value, scope: String) -> Result<Value, Halt> {
        let key = format!("{}{scope}", step.id);
        let mut resume_data = None;
        match self.record_of(&key) {
            Some(record) if record.status == StepStatus::Success => return Ok(record.output.unwrap_or(Value::Null)),
            Some(record) if record.status == StepStatus::Suspended => match &self.resume {
                Some(resume) if resume.step == key => resume_data = Some(resume.data.clone()),
                // Still waiting for its own resume.
                _ => return Err(Halt::Suspended),
            },
            _ => {}
        }
        let started_ns = now_ns();
        let mut record = StepRecord {
            status: StepStatus::Failed,
            input: input.clone(),
            output: None,
            error: None,
            suspend_payload: None,
            resume_data: resume_data.clone(),
            attempts: 0,
            started_ns,
            ended_ns: started_ns,
        };
        if let Some(Err(violation)) = step.input_schema.as_ref().map(|schema| schema.check(&input)) {
            return Err(self.fail(&key, record, "input_invalid", format!("input of step `{key}`: {violation}")).await);
        }
        let policy = step.retry.unwrap_or(self.workflow.inner.default_retry);
        let timeout = step.timeout.or(self.workflow.inner.default_timeout);
        let mut attempt = 0;
        loop {
            attempt += 1;
            record.attempts = attempt;
            self.started(&key, attempt).await;
            let span = tracing::info_span!(
                "workflow_step",
                otel.name = %format_args!("workflow_step {key}"),
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                "error.type" = tracing::field::Empty,
                glassbox.workflow.id = %self.workflow.inner.id,
                glassbox.workflow.run_id = %self.run_id,
                glassbox.workflow.step.id = %key,
                glassbox.workflow.step.attempt = attempt,
                glassbox.workflow.step.status = tracing::field::Empty,
            );
            let context = StepContext {
                run_id: self.run_id.clone(),
                workflow_id: self.workflow.inner.id.clone(),
                step_key: key.clone(),
                input: input.clone(),
                workflow_input: Arc::clone(&self.input),
                outputs: Arc::new(self.snapshot().outputs()),
                resume_data: resume_data.clone(),
                attempt,
            };
            let body = (step.body)(context).instrument(span.clone());
            let result = match timeout {
                Some(limit) => match tokio::time::timeout(limit, body).await {
                    Ok(result) => result.map_err(Some),
                    Err(_) => Err(None),
                },
                None => body.await.map_err(Some),
            };
            match result {
                Ok(output) => {
                    if let Some(Err(violation)) = step.output_schema.as_ref().map(|schema| schema.check(&output)) {
                        mark(&span, "failed", Some("output_invalid"), &violation.to_string());
                        record.output = Some(output);
                        let message = format!("output of step `{key}`: {violation}");
                        return Err(self.fail(&key, record, "output_invalid", message).await);
                    }
                    mark(&span, "success", None, "");
                    record.status = StepStatus::Success;
                    record.output = Some(output.clone());
                    record.ended_ns = now_ns();
                    self.finished(&key, record).await;
                    return Ok(output);
                }
                Err(Some(StepError::Suspend(payload))) => {
                    mark(&span, "suspended", None, "");
                    record.status = StepStatus::Suspended;
                    record.suspend_payload = Some(payload);
                    record.ended_ns = now_ns();
                    self.finished(&key, record).await;
                    return Err(Halt::Suspended);
                }
                Err(failure) => {
                    let (kind, message) = match failure {
                        Some(error) => ("step_failed", crate::error_chain(&error)),
                        None => ("timeout", format!("attempt timed out after {:?}", timeout.unwrap_or_default())),
                    };
                    mark(&span, "failed", Some(kind), &message);
                    if attempt >= policy.attempts {
                        let message = format!("step `{key}` failed after {attempt} attempt(s): {message}");
                        return Err(self.fail(&key, record, kind, message).await);
                    }
                    tracing::debug!(step = %key, attempt, %message, "step attempt failed; retrying");
                    tokio::time::sleep(policy.delay_after(attempt)).await;
                }
            }
        }
    }

    async fn fail(&self, key: &str, mut record: StepRecord, kind: &'static str, message: String) -> Halt {
        record.status = StepStatus::Failed;
        record.error = Some(message.clone());
        record.ended_ns = now_ns();
        self.finished(key, record).await;
        Halt::Failed(StepFailure { step: key.to_owned(), kind, message })
    }
}

fn mark(span: &tracing::Span, status: &str, error_kind: Option<&str>, message: &str) {
    span.record("glassbox.workflow.step.status", status);
    if let Some(kind) = error_kind {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", kind);
        span.record("otel.status_description", message);
    }
}

/// Failure wins over suspension: a failed child fails the block even if another suspended.
fn first_halt(halts: Vec<Halt>) -> Halt {
    let mut suspended = false;
    for halt in halts {
        match halt {
            Halt::Failed(failure) => return Halt::Failed(failure),
            Halt::Suspended => suspended = true,
        }
    }
    debug_assert!(suspended);
    Halt::Suspended
}

fn collect_object(results: Vec<(String, Result<Value, Halt>)>) -> Result<Value, Halt> {
    let mut object = Map::new();
    let mut halts = Vec::new();
    for (id, result) in results {
        match result {
            Ok(value) => {
                object.insert(id, value);
            }
            Err(halt) => halts.push(halt),
        }
    }
    if halts.is_empty() { Ok(Value::Object(object)) } else { Err(first_halt(halts)) }
}

fn collect_array(results: Vec<Result<Value, Halt>>) -> Result<Value, Halt> {
    let mut values = Vec::with_capacity(results.len());
    let mut halts = Vec::new();
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(halt) => halts.push(halt),
        }
    }
    if halts.is_empty() { Ok(Value::Array(values)) } else { Err(first_halt(halts)) }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A process-unique id for runs started without one (library use without a store).
fn local_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("run-{:x}-{}", now_ns(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The run future must be `Send`, so servers can spawn it.
#[allow(dead_code)]
fn assert_send(workflow: &Workflow) -> impl Send + '_ {
    workflow.execute(Value::Null, RunOptions::new("x"))
}
