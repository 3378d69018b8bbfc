//! Record and replay of model calls (and tool calls), as [`LanguageModel`] and [`Tool`]
//! wrappers.
//!
//! A model call is keyed by the SHA-256 of its canonical request: the messages, tools,
//! temperature, output-token limit and output schema as JSON with sorted keys. The model's
//! name is deliberately not part of the key, so a suite recorded against one provider replays
//! wherever the config resolves that model differently (with or without an API key).
//!
//! [`RecordingModel`] calls the real model and keeps every answer; [`ReplayModel`] answers
//! only from recordings and fails the call, naming the request, when there is none. A miss
//! never falls through to the network. When the case has a recording for the same step, the
//! miss carries a line diff of the recorded request against the new one, so a changed prompt
//! shows up as exactly that change.
//!
//! Recordings live in a JSONL file next to the dataset, one entry per call, sorted by case
//! and step, so re-recording gives a reviewable diff.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use glassbox_core::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, ModelStream, ProviderError, Tool,
    ToolCall, ToolError, ToolSpec, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::diff::text_diff;

tokio::task_local! {
    /// The case whose run is being polled: recordings are filed under it, and replay misses
    /// diff against its recorded requests.
    static CASE: Arc<CaseContext>;
}

/// What the record/replay wrappers learn about one case while it runs.
#[derive(Debug)]
pub struct CaseContext {
    pub case_id: String,
    model_calls: AtomicU32,
    tool_calls: AtomicU32,
    /// Model latency in microseconds: measured live, the recorded one in replay.
    model_latency_us: AtomicU64,
    calls: Mutex<Vec<CallRecord>>,
}

/// One model call of a case: who answered and what it used, for cost.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub provider: String,
    pub model: String,
    pub usage: Usage,
}

impl CaseContext {
    pub fn new(case_id: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            case_id: case_id.into(),
            model_calls: AtomicU32::new(0),
            tool_calls: AtomicU32::new(0),
            model_latency_us: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// Runs `future` as this case: the wrappers it reaches file their calls here.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, future: F) -> F::Output {
        CASE.scope(Arc::clone(self), future).await
    }

    pub fn model_latency(&self) -> Duration {
        Duration::from_micros(self.model_latency_us.load(Ordering::Relaxed))
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.lock().map(|calls| calls.clone()).unwrap_or_default()
    }

    fn add_call(&self, provider: &str, model: &str, usage: Usage, latency: Duration) {
        self.model_latency_us.fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(CallRecord { provider: provider.to_owned(), model: model.to_owned(), usage });
        }
    }
}

fn current_case() -> Option<Arc<CaseContext>> {
    CASE.try_with(Arc::clone).ok()
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Model {
        key: String,
        case: String,
        step: u32,
        request: Value,
        response: RecordedResponse,
        latency_ms: f64,
    },
    Tool {
        key: String,
        case: String,
        step: u32,
        tool: String,
        arguments: Value,
        result: Value,
        is_error: bool,
    },
}

impl Entry {
    fn sort_key(&self) -> (&str, u8, u32) {
        match self {
            Self::Model { case, step, .. } => (case, 0, *step),
            Self::Tool { case, step, .. } => (case, 1, *step),
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Self::Model { key, .. } | Self::Tool { key, .. } => key,
        }
    }
}

/// A model answer as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub provider: String,
    pub model: String,
    pub text: String,
    #[serde(default)]
    pub tool_calls: Vec<RecordedToolCall>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    pub finish_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

impl RecordedResponse {
    fn from_response(provider: &str, response: &ModelResponse) -> Self {
        Self {
            provider: provider.to_owned(),
            model: response.model.clone(),
            text: response.text.clone(),
            tool_calls: response
                .tool_calls
                .iter()
                .map(|call| RecordedToolCall { id: call.id.clone(), name: call.name.clone(), arguments: call.arguments.clone() })
                .collect(),
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            cached_input_tokens: response.usage.cached_input_tokens,
            reasoning_tokens: response.usage.reasoning_tokens,
            finish_reason: response.finish_reason.as_str().to_owned(),
        }
    }

    fn to_response(&self) -> ModelResponse {
        let finish_reason = match self.finish_reason.as_str() {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool-calls" => FinishReason::ToolCalls,
            "content-filter" => FinishReason::ContentFilter,
            "max-steps" => FinishReason::MaxSteps,
            other => FinishReason::Other(other.to_owned()),
        };
        ModelResponse {
            model: self.model.clone(),
            text: self.text.clone(),
            tool_calls: self
                .tool_calls
                .iter()
                .map(|call| ToolCall { id: call.id.clone(), name: call.name.clone(), arguments: call.arguments.clone() })
                .collect(),
            usage: Usage {
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
                cached_input_tokens: self.cached_input_tokens,
                reasoning_tokens: self.reasoning_tokens,
            },
            finish_reason,
        }
    }
}

/// The request as canonical JSON. `serde_json`'s map keeps keys sorted, so the text (and its
/// hash) does not depend on construction order.
pub fn canonical_request(request: &ModelRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| match message {
            Message::System { text } => json!({ "role": "system", "content": text }),
            Message::User { text } => json!({ "role": "user", "content": text }),
            Message::Assistant { text, tool_calls } => json!({
                "role": "assistant",
                "content": text,
                "tool_calls": tool_calls.iter().map(|call| json!({ "id": call.id, "name": call.name, "arguments": call.arguments })).collect::<Vec<_>>(),
            }),
            Message::Tool { call_id, name, content, is_error } => {
                json!({ "role": "tool", "tool_call_id": call_id, "name": name, "content": content, "is_error": is_error })
            }
        })
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|ToolSpec { name, description, parameters }| json!({ "name": name, "description": description, "parameters": parameters }))
        .collect();
    json!({
        "messages": messages,
        "tools": tools,
        "temperature": request.temperature.map(f64::from),
        "max_output_tokens": request.max_output_tokens,
        "output_schema": request.output_schema.as_ref().map(|schema| json!({ "name": schema.name, "schema": schema.schema })),
    })
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The recording key of a model request.
pub fn request_key(canonical: &Value) -> String {
    sha256_hex(&canonical.to_string())
}

fn tool_key(tool: &str, arguments: &Value) -> String {
    sha256_hex(&json!({ "tool": tool, "arguments": arguments }).to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingsError {
    #[error("could not read recordings {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a recording entry")]
    Parse {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("could not write recordings {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Recorded calls, looked up by key (and by case for diffs on a miss).
#[derive(Debug, Default)]
pub struct Recordings {
    by_key: HashMap<String, Entry>,
    by_case: HashMap<String, Vec<Entry>>,
}

impl Recordings {
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut recordings = Self::default();
        for entry in entries {
            let case = entry.sort_key().0.to_owned();
            recordings.by_key.insert(entry.key().to_owned(), entry.clone());
            recordings.by_case.entry(case).or_default().push(entry);
        }
        recordings
    }

    /// Reads a recordings file; a missing file is an empty set (every call then misses, with
    /// a message saying to record).
    pub fn load(path: &Path) -> Result<Self, RecordingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(RecordingsError::Read { path: path.display().to_string(), source }),
        };
        Ok(Self::from_entries(parse_entries(&text, path)?))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn model_miss(&self, key: &str, canonical: &Value) -> ProviderError {
        let case = current_case();
        let (case_id, step) = match &case {
            Some(case) => (case.case_id.as_str(), case.model_calls.load(Ordering::Relaxed)),
            None => ("?", 0),
        };
        let last_user = canonical["messages"]
            .as_array()
            .and_then(|messages| messages.iter().rev().find(|message| message["role"] == "user"))
            .and_then(|message| message["content"].as_str())
            .unwrap_or("");
        let mut message = format!(
            "no recording for model request {} (case {case_id}, model call {step}, last user message {:?})",
            &key[..16.min(key.len())],
            crate::scorers::text::clip(last_user)
        );
        let recorded = self.by_case.get(case_id).and_then(|entries| {
            entries.iter().find_map(|entry| match entry {
                Entry::Model { step: recorded_step, request, .. } if *recorded_step == step => Some(request),
                _ => None,
            })
        });
        match recorded {
            Some(recorded) => {
                message.push_str("; it differs from the recorded request (- recorded, + now):\n");
                message.push_str(&text_diff(&pretty(recorded), &pretty(canonical)));
            }
            None => message.push_str("; nothing was recorded for this call"),
        }
        message.push_str("\nre-record with `glassbox eval record <suite>` if the change is intended");
        // A 404-like client error: the run stops, the case fails with this message.
        ProviderError::BadRequest { status: 404, message }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The entries of a recordings file's text, in file order; `path` names it in errors, which
/// give the line. Blank lines are skipped.
pub fn parse_entries(text: &str, path: &Path) -> Result<Vec<Entry>, RecordingsError> {
    let mut entries = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(line)
            .map_err(|source| RecordingsError::Parse { path: path.display().to_string(), line: idx + 1, source })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// The JSONL text of `entries`, one line each in the given order (what [`parse_entries`]
/// reads back).
pub fn entries_to_jsonl(entries: &[Entry]) -> Result<String, serde_json::Error> {
    let mut text = String::new();
    for entry in entries {
        text.push_str(&serde_json::to_string(entry)?);
        text.push('\n');
    }
    Ok(text)
}

/// Collects the entries of a recording run.
#[derive(Debug, Default)]
pub struct RecordingSink {
    entries: Mutex<Vec<Entry>>,
}

impl RecordingSink {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn push(&self, entry: Entry) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(entry);
        }
    }

    /// Writes every entry, sorted by case and step, replacing `path` atomically.
    pub fn write(&self, path: &Path) -> Result<usize, RecordingsError> {
        let mut entries = self.entries.lock().map(|entries| entries.clone()).unwrap_or_default();
        entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        entries.dedup_by(|a, b| a.key() == b.key() && a.sort_key() == b.sort_key());
        let write_error = |source| RecordingsError::Write { path: path.display().to_string(), source };
        let text = entries_to_jsonl(&entries).map_err(|error| write_error(std::io::Error::other(error)))?;
        let temp = path.with_extension("jsonl.tmp");
        std::fs::write(&temp, text).map_err(write_error)?;
        std::fs::rename(&temp, path).map_err(write_error)?;
        Ok(entries.len())
    }
}

/// Calls the wrapped model and records every answer into a [`RecordingSink`].
pub struct RecordingModel {
    inner: Arc<dyn LanguageModel>,
    sink: Arc<RecordingSink>,
}

impl RecordingModel {
    pub fn new(inner: Arc<dyn LanguageModel>, sink: Arc<RecordingSink>) -> Self {
        Self { inner, sink }
    }
}

/// Calls the wrapped model and measures it (live runs without recording).
pub struct MeasuredModel {
    inner: Arc<dyn LanguageModel>,
}

impl MeasuredModel {
    pub fn new(inner: Arc<dyn LanguageModel>) -> Self {
        Self { inner }
    }
}

/// Counts the model call within its case: steps number the calls of a case from 1.
fn next_step() -> (Option<Arc<CaseContext>>, u32) {
    let case = current_case();
    let step = case.as_ref().map_or(0, |case| case.model_calls.fetch_add(1, Ordering::Relaxed) + 1);
    (case, step)
}

async fn measured(inner: &dyn LanguageModel, request: &ModelRequest) -> Result<(ModelResponse, Duration, Option<Arc<CaseContext>>, u32), ProviderError> {
    let (case, step) = next_step();
    let started = Instant::now();
    let response = inner.generate(request).await?;
    let latency = started.elapsed();
    if let Some(case) = &case {
        case.add_call(inner.provider(), &response.model, response.usage, latency);
    }
    Ok((response, latency, case, step))
}

/// A streamed call answered by one `generate`: evals score whole answers, and replaying a
/// stream chunk by chunk would only add nondeterminism.
fn as_stream(response: ModelResponse) -> ModelStream {
    let mut events = Vec::with_capacity(2);
    if !response.text.is_empty() {
        events.push(Ok(ModelEvent::TextDelta(response.text.clone())));
    }
    events.push(Ok(ModelEvent::Finish(response)));
    Box::pin(futures::stream::iter(events))
}

#[async_trait]
impl LanguageModel for MeasuredModel {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }
    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        Ok(measured(self.inner.as_ref(), request).await?.0)
    }
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        Ok(as_stream(self.generate(request).await?))
    }
}

#[async_trait]
impl LanguageModel for RecordingModel {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }
    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        let (response, latency, case, step) = measured(self.inner.as_ref(), request).await?;
        let canonical = canonical_request(request);
        self.sink.push(Entry::Model {
            key: request_key(&canonical),
            case: case.map(|case| case.case_id.clone()).unwrap_or_default(),
            step,
            request: canonical,
            response: RecordedResponse::from_response(self.inner.provider(), &response),
            latency_ms: (latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        });
        Ok(response)
    }
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        Ok(as_stream(self.generate(request).await?))
    }
}

/// Answers from recordings only. Keeps the wrapped model's names for spans and reports.
pub struct ReplayModel {
    provider: String,
    model: String,
    recordings: Arc<Recordings>,
}

impl ReplayModel {
    pub fn new(inner: &dyn LanguageModel, recordings: Arc<Recordings>) -> Self {
        Self { provider: inner.provider().to_owned(), model: inner.model_name().to_owned(), recordings }
    }
}

#[async_trait]
impl LanguageModel for ReplayModel {
    fn provider(&self) -> &str {
        &self.provider
    }
    fn model_name(&self) -> &str {
        &self.model
    }
    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        let (case, _step) = next_step();
        let canonical = canonical_request(request);
        let key = request_key(&canonical);
        match self.recordings.by_key.get(&key) {
            Some(Entry::Model { response, latency_ms, .. }) => {
                let answer = response.to_response();
                if let Some(case) = &case {
                    let latency = Duration::from_secs_f64((latency_ms / 1000.0).max(0.0));
                    case.add_call(&response.provider, &response.model, answer.usage, latency);
                }
                Ok(answer)
            }
            // next_step already counted this call, so the miss names it.
            _ => Err(self.recordings.model_miss(&key, &canonical)),
        }
    }
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        Ok(as_stream(self.generate(request).await?))
    }
}

/// Wraps a tool: records its results, or answers them from recordings.
pub struct RecordedTool {
    inner: Arc<dyn Tool>,
    mode: ToolMode,
}

enum ToolMode {
    Record(Arc<RecordingSink>),
    Replay(Arc<Recordings>),
}

impl RecordedTool {
    pub fn recording(inner: Arc<dyn Tool>, sink: Arc<RecordingSink>) -> Self {
        Self { inner, mode: ToolMode::Record(sink) }
    }
    pub fn replaying(inner: Arc<dyn Tool>, recordings: Arc<Recordings>) -> Self {
        Self { inner, mode: ToolMode::Replay(recordings) }
    }
}

fn error_message(result: &Value) -> String {
    result.get("error").and_then(Value::as_str).map_or_else(|| result.to_string(), str::to_owned)
}

#[async_trait]
impl Tool for RecordedTool {
    fn spec(&self) -> &ToolSpec {
        self.inner.spec()
    }
    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        let name = self.inner.spec().name.clone();
        let key = tool_key(&name, &arguments);
        let case = current_case();
        let step = case.as_ref().map_or(0, |case| case.tool_calls.fetch_add(1, Ordering::Relaxed) + 1);
        match &self.mode {
            ToolMode::Record(sink) => {
                let outcome = self.inner.call(arguments.clone()).await;
                let (result, is_error) = match &outcome {
                    Ok(value) => (value.clone(), false),
                    Err(error) => (json!({ "error": crate::error_chain(error) }), true),
                };
                sink.push(Entry::Tool {
                    key,
                    case: case.map(|case| case.case_id.clone()).unwrap_or_default(),
                    step,
                    tool: name,
                    arguments,
                    result,
                    is_error,
                });
                outcome
            }
            ToolMode::Replay(recordings) => match recordings.by_key.get(&key) {
                Some(Entry::Tool { result, is_error: false, .. }) => Ok(result.clone()),
                Some(Entry::Tool { result, is_error: true, .. }) => Err(ToolError::failed(name, error_message(result))),
                _ => Err(ToolError::failed(
                    name.clone(),
                    format!(
                        "no recording for tool call {name}({arguments}) (case {}); re-record with `glassbox eval record <suite>`",
                        case.map(|case| case.case_id.clone()).unwrap_or_default()
                    ),
                )),
            },
        }
    }
}

/// A tool that answers a fixed result, never calling the real one: suites use it to pin
/// tools that reach the network.
pub struct StubTool {
    spec: ToolSpec,
    result: Value,
}

impl StubTool {
    pub fn new(spec: ToolSpec, result: Value) -> Self {
        Self { spec, result }
    }
}

#[async_trait]
impl Tool for StubTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn call(&self, _arguments: Value) -> Result<Value, ToolError> {
        Ok(self.result.clone())
    }
}
