//! Integration tests of `glassbox-providers`, one binary with a module per area:
//!
//! - `openai`, `anthropic`: the HTTP model clients against the real mock LLM server
//!   (`glassbox-mockllm`) on 127.0.0.1: plain and streamed answers, tool calls, request bodies,
//!   and every injected fault mapped to its `ProviderError`, with retries. The scenarios both
//!   wire formats share live in `scenarios`; each module runs them for its format and adds its
//!   own request-shape tests.
//! - `mock`: the in-process deterministic `mock` provider.
//! - `http_tool`: config-declared HTTP tools against a small axum server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
#[macro_use]
mod scenarios;

mod anthropic;
mod http_tool;
mod mock;
mod openai;
