//! The agent loop against a scripted in-process model: tool calling, step limits, structured
//! output and its repair, streaming, cancellation; processors, guardrails, tripwires and
//! per-request budgets around it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_loop;
mod pipeline;
mod scripted;
mod workflows;
