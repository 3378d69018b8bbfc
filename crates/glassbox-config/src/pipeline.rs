//! An agent's request pipeline in `glassbox.toml`: its input processors, input and output
//! guardrails, per-request budget and what a block answers.
//!
//! ```toml
//! [agents.support]
//! on_block = "tripwire"             # "tripwire" (HTTP 200 with a tripwire object) | "422"
//! processors = [                    # input processors, run in order on every caller message
//!   { type = "normalize" },                                   # NFKC, control chars, whitespace
//!   { type = "length", max_chars = 8000, max_tokens = 2000, strategy = "truncate" },
//!   { type = "pii", strategy = "redact", mode = "mask", kinds = ["email", "credit_card"] },
//!   { type = "injection", threshold = 0.5, strategy = "block" },
//!   { type = "moderation", model = "guard", fail = "closed" },
//! ]
//! guardrails.input = [
//!   { type = "topic", deny = ["stock tips"], allow = [], strategy = "block" },
//!   { type = "regex", pattern = "(?i)internal only", strategy = "block" },
//! ]
//! guardrails.output = [
//!   { type = "pii", strategy = "redact" },
//!   { type = "json_schema", schema = { type = "object" } },
//!   { type = "length", max_chars = 2000, strategy = "truncate" },
//! ]
//! budget = { max_input_tokens = 4000, max_total_tokens = 20000, max_cost_usd = 0.05 }
//! ```
//!
//! Every entry has a `type`, an optional `id` (default: the type; it is the tripwire's
//! `processorId`, unique within the agent) and a `strategy`:
//!
//! | type         | strategies (first is the default) | keys                                            |
//! |--------------|-----------------------------------|-------------------------------------------------|
//! | `normalize`  | filter, warn, block               |                                                 |
//! | `length`     | block, truncate, warn             | `max_chars`, `max_tokens` (at least one)        |
//! | `pii`        | redact, block, warn               | `mode` = placeholder/mask/hash, `kinds`         |
//! | `injection`  | block, warn                       | `threshold` (0 < t <= 1, default 0.5)           |
//! | `moderation` | block, warn                       | `model` (a model id), `fail` = closed/open, `instructions` |
//! | `topic`      | block, warn, filter               | `deny`, `allow` (lists of words or phrases)     |
//! | `regex`      | block, warn, redact               | `pattern`, `replacement` (default `[REDACTED]`) |
//! | `json_schema`| block, warn (output only)         | `schema`                                        |
//!
//! PII kinds: email, phone, credit_card, iban, us_ssn, ip_address, secret (default: all).

use crate::reader::{Cx, Field, Section};
use crate::schema::schema;

/// An agent's pipeline; empty lists and an unlimited budget by default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineConfig {
    pub processors: Vec<ProcessorConfig>,
    pub input_guardrails: Vec<ProcessorConfig>,
    pub output_guardrails: Vec<ProcessorConfig>,
    pub budget: RequestBudgetConfig,
    pub on_block: OnBlockConfig,
}

/// What a blocked request answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBlockConfig {
    /// HTTP 200 with a `tripwire` object (Mastra's convention).
    #[default]
    Tripwire,
    /// HTTP 422 with the error shape.
    Status422,
}

/// `budget = { ... }`: limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestBudgetConfig {
    pub max_input_tokens: Option<u64>,
    pub max_total_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyConfig {
    Block,
    Warn,
    /// `redact`, `filter` or `truncate`: the text is changed and the run carries on.
    Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PiiModeConfig {
    #[default]
    Placeholder,
    Mask,
    Hash,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorKindConfig {
    Normalize,
    Length {
        max_chars: Option<usize>,
        max_tokens: Option<usize>,
    },
    /// `kinds` holds valid kind names (empty: all).
    Pii {
        mode: PiiModeConfig,
        kinds: Vec<String>,
    },
    Injection {
        threshold: f64,
    },
    /// `model` is a model id of `[models]`.
    Moderation {
        model: String,
        fail_open: bool,
        instructions: Option<String>,
    },
    Topic {
        deny: Vec<String>,
        allow: Vec<String>,
    },
    /// `pattern` compiles.
    Regex {
        pattern: String,
        replacement: String,
    },
    JsonSchema {
        schema: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    pub id: String,
    pub strategy: StrategyConfig,
    pub kind: ProcessorKindConfig,
}

const GUARDRAIL_KEYS: &[&str] = &["input", "output"];
const BUDGET_KEYS: &[&str] = &["max_input_tokens", "max_total_tokens", "max_cost_usd"];
const ALL_ENTRY_KEYS: &[&str] = &[
    "type",
    "id",
    "strategy",
    "max_chars",
    "max_tokens",
    "mode",
    "kinds",
    "threshold",
    "model",
    "fail",
    "instructions",
    "deny",
    "allow",
    "pattern",
    "replacement",
    "schema",
];
const PII_KINDS: &[&str] = &["email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Processors,
    Input,
    Output,
}

/// Reads the pipeline keys of an agent's section (the caller lists [`PIPELINE_KEYS`] as known).
pub(crate) fn agent_pipeline(cx: &mut Cx<'_>, section: &mut Section<'_>, model_ids: &[&str]) -> Option<PipelineConfig> {
    let mut ok = true;
    let mut ids: Vec<String> = Vec::new();
    let mut list =
        |cx: &mut Cx<'_>, field: Option<Field<'_>>, place: Place, ids: &mut Vec<String>| -> Vec<ProcessorConfig> {
            let Some(field) = field else { return Vec::new() };
            let Some(elements) = cx.array(&field) else {
                ok = false;
                return Vec::new();
            };
            let mut entries = Vec::with_capacity(elements.len());
            for element in &elements {
                match entry(cx, element, place, model_ids, ids) {
                    Some(entry) => entries.push(entry),
                    None => ok = false,
                }
            }
            entries
        };
    let processors = list(cx, section.get("processors"), Place::Processors, &mut ids);
    let (mut input_guardrails, mut output_guardrails) = (Vec::new(), Vec::new());
    if let Some(field) = section.get("guardrails") {
        match cx.section(&field, GUARDRAIL_KEYS) {
            Some(mut guardrails) => {
                input_guardrails = list(cx, guardrails.get("input"), Place::Input, &mut ids);
                output_guardrails = list(cx, guardrails.get("output"), Place::Output, &mut ids);
                guardrails.finish(cx);
            }
            None => ok = false,
        }
    }
    let budget = match section.get("budget") {
        Some(field) => budget(cx, &field),
        None => Some(RequestBudgetConfig::default()),
    };
    let on_block = match section.get("on_block") {
        Some(field) => cx.string(&field).and_then(|text| match text.as_str() {
            "tripwire" => Some(OnBlockConfig::Tripwire),
            "422" => Some(OnBlockConfig::Status422),
            _ => {
                cx.error(
                    field.offset(),
                    format!("{}: unknown value {text:?} (expected \"tripwire\" or \"422\")", field.path),
                );
                None
            }
        }),
        None => Some(OnBlockConfig::default()),
    };
    if !ok {
        return None;
    }
    Some(PipelineConfig { processors, input_guardrails, output_guardrails, budget: budget?, on_block: on_block? })
}

fn budget(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<RequestBudgetConfig> {
    let mut section = cx.section(field, BUDGET_KEYS)?;
    let mut tokens = |cx: &mut Cx<'_>, key: &str| match section.get(key) {
        Some(field) => {
            cx.integer(&field, 1..=i128::from(u64::MAX)).and_then(|value| u64::try_from(value).ok()).map(Some)
        }
        None => Some(None),
    };
    let max_input_tokens = tokens(cx, "max_input_tokens");
    let max_total_tokens = tokens(cx, "max_total_tokens");
    let max_cost_usd = match section.get("max_cost_usd") {
        Some(field) => cx.float(&field, 0.0..=1.0e9).and_then(|value| {
            if value > 0.0 {
                Some(Some(value))
            } else {
                cx.error(field.offset(), format!("{}: must be greater than 0", field.path));
                None
            }
        }),
        None => Some(None),
    };
    section.finish(cx);
    Some(RequestBudgetConfig {
        max_input_tokens: max_input_tokens?,
        max_total_tokens: max_total_tokens?,
        max_cost_usd: max_cost_usd?,
    })
}

/// The keys one type accepts, besides `type`, `id` and `strategy`, and its strategies.
fn type_spec(kind: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match kind {
        "normalize" => (&["type", "id", "strategy"], &["filter", "warn", "block"]),
        "length" => (&["type", "id", "strategy", "max_chars", "max_tokens"], &["block", "truncate", "warn"]),
        "pii" => (&["type", "id", "strategy", "mode", "kinds"], &["redact", "block", "warn"]),
        "injection" => (&["type", "id", "strategy", "threshold"], &["block", "warn"]),
        "moderation" => (&["type", "id", "strategy", "model", "fail", "instructions"], &["block", "warn"]),
        "topic" => (&["type", "id", "strategy", "deny", "allow"], &["block", "warn", "filter"]),
        "regex" => (&["type", "id", "strategy", "pattern", "replacement"], &["block", "warn", "redact"]),
        "json_schema" => (&["type", "id", "strategy", "schema"], &["block", "warn"]),
        _ => return None,
    })
}

fn entry(
    cx: &mut Cx<'_>,
    field: &Field<'_>,
    place: Place,
    model_ids: &[&str],
    ids: &mut Vec<String>,
) -> Option<ProcessorConfig> {
    // A first look for `type` only; the type decides which keys are known.
    let mut probe = cx.section(field, ALL_ENTRY_KEYS)?;
    let type_field = probe.require(cx, "type")?;
    let kind = cx.string(&type_field)?;
    let Some((keys, strategies)) = type_spec(&kind) else {
        cx.error(
            type_field.offset(),
            format!(
                "{}: unknown type {kind:?} (expected normalize, length, pii, injection, moderation, topic, regex or json_schema)",
                type_field.path
            ),
        );
        return None;
    };
    if kind == "json_schema" && place != Place::Output {
        cx.error(
            type_field.offset(),
            format!("{}: json_schema checks the answer: use it in guardrails.output", type_field.path),
        );
        return None;
    }
    if kind == "moderation" && place == Place::Output {
        cx.error(type_field.offset(), format!("{}: moderation runs on input only", type_field.path));
        return None;
    }
    let mut section = cx.section(field, keys)?;
    section.get("type");

    let id = match section.get("id") {
        Some(id_field) => {
            let id = cx.string(&id_field)?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
                cx.error(
                    id_field.offset(),
                    format!("{}: invalid id {id:?} (use letters, digits, \"_\", \".\" and \"-\")", id_field.path),
                );
                return None;
            }
            Some((id, id_field.offset()))
        }
        None => None,
    };
    let (id, id_offset) = id.unwrap_or_else(|| (kind.clone(), type_field.offset()));
    if ids.contains(&id) {
        cx.error(id_offset, format!("{}: the id {id:?} is used twice in this agent (set a distinct `id`)", field.path));
    } else {
        ids.push(id.clone());
    }

    let strategy = match section.get("strategy") {
        Some(strategy_field) => {
            let text = cx.string(&strategy_field)?;
            if !strategies.contains(&text.as_str()) {
                cx.error(
                    strategy_field.offset(),
                    format!(
                        "{}: {kind} does not support strategy {text:?} (expected {})",
                        strategy_field.path,
                        strategies.join(", ")
                    ),
                );
                return None;
            }
            text
        }
        None => strategies[0].to_owned(),
    };
    let strategy = match strategy.as_str() {
        "block" => StrategyConfig::Block,
        "warn" => StrategyConfig::Warn,
        _ => StrategyConfig::Change,
    };

    let kind = match kind.as_str() {
        "normalize" => Some(ProcessorKindConfig::Normalize),
        "length" => {
            let mut limit = |cx: &mut Cx<'_>, key: &str| match section.get(key) {
                Some(f) => cx.integer(&f, 1..=i128::from(u32::MAX)).and_then(|v| usize::try_from(v).ok()).map(Some),
                None => Some(None),
            };
            let (max_chars, max_tokens) = (limit(cx, "max_chars")?, limit(cx, "max_tokens")?);
            if max_chars.is_none() && max_tokens.is_none() {
                cx.error(field.offset(), format!("{}: a length limit needs max_chars or max_tokens", field.path));
                None
            } else {
                Some(ProcessorKindConfig::Length { max_chars, max_tokens })
            }
        }
        "pii" => {
            let mode = match section.get("mode") {
                Some(f) => cx.string(&f).and_then(|text| match text.as_str() {
                    "placeholder" => Some(PiiModeConfig::Placeholder),
                    "mask" => Some(PiiModeConfig::Mask),
                    "hash" => Some(PiiModeConfig::Hash),
                    _ => {
                        cx.error(
                            f.offset(),
                            format!("{}: unknown mode {text:?} (expected placeholder, mask or hash)", f.path),
                        );
                        None
                    }
                }),
                None => Some(PiiModeConfig::default()),
            };
            let kinds = match section.get("kinds") {
                Some(f) => string_list(cx, &f, Some(PII_KINDS)),
                None => Some(Vec::new()),
            };
            Some(ProcessorKindConfig::Pii { mode: mode?, kinds: kinds? })
        }
        "injection" => {
            let threshold = match section.get("threshold") {
                Some(f) => cx.float(&f, 0.0..=1.0).and_then(|value| {
                    if value > 0.0 {
                        Some(value)
                    } else {
                        cx.error(f.offset(), format!("{}: must be greater than 0", f.path));
                        None
                    }
                }),
                None => Some(0.5),
            };
            Some(ProcessorKindConfig::Injection { threshold: threshold? })
        }
        "moderation" => {
            let model = section.require(cx, "model").and_then(|f| {
                let model = cx.string(&f)?;
                if model_ids.contains(&model.as_str()) {
                    Some(model)
                } else {
                    cx.error(
                        f.offset(),
                        format!("{}: unknown model {model:?} (known: {})", f.path, model_ids.join(", ")),
                    );
                    None
                }
            });
            let fail_open = match section.get("fail") {
                Some(f) => cx.string(&f).and_then(|text| match text.as_str() {
                    "open" => Some(true),
                    "closed" => Some(false),
                    _ => {
                        cx.error(
                            f.offset(),
                            format!("{}: unknown value {text:?} (expected \"open\" or \"closed\")", f.path),
                        );
                        None
                    }
                }),
                None => Some(false),
            };
            let instructions = match section.get("instructions") {
                Some(f) => cx.string(&f).map(Some),
                None => Some(None),
            };
            Some(ProcessorKindConfig::Moderation { model: model?, fail_open: fail_open?, instructions: instructions? })
        }
        "topic" => {
            let deny = match section.get("deny") {
                Some(f) => string_list(cx, &f, None),
                None => Some(Vec::new()),
            };
            let allow = match section.get("allow") {
                Some(f) => string_list(cx, &f, None),
                None => Some(Vec::new()),
            };
            let (deny, allow) = (deny?, allow?);
            if deny.is_empty() && allow.is_empty() {
                cx.error(field.offset(), format!("{}: a topic guardrail needs a deny or an allow list", field.path));
                None
            } else {
                Some(ProcessorKindConfig::Topic { deny, allow })
            }
        }
        "regex" => {
            let pattern = section.require(cx, "pattern").and_then(|f| {
                let pattern = cx.string(&f)?;
                match regex::Regex::new(&pattern) {
                    Ok(_) => Some(pattern),
                    Err(error) => {
                        let message = error.to_string().replace('\n', " ");
                        cx.error(f.offset(), format!("{}: invalid regular expression: {message}", f.path));
                        None
                    }
                }
            });
            let replacement = match section.get("replacement") {
                Some(f) => cx.string(&f),
                None => Some("[REDACTED]".to_owned()),
            };
            Some(ProcessorKindConfig::Regex { pattern: pattern?, replacement: replacement? })
        }
        "json_schema" => {
            let schema = section.require(cx, "schema").and_then(|f| schema(cx, &f, false));
            Some(ProcessorKindConfig::JsonSchema { schema: schema? })
        }
        _ => None,
    };
    section.finish(cx);
    Some(ProcessorConfig { id, strategy, kind: kind? })
}

/// An array of non-empty strings, each from `allowed` when given.
fn string_list(cx: &mut Cx<'_>, field: &Field<'_>, allowed: Option<&[&str]>) -> Option<Vec<String>> {
    let elements = cx.array(field)?;
    let mut ok = true;
    let mut values = Vec::with_capacity(elements.len());
    for element in &elements {
        let Some(value) = cx.string(element) else {
            ok = false;
            continue;
        };
        if value.trim().is_empty() {
            cx.error(element.offset(), format!("{}: must not be empty", element.path));
            ok = false;
        } else if let Some(allowed) = allowed
            && !allowed.contains(&value.as_str())
        {
            cx.error(
                element.offset(),
                format!("{}: unknown value {value:?} (expected one of: {})", element.path, allowed.join(", ")),
            );
            ok = false;
        } else {
            values.push(value);
        }
    }
    ok.then_some(values)
}
