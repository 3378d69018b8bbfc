//! Workflows: multi-step processes defined in Rust and run by the [`engine`].
//!
//! A workflow is a sequence of nodes. Each node gets the previous node's output as its input
//! (the first gets the workflow's input) and the last node's output is the run's result.
//! Nodes are steps ([`Step`]: an id, optional input/output/resume JSON schemas checked at run
//! time, retries, a timeout and an async body) or compositions of them: `parallel`, `branch`
//! (the first matching condition), `foreach` (over an array, with a concurrency limit),
//! `dowhile` / `dountil` (with an iteration cap), `sleep` and `map`.
//!
//! A run's progress is a [`RunSnapshot`]: one [`StepRecord`] per executed step, keyed by the
//! step's id plus where it ran (`process[2]` is the third item of a `foreach`, `poll#3` the
//! third iteration of a loop). Resuming (after a suspension, or after a crash) replays the
//! graph from the start: a step with a successful record is not run again, its recorded
//! output is used instead, so only the interrupted step runs a second time. Conditions and
//! `map` functions must therefore be pure functions of their input.
//!
//! Core types do not derive `Serialize`; the snapshot has its own JSON form
//! ([`RunSnapshot::to_json`]) because it is state the store keeps, not a wire type.

pub mod engine;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

pub use engine::{Resume, RunEvent, RunObserver, RunOptions, RunOutcome, RunResult, StepFailure};

/// A run's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Pending,
    Running,
    Suspended,
    Success,
    Failed,
    Canceled,
}

impl RunStatus {
    pub const ALL: [Self; 6] =
        [Self::Pending, Self::Running, Self::Suspended, Self::Success, Self::Failed, Self::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Suspended => "suspended",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Canceled)
    }
}

/// Why a workflow could not be defined.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("workflow `{workflow}` has no steps")]
    Empty { workflow: String },
    #[error("step id `{step}` is used twice in workflow `{workflow}`")]
    DuplicateStep { workflow: String, step: String },
    #[error("invalid {which} schema of `{owner}`: {message}")]
    InvalidSchema { owner: String, which: &'static str, message: String },
    #[error("`{owner}`: {message}")]
    Invalid { owner: String, message: String },
}

/// A value that does not match a JSON schema: where (a JSON pointer, `""` for the whole value)
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at `{path}`")]
pub struct SchemaViolation {
    pub path: String,
    pub message: String,
}

/// A compiled JSON schema with its source, for describing and validating.
#[derive(Clone)]
pub struct Schema {
    source: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_tuple("Schema").field(&self.source).finish()
    }
}

impl Schema {
    pub fn compile(owner: &str, which: &'static str, source: Value) -> Result<Self, DefinitionError> {
        let validator = jsonschema::validator_for(&source).map_err(|error| DefinitionError::InvalidSchema {
            owner: owner.to_owned(),
            which,
            message: error.to_string(),
        })?;
        Ok(Self { source, validator: Arc::new(validator) })
    }

    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The first problem found, if any.
    pub fn check(&self, value: &Value) -> Result<(), SchemaViolation> {
        match self.validator.iter_errors(value).next() {
            None => Ok(()),
            Some(error) => Err(SchemaViolation { path: error.instance_path().to_string(), message: error.to_string() }),
        }
    }
}

/// How often a step is attempted and how long to wait between attempts: `backoff`, doubled
/// after every failed attempt, capped at `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    pub const NONE: Self = Self { attempts: 1, backoff: Duration::ZERO, max_backoff: Duration::ZERO };

    pub fn new(attempts: u32, backoff: Duration) -> Self {
        Self { attempts: attempts.max(1), backoff, max_backoff: Duration::from_secs(60) }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff.max(self.backoff))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::NONE
    }
}

/// Why a step body did not produce an output.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Not an error: the step waits for outside input (a human's approval, ...). The payload
    /// says what it waits for; the run is `suspended` until resumed with data for this step.
    #[error("suspended")]
    Suspend(Value),
    /// The attempt failed; it is retried while the step's retry policy allows.
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl StepError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), source: None }
    }

    pub fn with_source(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Failed { message: message.into(), source: Some(Box::new(source)) }
    }
}

/// What a step body gets.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub run_id: String,
    pub workflow_id: String,
    /// This step's key in the snapshot (its id plus where it ran).
    pub step_key: String,
    /// The previous node's output (validated against the step's input schema).
    pub input: Value,
    /// The run's input.
    pub workflow_input: Arc<Value>,
    /// Outputs of the steps completed before this one started, by step key.
    pub outputs: Arc<BTreeMap<String, Value>>,
    /// Set when the run resumes this (suspended) step: the caller's data, validated against
    /// the step's resume schema.
    pub resume_data: Option<Value>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

impl StepContext {
    /// The output of an earlier step, by key.
    pub fn output_of(&self, step_key: &str) -> Option<&Value> {
        self.outputs.get(step_key)
    }

    /// Ends this attempt by suspending the run with `payload`; return it from the body.
    pub fn suspend(&self, payload: Value) -> StepError {
        StepError::Suspend(payload)
    }
}

type StepFuture = Pin<Box<dyn Future<Output = Result<Value, StepError>> + Send>>;
type StepFn = dyn Fn(StepContext) -> StepFuture + Send + Sync;

/// One unit of work.
#[derive(Clone)]
pub struct Step {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) input_schema: Option<Schema>,
    pub(crate) output_schema: Option<Schema>,
    pub(crate) resume_schema: Option<Schema>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) body: Arc<StepFn>,
    pub(crate) error: Option<String>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Step").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Step {
    /// A step whose body is an async closure.
    pub fn new<F, Fut>(id: impl Into<String>, body: F) -> Self
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
    {
        Self {
            id: id.into(),
            description: String::new(),
            input_schema: None,
            output_schema: None,
            resume_schema: None,
            retry: None,
            timeout: None,
            body: Arc::new(move |context| Box::pin(body(context))),
            error: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    fn schema(&mut self, which: &'static str, source: Value) -> Option<Schema> {
        match Schema::compile(&self.id, which, source) {
            Ok(schema) => Some(schema),
            Err(error) => {
                // Reported by `WorkflowBuilder::build`, so the builder chain stays infallible.
                self.error.get_or_insert(error.to_string());
                None
            }
        }
    }

    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = self.schema("input", schema);
        self
    }

    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = self.schema("output", schema);
        self
    }

    /// The shape of the data that resumes this step after it suspended.
    pub fn resume_schema(mut self, schema: Value) -> Self {
        self.resume_schema = self.schema("resume", schema);
        self
    }

    /// Overrides the workflow's default retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Overrides the workflow's default per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn get_description(&self) -> &str {
        &self.description
    }

    pub fn get_input_schema(&self) -> Option<&Schema> {
        self.input_schema.as_ref()
    }

    pub fn get_output_schema(&self) -> Option<&Schema> {
        self.output_schema.as_ref()
    }

    pub fn get_resume_schema(&self) -> Option<&Schema> {
        self.resume_schema.as_ref()
    }
}

/// A condition of `branch` (on the node's input) or of a loop (on the iteration's output).
pub type Condition = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// What a `map` function sees.
#[derive(Debug)]
pub struct MapContext<'a> {
    /// The previous node's output.
    pub input: &'a Value,
    pub workflow_input: &'a Value,
    /// Outputs of the completed steps, by step key.
    pub outputs: &'a BTreeMap<String, Value>,
}

pub type MapFn = Arc<dyn Fn(&MapContext<'_>) -> Result<Value, String> + Send + Sync>;

/// A node of the workflow graph.
#[derive(Clone)]
pub enum Node {
    Step(Arc<Step>),
    /// Runs every child on the same input at once; the output is an object keyed by the
    /// children's ids.
    Parallel(Vec<Node>),
    /// Runs the first child whose condition holds on the input and passes its output on; when
    /// none holds, the input passes through unchanged.
    Branch(Vec<(Condition, Node)>),
    /// Runs the child once per element of the input array, at most `concurrency` at a time;
    /// the output is the array of results in input order.
    Foreach {
        node: Box<Node>,
        concurrency: usize,
    },
    /// Runs the child, then again on its own output while (`until == false`) or until
    /// (`until == true`) the condition holds on that output; failing after `max_iterations`.
    Loop {
        node: Box<Node>,
        condition: Condition,
        until: bool,
        max_iterations: u32,
    },
    /// Waits, then passes the input on. Recorded in the snapshot under its id once done.
    Sleep {
        id: String,
        duration: Duration,
    },
    /// Reshapes data; not recorded, recomputed on replay.
    Map {
        id: String,
        function: MapFn,
    },
}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.id())
    }
}

impl From<Step> for Node {
    fn from(step: Step) -> Self {
        Self::Step(Arc::new(step))
    }
}

impl Node {
    /// The id a parallel block keys this child's output by.
    pub fn id(&self) -> String {
        match self {
            Self::Step(step) => step.id.clone(),
            Self::Parallel(children) => {
                format!("parallel({})", children.iter().map(Node::id).collect::<Vec<_>>().join(","))
            }
            Self::Branch(arms) => {
                format!("branch({})", arms.iter().map(|(_, node)| node.id()).collect::<Vec<_>>().join(","))
            }
            Self::Foreach { node, .. } => format!("foreach({})", node.id()),
            Self::Loop { node, .. } => format!("loop({})", node.id()),
            Self::Sleep { id, .. } | Self::Map { id, .. } => id.clone(),
        }
    }

    /// Every step in this node, depth first.
    pub fn steps(&self) -> Vec<&Arc<Step>> {
        let mut steps = Vec::new();
        self.collect_steps(&mut steps);
        steps
    }

    fn collect_steps<'a>(&'a self, into: &mut Vec<&'a Arc<Step>>) {
        match self {
            Self::Step(step) => into.push(step),
            Self::Parallel(children) => children.iter().for_each(|child| child.collect_steps(into)),
            Self::Branch(arms) => arms.iter().for_each(|(_, child)| child.collect_steps(into)),
            Self::Foreach { node, .. } | Self::Loop { node, .. } => node.collect_steps(into),
            Self::Sleep { .. } | Self::Map { .. } => {}
        }
    }

    /// The kind of node, for describing a workflow.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Step(_) => "step",
            Self::Parallel(_) => "parallel",
            Self::Branch(_) => "branch",
            Self::Foreach { .. } => "foreach",
            Self::Loop { until: false, .. } => "dowhile",
            Self::Loop { until: true, .. } => "dountil",
            Self::Sleep { .. } => "sleep",
            Self::Map { .. } => "map",
        }
    }
}

/// A defined workflow. Cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    pub(crate) inner: Arc<WorkflowInner>,
}

pub(crate) struct WorkflowInner {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) input_schema: Option<Schema>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) default_retry: RetryPolicy,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) steps: BTreeMap<String, Arc<Step>>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Workflow").field("id", &self.inner.id).field("nodes", &self.inner.nodes).finish()
    }
}

impl Workflow {
    pub fn builder(id: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder {
            id: id.into(),
            description: String::new(),
            input_schema: None,
            nodes: Vec::new(),
            default_retry: RetryPolicy::NONE,
            default_timeout: None,
            sleeps: 0,
            maps: 0,
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn description(&self) -> &str {
        &self.inner.description
    }

    pub fn input_schema(&self) -> Option<&Schema> {
        self.inner.input_schema.as_ref()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.inner.nodes
    }

    /// A step by its id, or by a snapshot key (`process[2]#1` finds `process`).
    pub fn step(&self, id_or_key: &str) -> Option<&Arc<Step>> {
        let id = id_or_key.split(['[', '#']).next().unwrap_or(id_or_key);
        self.inner.steps.get(id)
    }

    /// Every step, in definition order.
    pub fn steps(&self) -> Vec<&Arc<Step>> {
        self.inner.nodes.iter().flat_map(Node::steps).collect()
    }

    /// Checks a run's input against the workflow's input schema.
    pub fn check_input(&self, input: &Value) -> Result<(), SchemaViolation> {
        match &self.inner.input_schema {
            Some(schema) => schema.check(input),
            None => Ok(()),
        }
    }
}

/// Builds a [`Workflow`] node by node.
pub struct WorkflowBuilder {
    id: String,
    description: String,
    input_schema: Option<Value>,
    nodes: Vec<Node>,
    default_retry: RetryPolicy,
    default_timeout: Option<Duration>,
    sleeps: u32,
    maps: u32,
}

impl std::fmt::Debug for WorkflowBuilder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WorkflowBuilder").field("id", &self.id).finish_non_exhaustive()
    }
}

impl WorkflowBuilder {
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = Some(schema);
        self
    }

    /// Retry policy of steps that set none.
    pub fn default_retry(mut self, policy: RetryPolicy) -> Self {
        self.default_retry = policy;
        self
    }

    /// Per-attempt timeout of steps that set none.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    pub fn then(mut self, node: impl Into<Node>) -> Self {
        self.nodes.push(node.into());
        self
    }

    pub fn parallel(self, nodes: impl IntoIterator<Item = impl Into<Node>>) -> Self {
        self.then(Node::Parallel(nodes.into_iter().map(Into::into).collect()))
    }

    /// Arms are tried in order; the first whose condition holds on the input runs.
    pub fn branch(self, arms: impl IntoIterator<Item = (Condition, Node)>) -> Self {
        self.then(Node::Branch(arms.into_iter().collect()))
    }

    pub fn foreach(self, node: impl Into<Node>, concurrency: usize) -> Self {
        self.then(Node::Foreach { node: Box::new(node.into()), concurrency: concurrency.max(1) })
    }

    pub fn dowhile(
        self,
        node: impl Into<Node>,
        condition: impl Fn(&Value) -> bool + Send + Sync + 'static,
        max_iterations: u32,
    ) -> Self {
        self.then(Node::Loop {
            node: Box::new(node.into()),
            condition: Arc::new(condition),
            until: false,
            max_iterations,
        })
    }

    pub fn dountil(
        self,
        node: impl Into<Node>,
        condition: impl Fn(&Value) -> bool + Send + Sync + 'static,
        max_iterations: u32,
    ) -> Self {
        self.then(Node::Loop {
            node: Box::new(node.into()),
            condition: Arc::new(condition),
            until: true,
            max_iterations,
        })
    }

    pub fn sleep(mut self, duration: Duration) -> Self {
        self.sleeps += 1;
        let id = format!("sleep_{}", self.sleeps);
        self.then(Node::Sleep { id, duration })
    }

    pub fn map(mut self, function: impl Fn(&MapContext<'_>) -> Result<Value, String> + Send + Sync + 'static) -> Self {
        self.maps += 1;
        let id = format!("map_{}", self.maps);
        self.then(Node::Map { id, function: Arc::new(function) })
    }

    pub fn build(self) -> Result<Workflow, DefinitionError> {
        if self.nodes.is_empty() {
            return Err(DefinitionError::Empty { workflow: self.id });
        }
        let input_schema = match self.input_schema {
            Some(source) => Some(Schema::compile(&self.id, "input", source)?),
            None => None,
        };
        let mut steps = BTreeMap::new();
        for step in self.nodes.iter().flat_map(Node::steps) {
            if let Some(message) = &step.error {
                return Err(DefinitionError::Invalid { owner: step.id.clone(), message: message.clone() });
            }
            if step.id.is_empty() || step.id.contains(['[', ']', '#']) {
                return Err(DefinitionError::Invalid {
                    owner: format!("workflow `{}`", self.id),
                    message: format!("step id {:?} must be non-empty without `[`, `]` or `#`", step.id),
                });
            }
            if steps.insert(step.id.clone(), Arc::clone(step)).is_some() {
                return Err(DefinitionError::DuplicateStep { workflow: self.id, step: step.id.clone() });
            }
        }
        for node in &self.nodes {
            check_node(&self.id, node)?;
        }
        Ok(Workflow {
            inner: Arc::new(WorkflowInner {
                id: self.id,
                description: self.description,
                input_schema,
                nodes: self.nodes,
                default_retry: self.default_retry,
                default_timeout: self.default_timeout,
                steps,
            }),
        })
    }
}

fn check_node(workflow: &str, node: &Node) -> Result<(), DefinitionError> {
    let invalid = |message: &str| DefinitionError::Invalid {
        owner: format!("workflow `{workflow}`"),
        message: message.to_owned(),
    };
    match node {
        Node::Parallel(children) if children.is_empty() => Err(invalid("a parallel block needs at least one node")),
        Node::Branch(arms) if arms.is_empty() => Err(invalid("a branch needs at least one arm")),
        Node::Loop { max_iterations: 0, .. } => Err(invalid("a loop needs max_iterations of at least 1")),
        Node::Parallel(children) => children.iter().try_for_each(|child| check_node(workflow, child)),
        Node::Branch(arms) => arms.iter().try_for_each(|(_, child)| check_node(workflow, child)),
        Node::Foreach { node, .. } | Node::Loop { node, .. } => check_node(workflow, node),
        Node::Step(_) | Node::Sleep { .. } | Node::Map { .. } => Ok(()),
    }
}

/// What happened to one step execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Success,
    Failed,
    Suspended,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Suspended => "suspended",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Success, Self::Failed, Self::Suspended].into_iter().find(|status| status.as_str() == text)
    }
}

/// The outcome of one step execution (all its attempts).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub status: StepStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub suspend_payload: Option<Value>,
    pub resume_data: Option<Value>,
    pub attempts: u32,
    /// Unix nanoseconds.
    pub started_ns: i64,
    pub ended_ns: i64,
}

/// A run's progress: the record of every step executed so far, by step key, and a version
/// that grows with every change (stores keep the newest version).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSnapshot {
    pub steps: BTreeMap<String, StepRecord>,
    pub version: u64,
}

impl RunSnapshot {
    /// Outputs of the successful steps, by key.
    pub fn outputs(&self) -> BTreeMap<String, Value> {
        self.steps
            .iter()
            .filter(|(_, record)| record.status == StepStatus::Success)
            .filter_map(|(key, record)| record.output.clone().map(|output| (key.clone(), output)))
            .collect()
    }

    /// Keys of the steps waiting to be resumed, with what they wait for.
    pub fn suspended(&self) -> Vec<(&str, &Value)> {
        self.steps
            .iter()
            .filter(|(_, record)| record.status == StepStatus::Suspended)
            .map(|(key, record)| (key.as_str(), record.suspend_payload.as_ref().unwrap_or(&Value::Null)))
            .collect()
    }

    pub fn to_json(&self) -> Value {
        let steps: Map<String, Value> = self
            .steps
            .iter()
            .map(|(key, record)| {
                let mut object = Map::new();
                object.insert("status".into(), Value::from(record.status.as_str()));
                object.insert("input".into(), record.input.clone());
                let optional = [
                    ("output", record.output.clone()),
                    ("error", record.error.clone().map(Value::from)),
                    ("suspendPayload", record.suspend_payload.clone()),
                    ("resumeData", record.resume_data.clone()),
                ];
                for (name, value) in optional {
                    if let Some(value) = value {
                        object.insert(name.into(), value);
                    }
                }
                object.insert("attempts".into(), Value::from(record.attempts));
                object.insert("startedNs".into(), Value::from(record.started_ns));
                object.insert("endedNs".into(), Value::from(record.ended_ns));
                (key.clone(), Value::Object(object))
            })
            .collect();
        serde_json::json!({ "version": self.version, "steps": steps })
    }

    /// Reads what [`Self::to_json`] wrote.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let version = value.get("version").and_then(Value::as_u64).ok_or("snapshot without a version")?;
        let mut steps = BTreeMap::new();
        let entries = value.get("steps").and_then(Value::as_object).ok_or("snapshot without steps")?;
        for (key, record) in entries {
            let status = record
                .get("status")
                .and_then(Value::as_str)
                .and_then(StepStatus::parse)
                .ok_or_else(|| format!("step `{key}` has no valid status"))?;
            let field = |name: &str| record.get(name).cloned();
            steps.insert(
                key.clone(),
                StepRecord {
                    status,
                    input: field("input").unwrap_or(Value::Null),
                    output: field("output"),
                    error: record.get("error").and_then(Value::as_str).map(str::to_owned),
                    suspend_payload: field("suspendPayload"),
                    resume_data: field("resumeData"),
                    attempts: record
                        .get("attempts")
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    started_ns: record.get("startedNs").and_then(Value::as_i64).unwrap_or(0),
                    ended_ns: record.get("endedNs").and_then(Value::as_i64).unwrap_or(0),
                },
            );
        }
        Ok(Self { steps, version })
    }
}
