//! `[workflows.<id>]`: what loads, and every graph problem `glassbox check` reports.

use glassbox_config::workflows::{Comparison, StepCondition};
use glassbox_config::{WorkflowStepKind};
use serde_json::json;

use crate::{config, problems};

const BASE: &str = r#"
[models.mock]
provider = "mock"
model = "mock-json"

[tools.fetch]
description = "Fetch numbers"
url = "http://127.0.0.1:9/x"
parameters = { type = "object" }

[agents.analyst]
instructions = "Summarize."
model = "mock"
output_schema = { type = "object", properties = { summary = { type = "string" } } }
"#;

fn with(workflows: &str) -> String {
    format!("{BASE}\n{workflows}")
}

#[test]
fn a_workflow_with_every_step_kind_loads() {
    let loaded = config(&with(
        r#"
[workflows.report]
description = "Weekly"
input_schema = { type = "object", properties = { userId = { type = "string" } } }
retries = 2
timeout_ms = 5000

[[workflows.report.steps]]
id = "fetch"
tool = "fetch"
input = { user = "{{input.userId}}" }

[[workflows.report.steps]]
id = "summarize"
agent = "analyst"
prompt = "Numbers: {{steps.fetch}}"
retries = 0

[[workflows.report.steps]]
id = "approve"
suspend = { summary = "{{steps.summarize.object.summary}}" }
resume_schema = { type = "object" }
when = "steps.fetch.total >= 1000"

[[workflows.report.steps]]
id = "shape"
template = { summary = "{{steps.summarize.text}}", approved = "{{steps.approve}}" }
"#,
    ));
    let workflow = &loaded.workflows[0];
    assert_eq!((workflow.id.as_str(), workflow.retries, workflow.steps.len()), ("report", 2, 4));
    assert!(matches!(&workflow.steps[0].kind, WorkflowStepKind::Tool { tool, input } if tool == "fetch" && input == &json!({ "user": "{{input.userId}}" })));
    assert!(matches!(&workflow.steps[1].kind, WorkflowStepKind::Agent { agent, .. } if agent == "analyst"));
    assert_eq!(workflow.steps[1].retries, Some(0));
    let when = workflow.steps[2].when.as_ref().unwrap();
    assert_eq!(when.path, ["steps", "fetch", "total"]);
    assert_eq!(when.comparison, Some((Comparison::Ge, json!(1000))));
    assert!(matches!(&workflow.steps[3].kind, WorkflowStepKind::Template { .. }));
}

#[test]
fn conditions_parse_and_evaluate() {
    let condition = StepCondition::parse("steps.a.n > 3").unwrap();
    assert!(condition.holds(Some(&json!(4))));
    assert!(!condition.holds(Some(&json!(3))));
    assert!(!condition.holds(None));
    let bare = StepCondition::parse("input.flag").unwrap();
    assert!(bare.holds(Some(&json!(true))) && !bare.holds(Some(&json!(""))) && !bare.holds(None));
    assert!(StepCondition::parse("steps.a.kind == \"big\"").unwrap().holds(Some(&json!("big"))));
    assert!(StepCondition::parse("other.x").is_err());
    assert!(StepCondition::parse("steps.a > big").is_err());
}

#[test]
fn check_reports_unknown_references_cycles_and_schema_mismatches() {
    let found = problems(&with(
        r#"
[workflows.bad]
input_schema = { type = "object", properties = { userId = { type = "string" } } }

[[workflows.bad.steps]]
id = "one"
tool = "nope"
input = { a = "{{steps.two.x}}", b = "{{input.user_id}}" }

[[workflows.bad.steps]]
id = "two"
agent = "analyst"
prompt = "{{steps.two.text}} {{steps.ghost}}"

[[workflows.bad.steps]]
id = "three"
template = { s = "{{steps.two.object.summry}}" }
when = "steps.one.x >"

[[workflows.bad.steps]]
id = "two"
template = 1

[[workflows.bad.steps]]
id = "four"
tool = "fetch"
agent = "analyst"

[[workflows.bad.steps]]
id = "five"
template = {}
prompt = "x"
"#,
    ));
    let text = found.join("\n");
    for expected in [
        "unknown tool \"nope\"",
        "steps.two is not an earlier step",
        "input.user_id is not in the workflow's input_schema",
        "step \"two\" refers to its own output (a cycle)",
        "steps.ghost is not an earlier step",
        "steps.two.object.summry is not in the agent's output_schema",
        "is not a JSON literal",
        "step id \"two\" is used twice",
        "a step has exactly one kind, found tool and agent",
        "only agent steps take prompt",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(found.iter().all(|problem| problem.contains("workflows.bad")), "{text}");

    let empty = problems(&with("[workflows.none]\nsteps = []\n"));
    assert!(empty[0].contains("at least one step"), "{empty:?}");
    let unknown_key = problems(&with("[workflows.w]\nstep = []\n"));
    assert!(unknown_key.join("\n").contains("did you mean \"steps\""), "{unknown_key:?}");
}
