//! End-to-end tests of the server: real HTTP on 127.0.0.1:0, real providers, and the mock LLM
//! server speaking the OpenAI and Anthropic wire formats.

mod agents_api;
mod errors;
mod helpers;
mod lifecycle;
mod providers_e2e;
