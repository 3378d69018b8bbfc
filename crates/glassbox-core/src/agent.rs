//! Agents and the agent loop.
//!
//! One run: the agent's instructions plus the caller's messages go to the model; tool calls in
//! the answer run concurrently and their results go back to the model; this repeats until the
//! model answers without tool calls or the step limit is reached. With an output schema the
//! final text must parse as JSON matching it; one repair attempt is made before giving up.
//!
//! The loop is written once, as a stream of [`AgentChunk`]s. [`Agent::generate`] drives the
//! same stream with non-streamed model calls and keeps only the final chunk. Dropping the
//! stream (or the `generate` future) drops the in-flight model request and any running tools,
//! which is how a client disconnect cancels a run.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt, future::join_all};
use serde_json::Value;
use tracing::Instrument;

use crate::budget::{Budget, CostModel};
use crate::model::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, OutputSchema,
    ProviderError, ToolCall, ToolSpec, Usage,
};
use crate::pipeline::{self, OnBlock, PipelineStep, Stage, TokenCounter, Tripwire};
use crate::tool::{Tool, ToolError, ToolResult};

/// The default step limit when neither the agent nor the request sets one.
pub const DEFAULT_MAX_STEPS: u32 = 5;
/// Requests may raise the step limit up to this, never further.
pub const MAX_STEPS_LIMIT: u32 = 50;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("model call failed")]
    Provider(#[from] ProviderError),
    #[error("the model's answer did not match the output schema after one repair attempt: {message}")]
    StructuredOutput { message: String, text: String },
    #[error("invalid output schema: {message}")]
    InvalidOutputSchema { message: String },
    #[error("invalid tool `{tool}`: {message}")]
    InvalidTool { tool: String, message: String },
    #[error("no messages to send: the conversation must contain at least one message")]
    EmptyConversation,
    /// A processor, guardrail or budget blocked the run and the agent answers blocks with an
    /// error ([`OnBlock::Error`]).
    #[error("blocked by {}: {}", .0.processor_id, .0.reason)]
    Blocked(Tripwire),
    #[error("invalid budget: {message}")]
    InvalidBudget { message: String },
}

impl AgentError {
    /// A stable machine-readable name, used as `error.type` and the API's `code`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Provider(error) => error.kind(),
            Self::StructuredOutput { .. } => "structured_output_invalid",
            Self::InvalidOutputSchema { .. } => "invalid_output_schema",
            Self::InvalidTool { .. } => "invalid_tool",
            Self::EmptyConversation => "empty_conversation",
            Self::Blocked(_) => "blocked",
            Self::InvalidBudget { .. } => "invalid_budget",
        }
    }
}

/// The result of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    pub text: String,
    /// The parsed final answer when an output schema was in force.
    pub object: Option<Value>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_results: Vec<ToolResult>,
    /// Summed over every model call of the run.
    pub usage: Usage,
    pub finish_reason: FinishReason,
    /// Model calls made, including a structured-output repair.
    pub model_calls: u32,
    /// Set when a processor, guardrail or budget blocked the run (`finish_reason` is then
    /// [`FinishReason::Tripwire`] and `text` is empty).
    pub tripwire: Option<Tripwire>,
}

/// One piece of a streamed run, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentChunk {
    TextDelta(String),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    /// One model call finished; `usage` is that call's.
    StepFinish { step: u32, usage: Usage, finish_reason: FinishReason },
    /// A processor, guardrail or budget blocked the run: no text and no model call follow;
    /// only the [`AgentChunk::Finish`] carrying the same tripwire.
    Tripwire(Tripwire),
    /// The run finished; always the last chunk of a successful run.
    Finish(AgentOutput),
}

pub type AgentStream = Pin<Box<dyn Stream<Item = Result<AgentChunk, AgentError>> + Send>>;

/// What of prompts, completions and tool arguments an agent's spans record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Capture {
    /// Everything, verbatim.
    #[default]
    Full,
    /// Everything, with personal data and secrets replaced by placeholders ([`crate::pii`]).
    Redacted,
    /// Nothing but sizes, names and usage.
    None,
}

impl Capture {
    fn text<'a>(self, text: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        match self {
            Self::Full => Some(std::borrow::Cow::Borrowed(text)),
            Self::Redacted => Some(crate::pii::redact(text)),
            Self::None => None,
        }
    }
}

/// Per-call overrides of the agent's settings.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Capped at [`MAX_STEPS_LIMIT`].
    pub max_steps: Option<u32>,
    /// A JSON schema for this call's answer, replacing the agent's own.
    pub output_schema: Option<Value>,
    /// The caller's conversation (thread) id, recorded as `gen_ai.conversation.id`.
    pub conversation_id: Option<String>,
    /// Who pays for the run, recorded as `glassbox.tenant` on the run's and every model call's
    /// span, so each usage row carries it.
    pub tenant: Option<String>,
    /// The id (never the key) of the API key that asked, recorded as `glassbox.api_key_id`.
    pub api_key_id: Option<String>,
}

/// The caller labels of one run that every model call's span carries.
#[derive(Debug, Clone, Default)]
struct RunLabels {
    tenant: Option<String>,
    api_key_id: Option<String>,
}

struct RegisteredTool {
    tool: Arc<dyn Tool>,
    validator: jsonschema::Validator,
}

struct CompiledSchema {
    schema: OutputSchema,
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    fn compile(name: &str, schema: Value) -> Result<Self, AgentError> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|error| AgentError::InvalidOutputSchema { message: error.to_string() })?;
        Ok(Self { schema: OutputSchema { name: name.to_owned(), schema }, validator })
    }
}

struct AgentInner {
    id: String,
    name: String,
    description: String,
    instructions: String,
    model: Arc<dyn LanguageModel>,
    tools: Vec<RegisteredTool>,
    tool_specs: Arc<[ToolSpec]>,
    max_steps: u32,
    temperature: Option<f32>,
    max_output_tokens: Option<u32>,
    output_schema: Option<Arc<CompiledSchema>>,
    capture: Capture,
    input_steps: Vec<PipelineStep>,
    output_steps: Vec<PipelineStep>,
    on_block: OnBlock,
    budget: Budget,
    cost_model: Option<Arc<dyn CostModel>>,
    token_counter: TokenCounter,
}

/// An agent: instructions, a model and tools. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<AgentInner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.inner.id)
            .field("model", &self.inner.model.model_name())
            .field("tools", &self.inner.tool_specs.iter().map(|spec| &spec.name).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Agent`]; see [`Agent::builder`].
pub struct AgentBuilder {
    id: String,
    name: Option<String>,
    description: String,
    instructions: String,
    model: Arc<dyn LanguageModel>,
    tools: Vec<Arc<dyn Tool>>,
    max_steps: u32,
    temperature: Option<f32>,
    max_output_tokens: Option<u32>,
    output_schema: Option<Value>,
    capture: Capture,
    input_steps: Vec<PipelineStep>,
    output_steps: Vec<PipelineStep>,
    on_block: OnBlock,
    budget: Budget,
    cost_model: Option<Arc<dyn CostModel>>,
}

impl AgentBuilder {
    /// Appends an input processor or guardrail: it sees every caller message, in order, before
    /// the first model call.
    pub fn input_step(mut self, step: impl Into<PipelineStep>) -> Self {
        self.input_steps.push(step.into());
        self
    }
    /// Appends an output processor or guardrail: it sees every model answer before the answer
    /// reaches the caller or the trace. With output steps, a stream delivers each step's text
    /// once it has been checked rather than token by token.
    pub fn output_step(mut self, step: impl Into<PipelineStep>) -> Self {
        self.output_steps.push(step.into());
        self
    }
    /// Whether a block finishes the run with a tripwire (default) or fails it.
    pub fn on_block(mut self, on_block: OnBlock) -> Self {
        self.on_block = on_block;
        self
    }
    /// Token and cost limits for each run. A cost limit needs [`AgentBuilder::cost_model`].
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }
    /// Prices this agent's model calls for the cost budget.
    pub fn cost_model(mut self, cost_model: Arc<dyn CostModel>) -> Self {
        self.cost_model = Some(cost_model);
        self
    }
    /// What this agent's spans record of prompts and completions (default: everything).
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = capture;
        self
    }
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = instructions.into();
        self
    }
    pub fn tool(mut self, tool: impl Tool + 'static) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }
    pub fn shared_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }
    pub fn max_steps(mut self, max_steps: u32) -> Self {
        self.max_steps = max_steps.clamp(1, MAX_STEPS_LIMIT);
        self
    }
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }
    pub fn max_output_tokens(mut self, max_output_tokens: u32) -> Self {
        self.max_output_tokens = Some(max_output_tokens);
        self
    }
    /// Every answer of this agent must be JSON matching `schema`.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Compiles the tools' argument schemas and the output schema.
    pub fn build(self) -> Result<Agent, AgentError> {
        let mut tools = Vec::with_capacity(self.tools.len());
        for tool in self.tools {
            let spec = tool.spec();
            if tools.iter().any(|registered: &RegisteredTool| registered.tool.spec().name == spec.name) {
                return Err(AgentError::InvalidTool { tool: spec.name.clone(), message: "declared twice".into() });
            }
            let validator = jsonschema::validator_for(&spec.parameters).map_err(|error| {
                AgentError::InvalidTool { tool: spec.name.clone(), message: error.to_string() }
            })?;
            tools.push(RegisteredTool { tool, validator });
        }
        let tool_specs = tools.iter().map(|registered| registered.tool.spec().clone()).collect();
        let output_schema = match self.output_schema {
            Some(schema) => Some(Arc::new(CompiledSchema::compile(&schema_name(&self.id), schema)?)),
            None => None,
        };
        if self.budget.max_cost_usd.is_some() && self.cost_model.is_none() {
            return Err(AgentError::InvalidBudget { message: "a cost limit needs a cost model to price calls".into() });
        }
        let token_counter = TokenCounter::for_model(self.model.model_name());
        if self.budget.max_input_tokens.is_some() {
            token_counter.warm();
        }
        Ok(Agent {
            inner: Arc::new(AgentInner {
                name: self.name.unwrap_or_else(|| self.id.clone()),
                id: self.id,
                description: self.description,
                instructions: self.instructions,
                model: self.model,
                tools,
                tool_specs,
                max_steps: self.max_steps,
                temperature: self.temperature,
                max_output_tokens: self.max_output_tokens,
                output_schema,
                capture: self.capture,
                input_steps: self.input_steps,
                output_steps: self.output_steps,
                on_block: self.on_block,
                budget: self.budget,
                cost_model: self.cost_model,
                token_counter,
            }),
        })
    }
}

/// OpenAI requires schema names to match `^[a-zA-Z0-9_-]+$`.
fn schema_name(agent_id: &str) -> String {
    let cleaned: String =
        agent_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{cleaned}_output")
}

impl Agent {
    pub fn builder(id: impl Into<String>, model: Arc<dyn LanguageModel>) -> AgentBuilder {
        AgentBuilder {
            id: id.into(),
            name: None,
            description: String::new(),
            instructions: String::new(),
            model,
            tools: Vec::new(),
            max_steps: DEFAULT_MAX_STEPS,
            temperature: None,
            max_output_tokens: None,
            output_schema: None,
            capture: Capture::default(),
            input_steps: Vec::new(),
            output_steps: Vec::new(),
            on_block: OnBlock::default(),
            budget: Budget::default(),
            cost_model: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    pub fn description(&self) -> &str {
        &self.inner.description
    }
    pub fn instructions(&self) -> &str {
        &self.inner.instructions
    }
    pub fn model(&self) -> &Arc<dyn LanguageModel> {
        &self.inner.model
    }
    pub fn tools(&self) -> &[ToolSpec] {
        &self.inner.tool_specs
    }
    pub fn max_steps(&self) -> u32 {
        self.inner.max_steps
    }
    pub fn output_schema(&self) -> Option<&Value> {
        self.inner.output_schema.as_ref().map(|compiled| &compiled.schema.schema)
    }
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.inner.max_output_tokens
    }

    /// Runs the agent to completion with non-streamed model calls.
    pub async fn generate(&self, messages: Vec<Message>, options: GenerateOptions) -> Result<AgentOutput, AgentError> {
        let mut chunks = self.run(messages, options, false);
        while let Some(chunk) = chunks.next().await {
            if let AgentChunk::Finish(output) = chunk? {
                return Ok(output);
            }
        }
        // The loop always ends with Finish or an error; reaching here means it was cut short.
        Err(AgentError::Provider(ProviderError::StreamInterrupted { source: None }))
    }

    /// Runs the agent with streamed model calls, yielding text as it arrives.
    pub fn stream(&self, messages: Vec<Message>, options: GenerateOptions) -> AgentStream {
        self.run(messages, options, true)
    }

    fn run(&self, messages: Vec<Message>, options: GenerateOptions, streaming: bool) -> AgentStream {
        let agent = Arc::clone(&self.inner);
        let span = tracing::info_span!(
            "invoke_agent",
            otel.name = ["invoke_agent ", agent.id.as_str()].concat().as_str(),
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = agent.id.as_str(),
            gen_ai.provider.name = agent.model.provider(),
            gen_ai.request.model = agent.model.model_name(),
            gen_ai.conversation.id = options.conversation_id.as_deref(),
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            glassbox.streaming = streaming,
            glassbox.tenant = options.tenant.as_deref(),
            glassbox.api_key_id = options.api_key_id.as_deref(),
            glassbox.tripwire.processor = tracing::field::Empty,
            glassbox.tripwire.reason = tracing::field::Empty,
        );
        Box::pin(InSpan { span, inner: Box::pin(run_loop(agent, messages, options, streaming)) })
    }
}

/// Polls a stream inside a span, so everything the run logs belongs to `invoke_agent`.
struct InSpan {
    span: tracing::Span,
    inner: AgentStream,
}

impl Stream for InSpan {
    type Item = Result<AgentChunk, AgentError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(AgentChunk::Finish(output)))) => {
                tracing::record_all!(
                    this.span,
                    gen_ai.usage.input_tokens = otel_int(output.usage.input_tokens),
                    gen_ai.usage.output_tokens = otel_int(output.usage.output_tokens),
                    gen_ai.response.finish_reasons = output.finish_reason.as_str(),
                );
            }
            std::task::Poll::Ready(Some(Ok(AgentChunk::Tripwire(tripwire))))
            | std::task::Poll::Ready(Some(Err(AgentError::Blocked(tripwire)))) => {
                tracing::record_all!(
                    this.span,
                    glassbox.tripwire.processor = tripwire.processor_id.as_str(),
                    glassbox.tripwire.reason = tripwire.reason.as_str(),
                );
                if let std::task::Poll::Ready(Some(Err(error))) = &polled {
                    record_error(&this.span, error.kind(), error);
                }
            }
            std::task::Poll::Ready(Some(Err(error))) => record_error(&this.span, error.kind(), error),
            _ => {}
        }
        polled
    }
}

/// The text a processor sees and may change in a caller's message.
fn message_text_mut(message: &mut Message) -> &mut String {
    match message {
        Message::System { text } | Message::User { text } | Message::Assistant { text, .. } => text,
        Message::Tool { content, .. } => content,
    }
}

/// The `glassbox.budget` span event of one budget decision.
fn record_budget(limit: &str, decision: &str, reason: Option<&str>) {
    // Named like `record_decision`'s event (see there).
    tracing::event!(
        name: "glassbox.budget",
        tracing::Level::INFO,
        glassbox.processor = limit,
        glassbox.processor.stage = "budget",
        glassbox.guardrail.decision = decision,
        glassbox.processor.reason = reason,
    );
}

fn blocked_output(
    tripwire: Tripwire,
    tool_calls: Vec<ToolCall>,
    tool_results: Vec<ToolResult>,
    usage: Usage,
    model_calls: u32,
) -> AgentOutput {
    AgentOutput {
        text: String::new(),
        object: None,
        tool_calls,
        tool_results,
        usage,
        finish_reason: FinishReason::Tripwire,
        model_calls,
        tripwire: Some(tripwire),
    }
}

fn run_loop(
    agent: Arc<AgentInner>,
    input: Vec<Message>,
    options: GenerateOptions,
    streaming: bool,
) -> impl Stream<Item = Result<AgentChunk, AgentError>> + Send {
    async_stream::try_stream! {
        if input.is_empty() {
            Err(AgentError::EmptyConversation)?;
        }
        let labels = RunLabels { tenant: options.tenant, api_key_id: options.api_key_id };
        let mut input = input;
        if !agent.input_steps.is_empty() {
            let mut texts: Vec<&mut String> = input.iter_mut().map(message_text_mut).collect();
            if let Some(tripwire) = pipeline::run_steps(&agent.input_steps, &mut texts, Stage::Input).await {
                if agent.on_block == OnBlock::Error {
                    Err(AgentError::Blocked(tripwire))?;
                    return;
                }
                yield AgentChunk::Tripwire(tripwire.clone());
                yield AgentChunk::Finish(blocked_output(tripwire, Vec::new(), Vec::new(), Usage::default(), 0));
                return;
            }
        }
        let output_schema = match options.output_schema {
            Some(schema) => Some(Arc::new(CompiledSchema::compile(&schema_name(&agent.id), schema)?)),
            None => agent.output_schema.clone(),
        };
        let max_steps = options.max_steps.map_or(agent.max_steps, |steps| steps.clamp(1, MAX_STEPS_LIMIT));

        let mut messages = Vec::with_capacity(input.len() + 1 + 2 * max_steps as usize);
        if !agent.instructions.is_empty() {
            messages.push(Message::system(agent.instructions.clone()));
        }
        messages.extend(input);
        let mut request = ModelRequest {
            messages,
            tools: Arc::clone(&agent.tool_specs),
            temperature: agent.temperature,
            max_output_tokens: agent.max_output_tokens,
            output_schema: output_schema.as_ref().map(|compiled| compiled.schema.clone()),
        };

        if let Some(limit) = agent.budget.max_input_tokens {
            match crate::budget::input_tokens_over(agent.token_counter, &request.messages, &request.tools, limit) {
                Some(count) => {
                    let tripwire = Tripwire {
                        reason: format!("the input is {count} tokens, over the budget of {limit}"),
                        processor_id: "budget.max_input_tokens".to_owned(),
                    };
                    record_budget("budget.max_input_tokens", "block", Some(&tripwire.reason));
                    if agent.on_block == OnBlock::Error {
                        Err(AgentError::Blocked(tripwire))?;
                        return;
                    }
                    yield AgentChunk::Tripwire(tripwire.clone());
                    yield AgentChunk::Finish(blocked_output(tripwire, Vec::new(), Vec::new(), Usage::default(), 0));
                    return;
                }
                None => record_budget("budget.max_input_tokens", "pass", None),
            }
        }

        let buffer_text = !agent.output_steps.is_empty();
        let mut usage = Usage::default();
        let mut cost_usd = 0.0_f64;
        let mut said = String::new();
        let mut tool_calls = Vec::new();
        let mut tool_results = Vec::new();
        let mut model_calls = 0_u32;
        let mut step = 0_u32;
        let (mut text, mut finish_reason) = loop {
            step += 1;
            model_calls += 1;
            let chat = chat_span(&agent, &request, &labels);
            let started = std::time::Instant::now();
            let mut response = if streaming {
                let mut events = match agent.model.stream(&request).instrument(chat.clone()).await {
                    Ok(events) => events,
                    Err(error) => Err(chat_failed(&chat, error))?,
                };
                let mut finished = None;
                let mut first_token = true;
                while let Some(event) = events.next().await {
                    let event = match event {
                        Ok(event) => event,
                        Err(error) => Err(chat_failed(&chat, error))?,
                    };
                    if first_token && !matches!(event, ModelEvent::Finish(_)) {
                        first_token = false;
                        chat.record("glassbox.time_to_first_token_ms", started.elapsed().as_secs_f64() * 1000.0);
                    }
                    match event {
                        // With output steps, text is held back until the step's answer is checked.
                        ModelEvent::TextDelta(delta) if !buffer_text => yield AgentChunk::TextDelta(delta),
                        ModelEvent::TextDelta(_) | ModelEvent::ToolCallDelta { .. } => {}
                        ModelEvent::Finish(response) => finished = Some(response),
                    }
                }
                match finished {
                    Some(response) => response,
                    None => Err(chat_failed(&chat, ProviderError::StreamInterrupted { source: None }))?,
                }
            } else {
                match agent.model.generate(&request).instrument(chat.clone()).await {
                    Ok(response) => response,
                    Err(error) => Err(chat_failed(&chat, error))?,
                }
            };
            usage += response.usage;
            if let Some(cost_model) = &agent.cost_model {
                cost_usd += cost_model.cost_usd(agent.model.provider(), &response.model, &response.usage).unwrap_or(0.0);
            }
            if buffer_text && !response.text.is_empty() {
                let stage = Stage::Output { final_answer: response.tool_calls.is_empty() };
                let blocked = pipeline::run_steps(&agent.output_steps, &mut [&mut response.text], stage).await;
                if let Some(tripwire) = blocked {
                    // The blocked answer reaches neither the caller nor the trace.
                    response.text = format!("[blocked by {}]", tripwire.processor_id);
                    response.tool_calls.clear();
                    record_response(&chat, agent.capture, &response);
                    drop(chat);
                    if agent.on_block == OnBlock::Error {
                        Err(AgentError::Blocked(tripwire))?;
                        return;
                    }
                    yield AgentChunk::StepFinish { step, usage: response.usage, finish_reason: FinishReason::Tripwire };
                    yield AgentChunk::Tripwire(tripwire.clone());
                    yield AgentChunk::Finish(blocked_output(tripwire, tool_calls, tool_results, usage, model_calls));
                    return;
                }
                if streaming {
                    yield AgentChunk::TextDelta(response.text.clone());
                }
            }
            record_response(&chat, agent.capture, &response);
            drop(chat);
            let ModelResponse { text, tool_calls: step_calls, usage: step_usage, finish_reason, .. } = response;
            yield AgentChunk::StepFinish { step, usage: step_usage, finish_reason: finish_reason.clone() };
            if !text.is_empty() {
                if !said.is_empty() {
                    said.push('\n');
                }
                said.push_str(&text);
            }

            if step_calls.is_empty() {
                break (text, finish_reason);
            }
            // The next call would spend more: stop before running the tools it would answer.
            if !agent.budget.is_unlimited() {
                if let Some(reason) = crate::budget::spent(&agent.budget, &usage, cost_usd) {
                    record_budget("budget.run", "exceeded", Some(&reason));
                    break (std::mem::take(&mut said), FinishReason::BudgetExceeded);
                }
                record_budget("budget.run", "pass", None);
            }
            for call in &step_calls {
                yield AgentChunk::ToolCall(call.clone());
            }
            let results = join_all(step_calls.iter().map(|call| run_tool(&agent, call))).await;
            request.messages.push(Message::Assistant { text: text.clone(), tool_calls: step_calls.clone() });
            for result in results {
                request.messages.push(Message::Tool {
                    call_id: result.call_id.clone(),
                    name: result.name.clone(),
                    content: result.result.to_string(),
                    is_error: result.is_error,
                });
                yield AgentChunk::ToolResult(result.clone());
                tool_results.push(result);
            }
            tool_calls.extend(step_calls);
            if step >= max_steps {
                break (text, FinishReason::MaxSteps);
            }
        };

        let mut object = None;
        if let Some(compiled) = &output_schema
            && finish_reason != FinishReason::BudgetExceeded
        {
            match check_structured(&compiled.validator, &text) {
                Ok(value) => object = Some(value),
                Err(problem) => {
                    let spent = if agent.budget.is_unlimited() { None } else { crate::budget::spent(&agent.budget, &usage, cost_usd) };
                    if let Some(reason) = spent {
                        record_budget("budget.run", "exceeded", Some(&reason));
                        finish_reason = FinishReason::BudgetExceeded;
                    } else {
                        tracing::debug!(%problem, "structured output invalid; asking the model to repair it");
                        request.messages.push(Message::assistant(text.clone()));
                        request.messages.push(Message::user(format!(
                            "Your previous answer was not valid: {problem}. Reply again with only a JSON value \
                             that matches this JSON schema, and nothing else:\n{}",
                            compiled.schema.schema
                        )));
                        model_calls += 1;
                        let chat = chat_span(&agent, &request, &labels);
                        let mut repaired = match agent.model.generate(&request).instrument(chat.clone()).await {
                            Ok(response) => response,
                            Err(error) => Err(chat_failed(&chat, error))?,
                        };
                        usage += repaired.usage;
                        step += 1;
                        if buffer_text && !repaired.text.is_empty() {
                            let stage = Stage::Output { final_answer: true };
                            if let Some(tripwire) = pipeline::run_steps(&agent.output_steps, &mut [&mut repaired.text], stage).await {
                                repaired.text = format!("[blocked by {}]", tripwire.processor_id);
                                record_response(&chat, agent.capture, &repaired);
                                drop(chat);
                                if agent.on_block == OnBlock::Error {
                                    Err(AgentError::Blocked(tripwire))?;
                                    return;
                                }
                                yield AgentChunk::Tripwire(tripwire.clone());
                                yield AgentChunk::Finish(blocked_output(tripwire, tool_calls, tool_results, usage, model_calls));
                                return;
                            }
                        }
                        record_response(&chat, agent.capture, &repaired);
                        drop(chat);
                        yield AgentChunk::StepFinish { step, usage: repaired.usage, finish_reason: repaired.finish_reason.clone() };
                        match check_structured(&compiled.validator, &repaired.text) {
                            Ok(value) => {
                                object = Some(value);
                                text = repaired.text;
                                finish_reason = repaired.finish_reason;
                            }
                            Err(message) => Err(AgentError::StructuredOutput { message, text: repaired.text })?,
                        }
                    }
                }
            }
        }

        yield AgentChunk::Finish(AgentOutput {
            text, object, tool_calls, tool_results, usage, finish_reason, model_calls, tripwire: None,
        });
    }
}

/// Parses `text` as JSON (tolerating a Markdown code fence around it) and validates it.
fn check_structured(validator: &jsonschema::Validator, text: &str) -> Result<Value, String> {
    let trimmed = strip_code_fence(text.trim());
    let value: Value = serde_json::from_str(trimmed).map_err(|error| format!("not JSON ({error})"))?;
    let problems: Vec<String> =
        validator.iter_errors(&value).take(5).map(|error| format!("{} at `{}`", error, error.instance_path())).collect();
    if problems.is_empty() { Ok(value) } else { Err(problems.join("; ")) }
}

pub fn strip_code_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else { return text };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

async fn run_tool(agent: &AgentInner, call: &ToolCall) -> ToolResult {
    let span = tracing::info_span!(
        "execute_tool",
        otel.name = ["execute_tool ", call.name.as_str()].concat().as_str(),
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.agent.name = agent.id.as_str(),
        gen_ai.tool.name = call.name.as_str(),
        gen_ai.tool.call.id = call.id.as_str(),
        gen_ai.tool.call.arguments = tracing::field::Empty,
        gen_ai.tool.call.result = tracing::field::Empty,
    );
    if let Some(arguments) = agent.capture.text(&call.arguments.to_string()) {
        span.record("gen_ai.tool.call.arguments", arguments.as_ref());
    }
    let outcome = async {
        let registered = agent
            .tools
            .iter()
            .find(|registered| registered.tool.spec().name == call.name)
            .ok_or_else(|| ToolError::Unknown { tool: call.name.clone() })?;
        let problems: Vec<String> = registered
            .validator
            .iter_errors(&call.arguments)
            .take(5)
            .map(|error| format!("{} at `{}`", error, error.instance_path()))
            .collect();
        if !problems.is_empty() {
            return Err(ToolError::InvalidArguments { tool: call.name.clone(), message: problems.join("; ") });
        }
        registered.tool.call(call.arguments.clone()).await
    }
    .instrument(span.clone())
    .await;
    let (result, is_error) = match outcome {
        Ok(value) => (value, false),
        Err(error) => {
            tracing::debug!(tool = %call.name, %error, "tool call failed; returning the error to the model");
            let kind = match &error {
                ToolError::InvalidArguments { .. } => "tool_invalid_arguments",
                ToolError::Failed { .. } => "tool_failed",
                ToolError::Timeout { .. } => "tool_timeout",
                ToolError::Unknown { .. } => "tool_unknown",
            };
            record_error(&span, kind, &error);
            (serde_json::json!({ "error": error.to_string() }), true)
        }
    };
    if let Some(text) = agent.capture.text(&result.to_string()) {
        span.record("gen_ai.tool.call.result", text.as_ref());
    }
    ToolResult { call_id: call.id.clone(), name: call.name.clone(), arguments: call.arguments.clone(), result, is_error }
}

/// The `chat {model}` span of one model call, child of the current `invoke_agent`.
fn chat_span(agent: &AgentInner, request: &ModelRequest, labels: &RunLabels) -> tracing::Span {
    let model = agent.model.model_name();
    let span = tracing::info_span!(
        "chat",
        otel.name = ["chat ", model].concat().as_str(),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = agent.model.provider(),
        gen_ai.request.model = model,
        gen_ai.agent.name = agent.id.as_str(),
        gen_ai.request.temperature = request.temperature.map(f64::from),
        gen_ai.request.max_tokens = request.max_output_tokens.map(i64::from),
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cache_read.input_tokens = tracing::field::Empty,
        glassbox.usage.reasoning_tokens = tracing::field::Empty,
        glassbox.time_to_first_token_ms = tracing::field::Empty,
        gen_ai.input.messages = tracing::field::Empty,
        gen_ai.output.messages = tracing::field::Empty,
        glassbox.tenant = labels.tenant.as_deref(),
        glassbox.api_key_id = labels.api_key_id.as_deref(),
    );
    if agent.capture != Capture::None && !span.is_disabled() {
        let messages: Vec<MessageJson<'_>> =
            request.messages.iter().map(|message| MessageJson::of(agent.capture, message)).collect();
        // serde_json's writer, not `Display` (which goes through `fmt::Write` per token).
        span.record("gen_ai.input.messages", serde_json::to_string(&messages).unwrap_or_default());
    }
    span
}

/// A message as the spans' `gen_ai.input.messages` and `gen_ai.output.messages` hold it,
/// serialized straight from the borrowed message (no `serde_json::Value` tree, no clone of the
/// answer). Each variant's fields are in the order a `serde_json::json!` object wrote them
/// (sorted), so the stored text is the same as before; a test pins it.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum MessageJson<'a> {
    Text {
        content: Cow<'a, str>,
        role: &'static str,
    },
    Assistant {
        content: Cow<'a, str>,
        role: &'static str,
        tool_calls: Vec<ToolCallJson<'a>>,
    },
    Tool {
        content: Cow<'a, str>,
        is_error: bool,
        name: &'a str,
        role: &'static str,
        tool_call_id: &'a str,
    },
}

#[derive(Debug, serde::Serialize)]
struct ToolCallJson<'a> {
    arguments: String,
    id: &'a str,
    name: &'a str,
}

impl<'a> MessageJson<'a> {
    fn of(capture: Capture, message: &'a Message) -> Self {
        let text = |content: &'a str| Self::captured(capture, content);
        match message {
            Message::System { text: content } => Self::Text { content: text(content), role: "system" },
            Message::User { text: content } => Self::Text { content: text(content), role: "user" },
            Message::Assistant { text: content, tool_calls } => Self::assistant(capture, content, tool_calls),
            Message::Tool { call_id, name, content, is_error } => Self::Tool {
                content: text(content),
                is_error: *is_error,
                name,
                role: "tool",
                tool_call_id: call_id,
            },
        }
    }

    fn assistant(capture: Capture, content: &'a str, tool_calls: &'a [ToolCall]) -> Self {
        let tool_calls = tool_calls
            .iter()
            .map(|call| ToolCallJson {
                arguments: Self::captured(capture, &call.arguments.to_string()).into_owned(),
                id: &call.id,
                name: &call.name,
            })
            .collect();
        Self::Assistant { content: Self::captured(capture, content), role: "assistant", tool_calls }
    }

    /// What `capture` keeps of `text`: empty where it keeps nothing.
    fn captured<'t>(capture: Capture, text: &'t str) -> Cow<'t, str> {
        capture.text(text).unwrap_or_default()
    }
}

/// One `record_all!`: each `record` call is a trip through every layer of the subscriber.
fn record_response(span: &tracing::Span, capture: Capture, response: &ModelResponse) {
    let output = (capture != Capture::None && !span.is_disabled()).then(|| {
        let output = MessageJson::assistant(capture, &response.text, &response.tool_calls);
        serde_json::to_string(&[output]).unwrap_or_default()
    });
    tracing::record_all!(
        span,
        gen_ai.response.model = response.model.as_str(),
        gen_ai.response.finish_reasons = response.finish_reason.as_str(),
        gen_ai.usage.input_tokens = otel_int(response.usage.input_tokens),
        gen_ai.usage.output_tokens = otel_int(response.usage.output_tokens),
        gen_ai.usage.cache_read.input_tokens = otel_int(response.usage.cached_input_tokens),
        glassbox.usage.reasoning_tokens = otel_int(response.usage.reasoning_tokens),
        gen_ai.output.messages = output.as_deref(),
    );
}

fn chat_failed(span: &tracing::Span, error: ProviderError) -> ProviderError {
    record_error(span, error.kind(), &error);
    error
}

/// Marks a span failed: OpenTelemetry status ERROR with the message, and `error.type`.
fn record_error(span: &tracing::Span, kind: &str, error: &dyn std::error::Error) {
    tracing::record_all!(
        span,
        otel.status_code = "ERROR",
        error.type = kind,
        otel.status_description = crate::error_chain(error).as_str(),
    );
}

/// OpenTelemetry has no unsigned integers: `tracing-opentelemetry` would turn a `u64` into a
/// string, so counts are recorded as `i64` to reach collectors as integers.
fn otel_int(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `serde_json::json!` objects the spans' message attributes were made of before
    /// `MessageJson`: the stored text must not change.
    fn reference(capture: Capture, message: &Message) -> Value {
        let text = |text: &str| capture.text(text).map(|t| t.into_owned()).unwrap_or_default();
        match message {
            Message::System { text: content } => serde_json::json!({ "role": "system", "content": text(content) }),
            Message::User { text: content } => serde_json::json!({ "role": "user", "content": text(content) }),
            Message::Assistant { text: content, tool_calls } => serde_json::json!({
                "role": "assistant",
                "content": text(content),
                "tool_calls": tool_calls.iter().map(|call| serde_json::json!({
                    "id": call.id, "name": call.name, "arguments": text(&call.arguments.to_string()),
                })).collect::<Vec<_>>(),
            }),
            Message::Tool { call_id, name, content, is_error } => serde_json::json!({
                "role": "tool", "tool_call_id": call_id, "name": name, "content": text(content), "is_error": is_error,
            }),
        }
    }

    #[test]
    fn message_json_writes_the_text_the_json_objects_wrote() {
        let messages = [
            Message::System { text: "You are \"terse\".\n".to_owned() },
            Message::User { text: "Mail ada@example.com, é ✓".to_owned() },
            Message::Assistant {
                text: "Calling ada@example.com".to_owned(),
                tool_calls: vec![
                    ToolCall {
                        id: "call_1".to_owned(),
                        name: "mail".to_owned(),
                        arguments: serde_json::json!({ "to": "ada@example.com", "n": 2 }),
                    },
                    ToolCall { id: "call_2".to_owned(), name: "noop".to_owned(), arguments: Value::Null },
                ],
            },
            Message::Assistant { text: String::new(), tool_calls: Vec::new() },
            Message::Tool {
                call_id: "call_1".to_owned(),
                name: "mail".to_owned(),
                content: "sent to ada@example.com".to_owned(),
                is_error: true,
            },
        ];
        for capture in [Capture::Full, Capture::Redacted, Capture::None] {
            let written: Vec<MessageJson<'_>> = messages.iter().map(|message| MessageJson::of(capture, message)).collect();
            let expected: Vec<Value> = messages.iter().map(|message| reference(capture, message)).collect();
            assert_eq!(
                serde_json::to_string(&written).unwrap(),
                serde_json::to_string(&expected).unwrap(),
                "{capture:?}"
            );
        }
        let redacted = serde_json::to_string(&[MessageJson::of(Capture::Redacted, &messages[2])]).unwrap();
        assert!(!redacted.contains("ada@example.com"), "{redacted}");
    }
}
