//! Integration tests: a real mock server on 127.0.0.1:0 driven by a real HTTP client.
//!
//! `openai` and `anthropic` hold the wire formats (plain, streamed, tool calls, usage, default
//! replies); `faults` holds every injected fault as the client sees it; `server` holds the
//! handle's behaviour (script order, recording, latency, shutdown) and the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod faults;
mod helpers;
mod openai;
mod server;
