//! The Anthropic messages stream (server-sent events, `message_stop`) on arbitrary bodies, as
//! a plain answer and as a structured one (code fence stripped): see `sse.rs` for the
//! properties checked.

#![no_main]

use glassbox_providers::StreamFormat;
use libfuzzer_sys::fuzz_target;

mod sse;

fuzz_target!(|body: &[u8]| {
    sse::check(StreamFormat::Anthropic { structured: false }, body);
    sse::check(StreamFormat::Anthropic { structured: true }, body);
});
