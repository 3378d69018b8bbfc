//! Glassbox's core: messages, tools, agents and the agent loop, and the interface every model
//! provider implements.
//!
//! This crate knows nothing of HTTP servers, SQL or HTML; the server, the store and the
//! providers depend on it, never the other way round.

pub mod agent;
pub mod budget;
pub mod model;
pub mod pii;
pub mod pipeline;
pub mod tool;
pub mod workflow;

pub use agent::{Agent, AgentBuilder, Capture, AgentChunk, AgentError, AgentOutput, AgentStream, GenerateOptions};
pub use budget::{Budget, CostModel};
pub use pipeline::{AsyncProcessor, OnBlock, PipelineStep, Processor, Stage, Strategy, Tripwire, Verdict};
pub use model::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, ModelStream,
    OutputSchema, ProviderError, TimeoutPhase, ToolCall, ToolSpec, Usage,
};
pub use tool::{FnTool, Tool, ToolError, ToolResult};
pub use workflow::{RetryPolicy, RunStatus, Step, StepContext, StepError, Workflow};

/// An error and its causes on one line, `outer: inner: innermost`: for span status
/// descriptions and log fields, where the cause chain must survive as text.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
