//! Integration tests of glassbox-evals: one binary, a module per concern.
//!
//! - `scorers`: every built-in scorer with passing and failing cases.
//! - `judge`: the LLM judge against the mock LLM server (real OpenAI wire format).
//! - `replay`: record a suite against the mock provider, replay it, miss with a diff.
//! - `reports`: JSON round trip, JUnit validated against the JUnit schema, Markdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod judge;
mod parsing;
mod replay;
mod reports;
mod scorers;
mod support;
