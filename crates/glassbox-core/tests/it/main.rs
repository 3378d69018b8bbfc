//! The agent loop against a scripted in-process model: tool calling, step limits, structured
//! output and its repair, streaming, cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_loop;
mod scripted;
mod workflows;
