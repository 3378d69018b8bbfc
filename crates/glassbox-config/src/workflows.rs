//! `[workflows.<id>]`: workflows declared in the configuration, and the checks of their graph.
//!
//! ```toml
//! [workflows.weekly_report]
//! description = "..."                 # default ""
//! input_schema = { type = "object", properties = { userId = { type = "string" } } }  # optional
//! retries = 2                         # default 0: extra attempts of every step
//! retry_backoff_ms = 500              # default 500, doubled after each failed attempt
//! timeout_ms = 30000                  # optional: per-attempt timeout of every step
//!
//! [[workflows.weekly_report.steps]]   # run in order; each step is exactly one kind:
//! id = "fetch"                        #   ^[A-Za-z0-9_-]+$, unique in the workflow
//! tool = "analytics"                  # call an HTTP tool with `input` as its arguments
//! input = { userId = "{{input.userId}}" }
//!
//! [[workflows.weekly_report.steps]]
//! id = "summarize"
//! agent = "analyst"                   # call an agent with `prompt` as the user message
//! prompt = "Summarize {{steps.fetch}}"
//!
//! [[workflows.weekly_report.steps]]
//! id = "shape"
//! template = { total = "{{steps.fetch.total}}" }  # transform data
//!
//! [[workflows.weekly_report.steps]]
//! id = "approval"
//! suspend = { question = "Send it?" } # suspend for human input; the resume data is the output
//! resume_schema = { type = "object" } # optional: checked when the run is resumed
//! when = "steps.fetch.total > 1000"   # optional on any step: run only when this holds
//! retries = 0                         # optional on any step: overrides the workflow's
//! timeout_ms = 1000                   # optional on any step
//! ```
//!
//! Templates: `{{input.a.b}}` reads the workflow input, `{{steps.<id>.a}}` an earlier step's
//! output. A string that is exactly one placeholder becomes the referenced JSON value; inside
//! longer text, values are written as JSON (strings as they are). Conditions (`when`) are a
//! path, optionally compared with `==`, `!=`, `>`, `>=`, `<`, `<=` to a JSON literal; a bare
//! path holds when its value is truthy (not null, false, 0 or "").
//!
//! Graph checks (`glassbox check`): unknown agents and tools; references to unknown steps; a
//! step referring to itself or to a later step (a cycle: steps run in order and loops are not
//! declared in config); `input.<field>` not declared by an input schema that lists properties;
//! `steps.<agent step>.object.<field>` not declared by the agent's output schema.

use std::time::Duration;

use serde_json::Value;

use crate::reader::{Cx, Field};

const WORKFLOW_KEYS: &[&str] = &["description", "input_schema", "retries", "retry_backoff_ms", "timeout_ms", "steps"];
const STEP_KEYS: &[&str] = &[
    "id",
    "tool",
    "input",
    "agent",
    "prompt",
    "template",
    "suspend",
    "resume_schema",
    "when",
    "retries",
    "timeout_ms",
];
const RETRIES: std::ops::RangeInclusive<i128> = 0..=100;
const TIMEOUT_MS: std::ops::RangeInclusive<i128> = 1..=86_400_000;

/// A workflow declared in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowConfig {
    pub id: String,
    pub description: String,
    pub input_schema: Option<Value>,
    /// Extra attempts of each step (0: one attempt).
    pub retries: u32,
    pub retry_backoff: Duration,
    pub timeout: Option<Duration>,
    pub steps: Vec<WorkflowStepConfig>,
}

/// One step, in run order.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStepConfig {
    pub id: String,
    pub kind: WorkflowStepKind,
    pub when: Option<StepCondition>,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowStepKind {
    /// Calls `agent` with the rendered `prompt`; output `{text, object}`.
    Agent { agent: String, prompt: String },
    /// Calls the HTTP `tool` with the rendered `input`; output: the tool's result.
    Tool { tool: String, input: Value },
    /// Output: the rendered `template`.
    Template { template: Value },
    /// Suspends with the rendered payload; on resume, the resume data is the output.
    Suspend { payload: Value, resume_schema: Option<Value> },
}

/// `path op literal`, or a bare path (truthy).
#[derive(Debug, Clone, PartialEq)]
pub struct StepCondition {
    /// `input.a.b` or `steps.<id>.a` as segments.
    pub path: Vec<String>,
    pub comparison: Option<(Comparison, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl StepCondition {
    /// Parses `steps.fetch.total > 1000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let operators = [
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            ("==", Comparison::Eq),
            ("!=", Comparison::Ne),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
        ];
        let found =
            operators.iter().find_map(|(symbol, comparison)| text.find(symbol).map(|at| (at, *symbol, *comparison)));
        let (path_text, comparison) = match found {
            Some((at, symbol, comparison)) => {
                let literal = text[at + symbol.len()..].trim();
                let value: Value = serde_json::from_str(literal).map_err(|_| {
                    format!("{literal:?} is not a JSON literal (numbers, \"strings\", true, false, null)")
                })?;
                (&text[..at], Some((comparison, value)))
            }
            None => (text, None),
        };
        let path = parse_path(path_text.trim())?;
        Ok(Self { path, comparison })
    }

    /// Whether the condition holds for `value` (the value at the path, `None` when absent).
    pub fn holds(&self, value: Option<&Value>) -> bool {
        let value = value.unwrap_or(&Value::Null);
        match &self.comparison {
            None => truthy(value),
            Some((comparison, literal)) => match comparison {
                Comparison::Eq => value == literal,
                Comparison::Ne => value != literal,
                ordering => match (value.as_f64(), literal.as_f64()) {
                    (Some(left), Some(right)) => match ordering {
                        Comparison::Gt => left > right,
                        Comparison::Ge => left >= right,
                        Comparison::Lt => left < right,
                        _ => left <= right,
                    },
                    _ => false,
                },
            },
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `input.a.b` / `steps.x.y` into segments, checking the root.
pub fn parse_path(text: &str) -> Result<Vec<String>, String> {
    let segments: Vec<String> = text.split('.').map(|segment| segment.trim().to_owned()).collect();
    if segments.iter().any(String::is_empty) {
        return Err(format!("{text:?} is not a path like input.field or steps.<id>.field"));
    }
    match segments.first().map(String::as_str) {
        Some("input") => Ok(segments),
        Some("steps") if segments.len() >= 2 => Ok(segments),
        _ => Err(format!("{text:?} must start with input. or steps.<id>")),
    }
}

/// Every `{{path}}` placeholder in the strings of `value`.
pub fn placeholders(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_placeholders(value, &mut found);
    found
}

fn collect_placeholders(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(open) = rest.find("{{") {
                let after = &rest[open + 2..];
                let Some(close) = after.find("}}") else { break };
                found.push(after[..close].trim().to_owned());
                rest = &after[close + 2..];
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_placeholders(item, found)),
        Value::Object(map) => map.values().for_each(|item| collect_placeholders(item, found)),
        _ => {}
    }
}

/// Reads `[workflows.<id>]`. `agents` are (id, output schema) of the declared agents.
pub(crate) fn workflow(
    cx: &mut Cx<'_>,
    field: &Field<'_>,
    agents: &[(&str, Option<&Value>)],
    tool_ids: &[&str],
) -> Option<WorkflowConfig> {
    let mut section = cx.section(field, WORKFLOW_KEYS)?;
    let description = match section.get("description") {
        Some(field) => cx.string(&field),
        None => Some(String::new()),
    };
    let input_schema = match section.get("input_schema") {
        Some(field) => crate::schema::schema(cx, &field, false).map(Some),
        None => Some(None),
    };
    let retries = optional_retries(cx, section.get("retries")).map(|retries| retries.unwrap_or(0));
    let retry_backoff = match section.get("retry_backoff_ms") {
        Some(field) => {
            cx.integer(&field, 0..=86_400_000).and_then(|ms| u64::try_from(ms).ok()).map(Duration::from_millis)
        }
        None => Some(Duration::from_millis(500)),
    };
    let timeout = optional_timeout(cx, section.get("timeout_ms"));
    let steps_field = section.require(cx, "steps");
    section.finish(cx);
    let elements = steps_field.as_ref().and_then(|steps| cx.array(steps))?;
    if elements.is_empty() {
        cx.error(field.key_offset, format!("{}.steps: a workflow needs at least one step", field.path));
        return None;
    }
    let mut steps: Vec<Option<WorkflowStepConfig>> = Vec::new();
    let mut seen: Vec<(String, Option<Option<Value>>)> = Vec::new();
    for element in &elements {
        let step = step(cx, element, agents, tool_ids, &seen, input_schema.as_ref().and_then(Option::as_ref));
        if let Some(step) = &step {
            if seen.iter().any(|(id, _)| *id == step.id) {
                cx.error(element.offset(), format!("{}.id: step id {:?} is used twice", element.path, step.id));
            }
            // What later references to this step can be checked against.
            let output_schema = match &step.kind {
                WorkflowStepKind::Agent { agent, .. } => {
                    Some(agents.iter().find(|(id, _)| id == agent).and_then(|(_, schema)| schema.cloned()))
                }
                _ => None,
            };
            seen.push((step.id.clone(), output_schema));
        }
        steps.push(step);
    }
    Some(WorkflowConfig {
        id: field.key.to_owned(),
        description: description?,
        input_schema: input_schema?,
        retries: retries?,
        retry_backoff: retry_backoff?,
        timeout: timeout?,
        steps: steps.into_iter().collect::<Option<_>>()?,
    })
}

fn optional_retries(cx: &mut Cx<'_>, field: Option<Field<'_>>) -> Option<Option<u32>> {
    match field {
        Some(field) => cx.integer(&field, RETRIES).and_then(|value| u32::try_from(value).ok()).map(Some),
        None => Some(None),
    }
}

fn optional_timeout(cx: &mut Cx<'_>, field: Option<Field<'_>>) -> Option<Option<Duration>> {
    match field {
        Some(field) => cx
            .integer(&field, TIMEOUT_MS)
            .and_then(|value| u64::try_from(value).ok())
            .map(|ms| Some(Duration::from_millis(ms))),
        None => Some(None),
    }
}

/// Earlier steps: (id, Some(agent output schema or None) for agent steps, None otherwise).
type Earlier = [(String, Option<Option<Value>>)];

fn step(
    cx: &mut Cx<'_>,
    field: &Field<'_>,
    agents: &[(&str, Option<&Value>)],
    tool_ids: &[&str],
    earlier: &Earlier,
    input_schema: Option<&Value>,
) -> Option<WorkflowStepConfig> {
    let mut section = cx.section(field, STEP_KEYS)?;
    let id = section.require(cx, "id").and_then(|id_field| {
        let id = cx.string(&id_field)?;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            cx.error(
                id_field.offset(),
                format!("{}: invalid step id {id:?} (letters, digits, \"_\" and \"-\")", id_field.path),
            );
            return None;
        }
        Some(id)
    });
    let kinds: Vec<&str> =
        ["tool", "agent", "template", "suspend"].into_iter().filter(|kind| section_has(&section, kind)).collect();
    let path = field.path.clone();
    let mut references: Vec<(String, usize, String)> = Vec::new();
    let kind = match kinds.as_slice() {
        ["tool"] => {
            let tool = section.get("tool").and_then(|tool_field| {
                let tool = cx.string(&tool_field)?;
                if !tool_ids.contains(&tool.as_str()) {
                    cx.error(tool_field.offset(), format!("{}: unknown tool {tool:?}", tool_field.path));
                    return None;
                }
                Some(tool)
            });
            let input = match section.get("input") {
                Some(input_field) => value(cx, &input_field, &mut references),
                None => Some(Value::Object(serde_json::Map::new())),
            };
            tool.zip(input).map(|(tool, input)| WorkflowStepKind::Tool { tool, input })
        }
        ["agent"] => {
            let agent = section.get("agent").and_then(|agent_field| {
                let agent = cx.string(&agent_field)?;
                if !agents.iter().any(|(id, _)| *id == agent) {
                    cx.error(agent_field.offset(), format!("{}: unknown agent {agent:?}", agent_field.path));
                    return None;
                }
                Some(agent)
            });
            let prompt = section.require(cx, "prompt").and_then(|prompt_field| {
                let prompt = value(cx, &prompt_field, &mut references)?;
                match prompt {
                    Value::String(text) => Some(text),
                    _ => {
                        cx.error(prompt_field.offset(), format!("{}: expected a string", prompt_field.path));
                        None
                    }
                }
            });
            agent.zip(prompt).map(|(agent, prompt)| WorkflowStepKind::Agent { agent, prompt })
        }
        ["template"] => {
            let template =
                section.get("template").and_then(|template_field| value(cx, &template_field, &mut references));
            template.map(|template| WorkflowStepKind::Template { template })
        }
        ["suspend"] => {
            let payload = section.get("suspend").and_then(|payload_field| value(cx, &payload_field, &mut references));
            let resume_schema = match section.get("resume_schema") {
                Some(schema_field) => crate::schema::schema(cx, &schema_field, false).map(Some),
                None => Some(None),
            };
            payload.zip(resume_schema).map(|(payload, resume_schema)| WorkflowStepKind::Suspend { payload, resume_schema })
        }
        [] => {
            cx.error(field.offset(), format!("{path}: a step needs one of tool, agent, template or suspend"));
            None
        }
        several => {
            for kind in several {
                // Taken, so they are not reported again as unknown keys.
                let _ = section.get(kind);
            }
            cx.error(field.offset(), format!("{path}: a step has exactly one kind, found {}", several.join(" and ")));
            None
        }
    };
    for key in ["input", "prompt"] {
        let allowed = matches!(
            (key, &kind),
            ("input", Some(WorkflowStepKind::Tool { .. })) | ("prompt", Some(WorkflowStepKind::Agent { .. }))
        );
        if !allowed && let Some(extra) = section.get(key) {
            cx.error(
                extra.key_offset,
                format!("{}: only {} steps take {key}", extra.path, if key == "input" { "tool" } else { "agent" }),
            );
        }
    }
    if !matches!(kind, Some(WorkflowStepKind::Suspend { .. }))
        && let Some(extra) = section.get("resume_schema")
    {
        cx.error(extra.key_offset, format!("{}: only suspend steps take resume_schema", extra.path));
    }
    let when = match section.get("when") {
        Some(when_field) => cx.string(&when_field).and_then(|text| match StepCondition::parse(&text) {
            Ok(condition) => {
                references.push((condition.path.join("."), when_field.offset(), when_field.path.clone()));
                Some(Some(condition))
            }
            Err(message) => {
                cx.error(when_field.offset(), format!("{}: {message}", when_field.path));
                None
            }
        }),
        None => Some(None),
    };
    let retries = optional_retries(cx, section.get("retries"));
    let timeout = optional_timeout(cx, section.get("timeout_ms"));
    section.finish(cx);

    let id = id?;
    for (reference, offset, at) in &references {
        check_reference(cx, &id, reference, *offset, at, earlier, input_schema);
    }
    Some(WorkflowStepConfig { id, kind: kind?, when: when?, retries: retries?, timeout: timeout? })
}

fn section_has(section: &crate::reader::Section<'_>, key: &str) -> bool {
    section.has(key)
}

/// Converts a TOML value to JSON and collects its `{{...}}` references.
fn value(cx: &mut Cx<'_>, field: &Field<'_>, references: &mut Vec<(String, usize, String)>) -> Option<Value> {
    let json = crate::schema::value(cx, field)?;
    for placeholder in placeholders(&json) {
        references.push((placeholder, field.offset(), field.path.clone()));
    }
    Some(json)
}

fn check_reference(
    cx: &mut Cx<'_>,
    step_id: &str,
    reference: &str,
    offset: usize,
    at: &str,
    earlier: &Earlier,
    input_schema: Option<&Value>,
) {
    let segments = match parse_path(reference) {
        Ok(segments) => segments,
        Err(message) => {
            cx.error(offset, format!("{at}: {message}"));
            return;
        }
    };
    if segments[0] == "input" {
        let declared = input_schema.and_then(|schema| schema.get("properties")).and_then(Value::as_object);
        if let (Some(declared), Some(field)) = (declared, segments.get(1))
            && !declared.contains_key(field)
        {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            cx.error(
                offset,
                format!("{at}: input.{field} is not in the workflow's input_schema (declared: {})", known.join(", ")),
            );
        }
        return;
    }
    let target = &segments[1];
    if target == step_id {
        cx.error(offset, format!("{at}: step {step_id:?} refers to its own output (a cycle)"));
        return;
    }
    match earlier.iter().find(|(id, _)| id == target) {
        None => cx.error(
            offset,
            format!("{at}: steps.{target} is not an earlier step (steps run in order; a later step would be a cycle)"),
        ),
        Some((_, Some(Some(schema)))) => {
            // An agent step with an output schema: `steps.x.object.<field>`.
            if segments.get(2).map(String::as_str) == Some("object")
                && let (Some(field), Some(declared)) =
                    (segments.get(3), schema.get("properties").and_then(Value::as_object))
                && !declared.contains_key(field)
            {
                cx.error(offset, format!("{at}: steps.{target}.object.{field} is not in the agent's output_schema"));
            }
        }
        Some(_) => {}
    }
}
