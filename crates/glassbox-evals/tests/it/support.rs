//! Shared helpers: score inputs, and a `Targets` over hand-built agents.

use std::sync::Arc;

use glassbox_core::{Agent, FnTool, LanguageModel};
use glassbox_evals::{Layer, ScoreInput, Targets};
use serde_json::{Value, json};

pub fn input(output: &str) -> ScoreInput {
    ScoreInput { input: String::from("question"), output: output.to_owned(), metadata: Value::Null, ..ScoreInput::default() }
}

/// Agents built from the mock provider, a weather tool that counts its calls, and judges.
pub struct MockTargets {
    pub instructions: String,
    pub tool_calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl MockTargets {
    pub fn new(instructions: &str) -> Self {
        Self { instructions: instructions.to_owned(), tool_calls: Arc::default() }
    }
}

impl Targets for MockTargets {
    fn agent(&self, id: &str, layer: &Layer) -> Result<Agent, String> {
        let model_name = match id {
            "echo" => "mock-echo",
            "tools" => "mock-tool",
            "json" => "mock-json",
            other => return Err(format!("unknown agent {other:?}")),
        };
        let model: Arc<dyn LanguageModel> =
            Arc::new(glassbox_providers::MockModel::new(model_name).map_err(|error| error.to_string())?);
        let counter = Arc::clone(&self.tool_calls);
        let weather = FnTool::new(
            "get_weather",
            "Weather at coordinates",
            json!({ "type": "object", "properties": { "latitude": { "type": "number" }, "longitude": { "type": "number" } }, "required": ["latitude", "longitude"] }),
            move |_args| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(json!({ "temperature": 21 }))
                }
            },
        );
        let mut builder = Agent::builder(id, layer.model(model)).instructions(self.instructions.clone()).shared_tool(layer.tool(Arc::new(weather)));
        if id == "json" {
            builder = builder.output_schema(json!({ "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] }));
        }
        builder.build().map_err(|error| error.to_string())
    }

    fn model(&self, id: &str, layer: &Layer) -> Result<Arc<dyn LanguageModel>, String> {
        let model: Arc<dyn LanguageModel> = Arc::new(glassbox_providers::MockModel::new(id).map_err(|error| error.to_string())?);
        Ok(layer.model(model))
    }
}
