//! Turns a validated `glassbox.toml` into live objects: model clients, HTTP tools, agents.
//!
//! This is where API keys are read from the environment. A model whose key variable is unset
//! answers through its `fallback` model instead (the example config falls back to the mock
//! provider), and the server says so at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use glassbox_config::{CapturePolicy, Config, HttpMethod as ConfigMethod, ModelConfig, ProviderKind};
use glassbox_core::{Agent, Capture, LanguageModel, ToolSpec};
use glassbox_providers::{
    AnthropicModel, DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_OPENAI_BASE_URL, HttpMethod, HttpModelSettings, HttpTool,
    MockModel, OpenAiModel,
};

use crate::AgentRegistry;

/// Something worth telling the operator at start-up that is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice(pub String);

/// Why the config could not be turned into a running server.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct BuildError {
    pub problems: Vec<String>,
}

/// Wraps every model and tool as it is built; evals record or replay calls through this.
pub trait Wrap {
    fn model(&self, model: Arc<dyn LanguageModel>) -> Arc<dyn LanguageModel>;
    fn tool(&self, tool: Arc<dyn glassbox_core::Tool>) -> Arc<dyn glassbox_core::Tool>;
}

struct NoWrap;

impl Wrap for NoWrap {
    fn model(&self, model: Arc<dyn LanguageModel>) -> Arc<dyn LanguageModel> {
        model
    }
    fn tool(&self, tool: Arc<dyn glassbox_core::Tool>) -> Arc<dyn glassbox_core::Tool> {
        tool
    }
}

/// Builds every agent of `config`. `env` looks up environment variables (API keys).
pub fn build(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(AgentRegistry, Vec<Notice>), BuildError> {
    build_wrapped(config, env, &NoWrap)
}

/// The model `id` of `config`, with the same key and fallback rules as `build`.
pub fn model(config: &Config, id: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn LanguageModel>, String> {
    let model_config = config.model(id).ok_or_else(|| format!("unknown model {id:?}"))?;
    resolve_model(config, model_config, env, &mut Vec::new())
}

/// [`build`], with every model and tool passed through `wrap`.
pub fn build_wrapped(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    wrap: &dyn Wrap,
) -> Result<(AgentRegistry, Vec<Notice>), BuildError> {
    let mut problems = Vec::new();
    let mut notices = Vec::new();

    let mut models: HashMap<&str, Arc<dyn LanguageModel>> = HashMap::new();
    for model_config in &config.models {
        match resolve_model(config, model_config, env, &mut notices) {
            Ok(model) => {
                models.insert(&model_config.id, wrap.model(model));
            }
            Err(problem) => problems.push(format!("models.{}: {problem}", model_config.id)),
        }
    }

    let mut tools: HashMap<&str, Arc<dyn glassbox_core::Tool>> = HashMap::new();
    for tool_config in &config.tools {
        let spec = ToolSpec {
            name: tool_config.id.clone(),
            description: tool_config.description.clone(),
            parameters: tool_config.parameters.clone(),
        };
        let method = match tool_config.method {
            ConfigMethod::Get => HttpMethod::Get,
            ConfigMethod::Post => HttpMethod::Post,
            ConfigMethod::Put => HttpMethod::Put,
            ConfigMethod::Patch => HttpMethod::Patch,
            ConfigMethod::Delete => HttpMethod::Delete,
        };
        match HttpTool::new(spec, tool_config.url.clone(), method, tool_config.timeout, tool_config.headers.clone()) {
            Ok(tool) => {
                tools.insert(&tool_config.id, wrap.tool(Arc::new(tool)));
            }
            Err(error) => problems.push(format!("tools.{}: {}", tool_config.id, crate::error::chain(&error))),
        }
    }

    let pricing = Arc::new(crate::telemetry::pricing_table(&config.pricing));
    let mut registry = AgentRegistry::default();
    for agent_config in &config.agents {
        // A missing model or tool was already reported above (or by config validation).
        let Some(model) = models.get(agent_config.model.as_str()) else { continue };
        let mut builder = Agent::builder(agent_config.id.clone(), Arc::clone(model))
            .name(agent_config.name.clone())
            .description(agent_config.description.clone())
            .instructions(agent_config.instructions.clone())
            .max_steps(agent_config.max_steps);
        for tool_id in &agent_config.tools {
            if let Some(tool) = tools.get(tool_id.as_str()) {
                builder = builder.shared_tool(Arc::clone(tool));
            }
        }
        if let Some(temperature) = agent_config.temperature {
            builder = builder.temperature(temperature);
        }
        if let Some(max_output_tokens) = agent_config.max_output_tokens {
            builder = builder.max_output_tokens(max_output_tokens);
        }
        if let Some(schema) = &agent_config.output_schema {
            builder = builder.output_schema(schema.clone());
        }
        builder = builder.capture(match agent_config.capture {
            CapturePolicy::Full => Capture::Full,
            CapturePolicy::Redacted => Capture::Redacted,
            CapturePolicy::None => Capture::None,
        });
        builder = match crate::pipeline::apply(builder, agent_config, model.as_ref(), &models, &pricing) {
            Ok(builder) => builder,
            Err(problem) => {
                problems.push(format!("agents.{}.{problem}", agent_config.id));
                continue;
            }
        };
        match builder.build() {
            Ok(agent) => registry.insert(agent),
            Err(error) => problems.push(format!("agents.{}: {error}", agent_config.id)),
        }
    }

    if problems.is_empty() { Ok((registry, notices)) } else { Err(BuildError { problems }) }
}

fn resolve_model(
    config: &Config,
    model_config: &ModelConfig,
    env: &dyn Fn(&str) -> Option<String>,
    notices: &mut Vec<Notice>,
) -> Result<Arc<dyn LanguageModel>, String> {
    let api_key = model_config.api_key_env.as_deref().and_then(env).filter(|key| !key.trim().is_empty());
    if let (Some(variable), None) = (&model_config.api_key_env, &api_key) {
        let Some(fallback_id) = &model_config.fallback else {
            return Err(format!("environment variable {variable} is not set and the model has no fallback"));
        };
        let fallback = config.model(fallback_id).ok_or_else(|| format!("unknown fallback model \"{fallback_id}\""))?;
        notices.push(Notice(format!(
            "model \"{}\": {variable} is not set; answering with model \"{fallback_id}\" ({} {}) instead",
            model_config.id,
            provider_name(fallback.provider),
            fallback.model
        )));
        // Config validation guarantees the fallback has no fallback of its own.
        return instantiate(fallback, fallback.api_key_env.as_deref().and_then(env));
    }
    instantiate(model_config, api_key)
}

fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Mock => "mock",
    }
}

fn instantiate(model_config: &ModelConfig, api_key: Option<String>) -> Result<Arc<dyn LanguageModel>, String> {
    let settings = |default_base_url: &str| HttpModelSettings {
        model: model_config.model.clone(),
        base_url: model_config.base_url.clone().unwrap_or_else(|| default_base_url.to_owned()),
        api_key: api_key.clone(),
        connect_timeout: model_config.connect_timeout,
        first_byte_timeout: model_config.first_byte_timeout,
        total_timeout: model_config.total_timeout,
        max_retries: model_config.max_retries,
        headers: model_config.headers.clone(),
    };
    let model: Arc<dyn LanguageModel> = match model_config.provider {
        ProviderKind::OpenAi => Arc::new(OpenAiModel::new(settings(DEFAULT_OPENAI_BASE_URL)).map_err(|e| crate::error::chain(&e))?),
        ProviderKind::Anthropic => {
            Arc::new(AnthropicModel::new(settings(DEFAULT_ANTHROPIC_BASE_URL)).map_err(|e| crate::error::chain(&e))?)
        }
        ProviderKind::Mock => Arc::new(MockModel::new(&model_config.model).map_err(|e| crate::error::chain(&e))?),
    };
    Ok(model)
}
