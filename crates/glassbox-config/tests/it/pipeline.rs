//! An agent's processors, guardrails, budget and `on_block`: what loads, and each problem with
//! its position.

use glassbox_config::pipeline::{
    OnBlockConfig, PiiModeConfig, PipelineConfig, ProcessorConfig, ProcessorKindConfig, RequestBudgetConfig,
    StrategyConfig,
};
use serde_json::json;

use crate::{BASE, config, problem, problems};

#[test]
fn a_full_pipeline_loads_with_defaults() {
    let source = format!(
        r#"{BASE}on_block = "422"
processors = [
  {{ type = "normalize" }},
  {{ type = "length", max_tokens = 2000, strategy = "truncate" }},
  {{ type = "pii", mode = "hash", kinds = ["email", "iban"] }},
  {{ type = "injection", threshold = 0.7, strategy = "warn" }},
  {{ type = "moderation", model = "mock", fail = "open" }},
]
guardrails.input = [{{ type = "topic", deny = ["crypto"], strategy = "filter" }}]
guardrails.output = [
  {{ type = "pii", id = "pii-out" }},
  {{ type = "regex", pattern = "ORD-\\d+", strategy = "redact", replacement = "[ORDER]" }},
  {{ type = "json_schema", schema = {{ type = "object" }} }},
]
budget = {{ max_input_tokens = 4000, max_cost_usd = 0.05 }}
"#
    );
    let pipeline = config(&source).agents.remove(0).pipeline;
    let entry = |id: &str, strategy, kind| ProcessorConfig { id: id.into(), strategy, kind };
    assert_eq!(
        pipeline,
        PipelineConfig {
            processors: vec![
                entry("normalize", StrategyConfig::Change, ProcessorKindConfig::Normalize),
                entry(
                    "length",
                    StrategyConfig::Change,
                    ProcessorKindConfig::Length { max_chars: None, max_tokens: Some(2000) }
                ),
                entry(
                    "pii",
                    StrategyConfig::Change,
                    ProcessorKindConfig::Pii { mode: PiiModeConfig::Hash, kinds: vec!["email".into(), "iban".into()] }
                ),
                entry("injection", StrategyConfig::Warn, ProcessorKindConfig::Injection { threshold: 0.7 }),
                entry(
                    "moderation",
                    StrategyConfig::Block,
                    ProcessorKindConfig::Moderation { model: "mock".into(), fail_open: true, instructions: None }
                ),
            ],
            input_guardrails: vec![entry(
                "topic",
                StrategyConfig::Change,
                ProcessorKindConfig::Topic { deny: vec!["crypto".into()], allow: vec![] }
            )],
            output_guardrails: vec![
                entry(
                    "pii-out",
                    StrategyConfig::Change,
                    ProcessorKindConfig::Pii { mode: PiiModeConfig::Placeholder, kinds: vec![] }
                ),
                entry(
                    "regex",
                    StrategyConfig::Change,
                    ProcessorKindConfig::Regex { pattern: r"ORD-\d+".into(), replacement: "[ORDER]".into() }
                ),
                entry(
                    "json_schema",
                    StrategyConfig::Block,
                    ProcessorKindConfig::JsonSchema { schema: json!({"type": "object"}) }
                ),
            ],
            budget: RequestBudgetConfig {
                max_input_tokens: Some(4000),
                max_total_tokens: None,
                max_cost_usd: Some(0.05)
            },
            on_block: OnBlockConfig::Status422,
        }
    );
    assert_eq!(config(BASE).agents[0].pipeline, PipelineConfig::default());
}

#[test]
fn each_problem_is_reported_at_its_place() {
    let with = |extra: &str| format!("{BASE}{extra}\n");
    // BASE ends on line 8; the extra line is line 9.
    assert_eq!(
        problem(&with(r#"processors = [{ type = "spellcheck" }]"#)),
        r#"9:24: agents.a.processors[0].type: unknown type "spellcheck" (expected normalize, length, pii, injection, moderation, topic, regex or json_schema)"#
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "injection", strategy = "redact" }]"#)),
        r#"9:48: agents.a.processors[0].strategy: injection does not support strategy "redact" (expected block, warn)"#
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "pii", kinds = ["passport"] }]"#)),
        r#"9:40: agents.a.processors[0].kinds[0]: unknown value "passport" (expected one of: email, phone, credit_card, iban, us_ssn, ip_address, secret)"#
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "length" }]"#)),
        "9:15: agents.a.processors[0]: a length limit needs max_chars or max_tokens"
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "moderation", model = "gard" }]"#)),
        r#"9:46: agents.a.processors[0].model: unknown model "gard" (known: mock)"#
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "regex", pattern = "(" }]"#)).split(" regex parse error").next(),
        Some("9:43: agents.a.processors[0].pattern: invalid regular expression:")
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "json_schema", schema = {} }]"#)),
        "9:24: agents.a.processors[0].type: json_schema checks the answer: use it in guardrails.output"
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "normalize", threshold = 1 }]"#)),
        r#"9:37: agents.a.processors[0].threshold: unknown key (expected one of: type, id, strategy)"#
    );
    assert_eq!(
        problem(&with(r#"processors = [{ type = "pii" }, { type = "pii" }]"#)),
        r#"9:42: agents.a.processors[1]: the id "pii" is used twice in this agent (set a distinct `id`)"#
    );
    assert_eq!(
        problem(&with(r#"on_block = "403""#)),
        r#"9:12: agents.a.on_block: unknown value "403" (expected "tripwire" or "422")"#
    );
    assert_eq!(
        problem(&with("budget = { max_cost_usd = 0 }")),
        "9:27: agents.a.budget.max_cost_usd: must be greater than 0"
    );
    assert_eq!(
        problem(&with("budget = { max_tokens = 5 }")),
        "9:12: agents.a.budget.max_tokens: unknown key (expected one of: max_input_tokens, max_total_tokens, max_cost_usd)"
    );
    assert_eq!(
        problems(&with(r#"guardrails = { output = [{ type = "moderation", model = "mock" }], inptu = [] }"#)),
        vec![
            "9:35: agents.a.guardrails.output[0].type: moderation runs on input only",
            r#"9:68: agents.a.guardrails.inptu: unknown key (did you mean "input"?)"#,
        ]
    );
}
