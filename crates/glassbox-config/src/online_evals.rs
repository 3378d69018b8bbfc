//! `[online_evals.<agent>]`: scorers that run after an agent's production requests.
//!
//! ```toml
//! [online_evals.assistant]          # an agent id of [agents]
//! sample_rate = 0.1                 # share of requests scored, 0.0..=1.0 (default 1.0);
//!                                   #   sampled by trace id, so a trace is all in or all out
//! timeout_ms = 30000                # one scorer on one request (default 30000)
//! scorers = [                       # tables with `type` and the type's keys (see glassbox-evals)
//!   { type = "no_pii" },
//!   { type = "llm_judge", model = "openai", rubric = "Polite and on topic", threshold = 0.5 },
//! ]
//! ```
//!
//! This crate checks the shape (the agent exists, every scorer is a table with a `type`); the
//! scorer's own keys are checked by `glassbox-evals` when the server builds them, and by
//! `glassbox check`.

use std::time::Duration;

use serde_json::Value;

use crate::reader::{Cx, Field};

/// The scorers attached to one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineEvalConfig {
    /// The id of an agent in `Config::agents`.
    pub agent: String,
    pub sample_rate: f64,
    pub timeout: Duration,
    /// Scorer tables as JSON, `type` included.
    pub scorers: Vec<Value>,
}

const KEYS: &[&str] = &["sample_rate", "timeout_ms", "scorers"];

pub(crate) fn online_evals(cx: &mut Cx<'_>, field: &Field<'_>, agent_ids: &[&str]) -> Option<Vec<OnlineEvalConfig>> {
    let entries = cx.entries(field)?;
    let mut all = Vec::with_capacity(entries.len());
    let mut ok = true;
    for entry in &entries {
        if !agent_ids.contains(&entry.key) {
            cx.error(entry.key_offset, format!("{}: unknown agent {:?} (scorers attach to an agent of [agents])", entry.path, entry.key));
            ok = false;
            continue;
        }
        match agent_evals(cx, entry) {
            Some(config) => all.push(config),
            None => ok = false,
        }
    }
    ok.then_some(all)
}

fn agent_evals(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<OnlineEvalConfig> {
    let mut section = cx.section(field, KEYS)?;
    let sample_rate = match section.get("sample_rate") {
        Some(rate) => cx.float(&rate, 0.0..=1.0),
        None => Some(1.0),
    };
    let timeout = match section.get("timeout_ms") {
        Some(timeout) => cx.integer(&timeout, 1..=86_400_000).and_then(|ms| u64::try_from(ms).ok()).map(Duration::from_millis),
        None => Some(Duration::from_secs(30)),
    };
    let scorers = section.require(cx, "scorers").and_then(|scorers| {
        let elements = cx.array(&scorers)?;
        let mut tables = Vec::with_capacity(elements.len());
        let mut ok = true;
        for element in &elements {
            let mut origins = Vec::new();
            match crate::schema::to_json(cx, element, String::new(), &mut origins) {
                Some(value @ Value::Object(_)) if value.get("type").is_some_and(Value::is_string) => tables.push(value),
                Some(_) => {
                    cx.error(element.offset(), format!("{}: a scorer is a table with a string `type`", element.path));
                    ok = false;
                }
                None => ok = false,
            }
        }
        if tables.is_empty() && ok {
            cx.error(scorers.offset(), format!("{}: give at least one scorer", scorers.path));
            ok = false;
        }
        ok.then_some(tables)
    });
    section.finish(cx);
    Some(OnlineEvalConfig { agent: field.key.to_owned(), sample_rate: sample_rate?, timeout: timeout?, scorers: scorers? })
}
