//! Turns `[workflows.<id>]` of the configuration into runnable [`Workflow`]s: agent steps call
//! the configured agents, tool steps the configured HTTP tools, template steps render JSON,
//! suspend steps wait for human input. Templates and conditions read the workflow input and
//! earlier steps' outputs (see `glassbox_config::workflows` for the syntax).

use std::sync::Arc;

use glassbox_config::workflows::{WorkflowConfig, WorkflowStepConfig, WorkflowStepKind};
use glassbox_config::{Config, HttpMethod as ConfigMethod};
use glassbox_core::workflow::{Condition, MapContext, Node};
use glassbox_core::{Message, RetryPolicy, Step, StepContext, StepError, Tool, ToolSpec, Workflow};
use glassbox_providers::{HttpMethod, HttpTool};
use serde_json::{Map, Value, json};

use crate::AgentRegistry;
use crate::runtime::BuildError;

/// Builds every configured workflow; problems name the workflow and step.
pub fn build(config: &Config, agents: &AgentRegistry) -> Result<Vec<Workflow>, BuildError> {
    let mut problems = Vec::new();
    let mut workflows = Vec::new();
    for workflow_config in &config.workflows {
        match workflow(config, agents, workflow_config) {
            Ok(workflow) => workflows.push(workflow),
            Err(problem) => problems.push(format!("workflows.{}: {problem}", workflow_config.id)),
        }
    }
    if problems.is_empty() { Ok(workflows) } else { Err(BuildError { problems }) }
}

fn workflow(config: &Config, agents: &AgentRegistry, workflow_config: &WorkflowConfig) -> Result<Workflow, String> {
    let mut builder = Workflow::builder(workflow_config.id.clone())
        .description(workflow_config.description.clone())
        .default_retry(RetryPolicy::new(workflow_config.retries + 1, workflow_config.retry_backoff));
    if let Some(schema) = &workflow_config.input_schema {
        builder = builder.input_schema(schema.clone());
    }
    if let Some(timeout) = workflow_config.timeout {
        builder = builder.default_timeout(timeout);
    }
    for step_config in &workflow_config.steps {
        let mut step = step(config, agents, step_config)?;
        if let Some(retries) = step_config.retries {
            step = step.retry(RetryPolicy::new(retries + 1, workflow_config.retry_backoff));
        }
        if let Some(timeout) = step_config.timeout {
            step = step.timeout(timeout);
        }
        builder = match &step_config.when {
            // The branch sees the run's input and outputs through a `map` just before it.
            Some(condition) => {
                let condition = condition.clone();
                let holds: Condition = Arc::new(move |context: &Value| {
                    condition.holds(lookup(&context["input"], &context["steps"], &condition.path))
                });
                builder.map(context_value).branch([(holds, Node::from(step))])
            }
            None => builder.then(step),
        };
    }
    builder.build().map_err(|error| error.to_string())
}

/// `{input, steps}`: what templates and conditions read.
fn context_value(context: &MapContext<'_>) -> Result<Value, String> {
    let steps: Map<String, Value> = context.outputs.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
    Ok(json!({ "input": context.workflow_input, "steps": steps }))
}

fn step(config: &Config, agents: &AgentRegistry, step_config: &WorkflowStepConfig) -> Result<Step, String> {
    let id = step_config.id.clone();
    match &step_config.kind {
        WorkflowStepKind::Agent { agent, prompt } => {
            let agent = agents.get(agent).cloned().ok_or_else(|| format!("steps {id}: unknown agent {agent:?}"))?;
            let prompt = Value::String(prompt.clone());
            Ok(Step::new(id, move |context| {
                let agent = agent.clone();
                let text = match render(&prompt, &context) {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                async move {
                    let output = agent
                        .generate(vec![Message::user(text)], Default::default())
                        .await
                        .map_err(|error| StepError::with_source("the agent call failed", error))?;
                    Ok(json!({ "text": output.text, "object": output.object }))
                }
            }))
        }
        WorkflowStepKind::Tool { tool, input } => {
            let tool_config = config.tool(tool).ok_or_else(|| format!("steps {id}: unknown tool {tool:?}"))?;
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
            let http =
                HttpTool::new(spec, tool_config.url.clone(), method, tool_config.timeout, tool_config.headers.clone())
                    .map_err(|error| format!("steps {id}: {}", crate::error::chain(&error)))?;
            let http = Arc::new(http);
            let input = input.clone();
            Ok(Step::new(id, move |context| {
                let http = Arc::clone(&http);
                let arguments = render(&input, &context);
                async move {
                    http.call(arguments).await.map_err(|error| StepError::with_source("the tool call failed", error))
                }
            }))
        }
        WorkflowStepKind::Template { template } => {
            let template = template.clone();
            Ok(Step::new(id, move |context| {
                let output = render(&template, &context);
                async move { Ok(output) }
            }))
        }
        WorkflowStepKind::Suspend { payload, resume_schema } => {
            let payload = payload.clone();
            let step = Step::new(id, move |context| {
                let result = match context.resume_data.clone() {
                    Some(data) => Ok(data),
                    None => Err(context.suspend(render(&payload, &context))),
                };
                async move { result }
            });
            Ok(match resume_schema {
                Some(schema) => step.resume_schema(schema.clone()),
                None => step,
            })
        }
    }
}

/// The value at `input.a.b` / `steps.x.a` (`None` when absent).
fn lookup<'v>(input: &'v Value, steps: &'v Value, path: &[String]) -> Option<&'v Value> {
    let (root, rest) = match path.first().map(String::as_str) {
        Some("input") => (input, &path[1..]),
        Some("steps") => (steps, &path[1..]),
        _ => return None,
    };
    rest.iter().try_fold(root, |value, segment| match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|index| items.get(index)),
        _ => None,
    })
}

/// Renders the `{{...}}` placeholders of `template` against the run.
fn render(template: &Value, context: &StepContext) -> Value {
    let steps: Map<String, Value> = context.outputs.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
    let steps = Value::Object(steps);
    render_with(template, &context.workflow_input, &steps)
}

fn render_with(template: &Value, input: &Value, steps: &Value) -> Value {
    match template {
        Value::String(text) => render_text(text, input, steps),
        Value::Array(items) => Value::Array(items.iter().map(|item| render_with(item, input, steps)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(key, value)| (key.clone(), render_with(value, input, steps))).collect())
        }
        other => other.clone(),
    }
}

fn resolve(reference: &str, input: &Value, steps: &Value) -> Value {
    let path: Vec<String> = reference.trim().split('.').map(str::to_owned).collect();
    lookup(input, steps, &path).cloned().unwrap_or(Value::Null)
}

fn render_text(text: &str, input: &Value, steps: &Value) -> Value {
    let trimmed = text.trim();
    // Exactly one placeholder: the referenced value itself, of any JSON type.
    if let Some(inner) = trimmed.strip_prefix("{{").and_then(|rest| rest.strip_suffix("}}"))
        && !inner.contains("{{")
    {
        return resolve(inner, input, steps);
    }
    let mut rendered = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        rendered.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            rendered.push_str(&rest[open..]);
            rest = "";
            break;
        };
        match resolve(&after[..close], input, steps) {
            Value::String(value) => rendered.push_str(&value),
            other => rendered.push_str(&other.to_string()),
        }
        rest = &after[close + 2..];
    }
    rendered.push_str(rest);
    Value::String(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_values_and_text() {
        let input = json!({ "userId": "u1", "n": 3 });
        let steps = json!({ "fetch": { "total": 1200, "rows": [1, 2] } });
        let template = json!({
            "whole": "{{steps.fetch}}",
            "total": "{{ steps.fetch.total }}",
            "text": "user {{input.userId}} has {{steps.fetch.total}} visits, rows {{steps.fetch.rows}}",
            "missing": "{{steps.nope.x}}",
            "second": "{{steps.fetch.rows.1}}",
        });
        assert_eq!(
            render_with(&template, &input, &steps),
            json!({
                "whole": { "total": 1200, "rows": [1, 2] },
                "total": 1200,
                "text": "user u1 has 1200 visits, rows [1,2]",
                "missing": null,
                "second": 2,
            })
        );
    }
}
