//! The REST API: routes grouped by resource, each module exposing `router()`.

pub mod agents;
pub mod body;
pub mod budgets;
pub mod health;
pub mod openai;
pub mod openapi;
pub mod wire;
pub mod workflows;
