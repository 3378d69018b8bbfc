//! Glassbox's evals: scorers, suites, record/replay and reports.
//!
//! - [`scorer`]: the [`Scorer`] trait (implement it for custom scorers) and
//!   [`ConfiguredScorer`], a scorer with its name and pass threshold.
//! - [`scorers`]: the built-in scorers and their TOML/JSON configuration ([`ScorerSpec`]).
//! - [`suite`]: suite files (`evals/*.toml`) and JSONL datasets.
//! - [`recording`]: record/replay of model and tool calls as `LanguageModel` / `Tool` wrappers.
//! - [`runner`]: runs a suite against a [`Targets`] implementation and applies the gate.
//! - [`report`]: the run's report as JSON, JUnit XML, Markdown and a terminal table.
//! - [`online`]: scorers after production requests, sampled by trace id.
//!
//! The crate knows nothing of HTTP or of glassbox.toml: the server resolves targets and
//! models from the config ([`Targets`]) and hands them in.

pub mod diff;
pub mod online;
pub mod progress;
pub mod recording;
pub mod report;
pub mod runner;
pub mod scorer;
pub mod scorers;
pub mod suite;

pub use report::Report;
pub use runner::{Layer, Mode, Progress, RunError, Targets, run_suite};
pub use scorer::{ConfiguredScorer, Outcome, Score, ScoreInput, Scorer, ScorerError};
pub use scorers::ScorerSpec;
pub use suite::{Suite, Target};

/// An error and its causes on one line, `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's message; say it once.
        if !message.ends_with(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}
