//! Turns an agent's `processors`, `guardrails`, `budget` and `on_block` from `glassbox.toml`
//! into the core pipeline steps ([`glassbox_core::pipeline`]) and budget, and prices model calls
//! for cost budgets with the same pricing table the usage rows use.

use std::collections::HashMap;
use std::sync::Arc;

use glassbox_config::AgentConfig;
use glassbox_config::pipeline::{OnBlockConfig, PiiModeConfig, ProcessorConfig, ProcessorKindConfig, StrategyConfig};
use glassbox_core::pii::{PiiKind, RedactionMode};
use glassbox_core::pipeline::{
    FailMode, InjectionDetector, JsonSchemaGuardrail, LengthLimit, ModerationProcessor, Normalizer, PiiProcessor,
    RegexRule, TokenCounter, TopicGuardrail,
};
use glassbox_core::{AgentBuilder, Budget, CostModel, LanguageModel, OnBlock, PipelineStep, Strategy, Usage};
use glassbox_store::pricing::{PricingTable, TokenCounts};

/// The store's pricing table as the agents' cost model, so a cost budget and the usage rows
/// agree on what a call cost.
pub struct PricingCostModel(pub Arc<PricingTable>);

impl CostModel for PricingCostModel {
    fn cost_usd(&self, provider: &str, model: &str, usage: &Usage) -> Option<f64> {
        let counts = TokenCounts {
            input: usage.input_tokens,
            output: usage.output_tokens,
            cached_input: usage.cached_input_tokens,
            reasoning: usage.reasoning_tokens,
        };
        let cost = self.0.cost(provider, model, counts);
        (!cost.unknown).then_some(cost.nano_usd as f64 / 1e9)
    }
}

fn strategy(config: StrategyConfig) -> Strategy {
    match config {
        StrategyConfig::Block => Strategy::Block,
        StrategyConfig::Warn => Strategy::Warn,
        StrategyConfig::Change => Strategy::Redact,
    }
}

/// One configured entry as a core step. `model` is the agent's model (token counting);
/// `models` resolves a moderation model id.
fn step(
    entry: &ProcessorConfig,
    model: &dyn LanguageModel,
    models: &HashMap<&str, Arc<dyn LanguageModel>>,
) -> Result<PipelineStep, String> {
    let id = entry.id.clone();
    let strategy = strategy(entry.strategy);
    let step: PipelineStep = match &entry.kind {
        ProcessorKindConfig::Normalize => Normalizer::new(id, strategy).into(),
        ProcessorKindConfig::Length { max_chars, max_tokens } => {
            LengthLimit::new(id, strategy, *max_chars, *max_tokens, TokenCounter::for_model(model.model_name())).into()
        }
        ProcessorKindConfig::Pii { mode, kinds } => {
            let mode = match mode {
                PiiModeConfig::Placeholder => RedactionMode::Placeholder,
                PiiModeConfig::Mask => RedactionMode::Mask,
                PiiModeConfig::Hash => RedactionMode::Hash,
            };
            let kinds = kinds.iter().filter_map(|name| PiiKind::from_name(name)).collect();
            PiiProcessor::new(id, strategy, mode, kinds).into()
        }
        ProcessorKindConfig::Injection { threshold } => InjectionDetector::new(id, strategy, *threshold as f32).into(),
        ProcessorKindConfig::Moderation { model: model_id, fail_open, instructions } => {
            let judge =
                models.get(model_id.as_str()).ok_or_else(|| format!("unknown moderation model {model_id:?}"))?;
            let fail = if *fail_open { FailMode::Open } else { FailMode::Closed };
            let mut moderation = ModerationProcessor::new(id, strategy, Arc::clone(judge), fail);
            if let Some(instructions) = instructions {
                moderation = moderation.instructions(instructions.clone());
            }
            PipelineStep::Async(Arc::new(moderation))
        }
        ProcessorKindConfig::Topic { deny, allow } => {
            TopicGuardrail::new(id, strategy, deny, allow).map_err(|error| crate::error::chain(&error))?.into()
        }
        ProcessorKindConfig::Regex { pattern, replacement } => {
            RegexRule::new(id, strategy, pattern, replacement.clone())
                .map_err(|error| crate::error::chain(&error))?
                .into()
        }
        ProcessorKindConfig::JsonSchema { schema } => {
            JsonSchemaGuardrail::new(id, strategy, schema).map_err(|error| crate::error::chain(&error))?.into()
        }
    };
    Ok(step)
}

/// Adds the agent's pipeline to `builder`.
pub fn apply(
    mut builder: AgentBuilder,
    agent_config: &AgentConfig,
    model: &dyn LanguageModel,
    models: &HashMap<&str, Arc<dyn LanguageModel>>,
    pricing: &Arc<PricingTable>,
) -> Result<AgentBuilder, String> {
    let pipeline = &agent_config.pipeline;
    for entry in pipeline.processors.iter().chain(&pipeline.input_guardrails) {
        builder = builder.input_step(step(entry, model, models).map_err(|problem| format!("{}: {problem}", entry.id))?);
    }
    for entry in &pipeline.output_guardrails {
        builder =
            builder.output_step(step(entry, model, models).map_err(|problem| format!("{}: {problem}", entry.id))?);
    }
    let budget = Budget {
        max_input_tokens: pipeline.budget.max_input_tokens,
        max_total_tokens: pipeline.budget.max_total_tokens,
        max_cost_usd: pipeline.budget.max_cost_usd,
    };
    builder = builder.budget(budget).cost_model(Arc::new(PricingCostModel(Arc::clone(pricing))));
    builder = builder.on_block(match pipeline.on_block {
        OnBlockConfig::Tripwire => OnBlock::Tripwire,
        OnBlockConfig::Status422 => OnBlock::Error,
    });
    Ok(builder)
}
