//! Tools an agent may call: a [`ToolSpec`] the model sees and an async body that runs it.
//!
//! Arguments are validated against the tool's JSON schema before the body runs; a tool that
//! fails does not fail the run: its error goes back to the model as the tool's result, so the
//! model can correct itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::model::ToolSpec;

/// Why a tool call failed. The message is shown to the model.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments for tool `{tool}`: {message}")]
    InvalidArguments { tool: String, message: String },
    #[error("tool `{tool}` failed: {message}")]
    Failed {
        tool: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    #[error("tool `{tool}` timed out")]
    Timeout { tool: String },
    #[error("the model called `{tool}`, which this agent does not have")]
    Unknown { tool: String },
}

impl ToolError {
    pub fn failed(tool: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed { tool: tool.into(), message: message.into(), source: None }
    }
}

/// The outcome of one tool call, as returned to clients and fed back to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    pub name: String,
    pub arguments: Value,
    /// The tool's JSON output, or `{"error": "<message>"}` when it failed.
    pub result: Value,
    pub is_error: bool,
}

/// A tool with a JSON-schema described interface.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    /// Runs the tool. `arguments` have already been validated against `spec().parameters`.
    async fn call(&self, arguments: Value) -> Result<Value, ToolError>;
}

type BoxedToolFn =
    dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>> + Send + Sync;

/// A tool defined by a Rust closure.
///
/// ```
/// use glassbox_core::FnTool;
/// use serde_json::json;
/// let weather = FnTool::new(
///     "get_weather",
///     "Current weather for a city",
///     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
///     |args| async move { Ok(json!({"city": args["city"], "celsius": 21})) },
/// );
/// # let _ = weather;
/// ```
pub struct FnTool {
    spec: ToolSpec,
    body: Arc<BoxedToolFn>,
}

impl FnTool {
    pub fn new<F, Fut>(name: impl Into<String>, description: impl Into<String>, parameters: Value, body: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        let spec = ToolSpec { name: name.into(), description: description.into(), parameters };
        Self { spec, body: Arc::new(move |arguments| Box::pin(body(arguments))) }
    }
}

#[async_trait]
impl Tool for FnTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        (self.body)(arguments).await
    }
}
