//! End-to-end tests of the server: real HTTP on 127.0.0.1:0, real providers, and the mock LLM
//! server speaking the OpenAI and Anthropic wire formats.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod agents_api;
mod dashboard;
mod direct_layer;
mod errors;
mod container;
mod evals;
mod faults;
mod faults_clients;
mod faults_kill;
mod faults_outage;
mod faults_provider;
mod helpers;
mod journal;
mod lifecycle;
mod logs;
mod metrics;
mod openai_facade;
mod openapi;
mod otlp;
mod pipeline;
mod providers_e2e;
mod schemathesis;
mod telemetry;
mod workflows_api;
mod workflows_faults;
