//! Integration tests of glassbox-config, one binary.
//!
//! - `valid`: files that load, defaults, file order, `load` from disk
//! - `problems`: one kind of problem at a time, with its exact position and message
//! - `many_problems`: several problems in one file, all reported, in file order
//! - `interpolation`: `${VAR}`, defaults, escapes, unset variables
//! - `schemas`: tool parameters and output schemas
//! - `pipeline`: agents' processors, guardrails, budgets and `on_block`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dashboard;
mod access;
mod interpolation;
mod many_problems;
mod pipeline;
mod online_evals;
mod problems;
mod schemas;
mod valid;
mod workflows;

use glassbox_config::{Config, ConfigError, parse};

/// The environment every test sees.
pub fn test_env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some("sk-test".to_owned()),
        "EMPTY" => Some(String::new()),
        "HOST" => Some("127.0.0.1".to_owned()),
        "TOKEN" => Some("secret-token".to_owned()),
        _ => None,
    }
}

/// Parses a file that must be valid.
#[track_caller]
pub fn config(source: &str) -> Config {
    match parse(source, "glassbox.toml", &test_env) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid config, got:\n{error}"),
    }
}

/// Parses a file that must be invalid; its problems as `line:column: message`.
#[track_caller]
pub fn problems(source: &str) -> Vec<String> {
    match parse(source, "glassbox.toml", &test_env) {
        Ok(config) => panic!("expected problems, got a valid config: {config:#?}"),
        Err(ConfigError::Invalid(diagnostics)) => {
            for diagnostic in &diagnostics {
                assert_eq!(diagnostic.origin, "glassbox.toml");
            }
            diagnostics.iter().map(|d| format!("{}:{}: {}", d.line, d.column, d.message)).collect()
        }
        Err(other) => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

/// Parses a file with exactly one problem.
#[track_caller]
pub fn problem(source: &str) -> String {
    let mut all = problems(source);
    assert_eq!(all.len(), 1, "expected exactly one problem, got {all:#?}");
    all.remove(0)
}

/// The smallest valid model and agent, for tests about other sections.
pub const BASE: &str = r#"
[models.mock]
provider = "mock"
model = "echo"

[agents.a]
instructions = "be brief"
model = "mock"
"#;
