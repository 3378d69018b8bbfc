//! The OpenAI-compatible stream (server-sent events of chat completion chunks, `[DONE]`) on
//! arbitrary bodies: see `sse.rs` for the properties checked.

#![no_main]

use glassbox_providers::StreamFormat;
use libfuzzer_sys::fuzz_target;

mod sse;

fuzz_target!(|body: &[u8]| sse::check(StreamFormat::OpenAi, body));
