//! Shared by the provider stream targets: decodes a body as the network might deliver it and
//! checks what must hold whatever the bytes are.

use bytes::Bytes;
use glassbox_core::ModelEvent;
use glassbox_providers::{DecodedStream, StreamFormat, decode_stream};
use serde_json::Value;

/// Decodes `body` whole, byte by byte, and in 7-byte chunks; the outcome must not depend on
/// where the network split the body (a CRLF or a UTF-8 character cut in two, say).
pub fn check(format: StreamFormat, body: &[u8]) {
    let whole = decode_stream(format, "fuzz-model", [Bytes::copy_from_slice(body)]);
    let byte_by_byte = decode_stream(format, "fuzz-model", body.iter().map(|byte| Bytes::copy_from_slice(&[*byte])));
    let sevens = decode_stream(format, "fuzz-model", body.chunks(7).map(Bytes::copy_from_slice));
    let summary = |decoded: &DecodedStream| format!("{:?} {:?}", decoded.events, decoded.outcome);
    assert_eq!(summary(&whole), summary(&byte_by_byte), "byte-by-byte delivery changes the outcome");
    assert_eq!(summary(&whole), summary(&sevens), "7-byte chunks change the outcome");
    check_response(format, &whole);
}

/// A completed stream's response is what its deltas said: the text is the text deltas joined
/// (before a structured answer's code fence is stripped), and each tool call has the id and
/// name of its first delta and the arguments its fragments spell.
fn check_response(format: StreamFormat, decoded: &DecodedStream) {
    let Ok(response) = &decoded.outcome else { return };
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for event in &decoded.events {
        match event {
            ModelEvent::TextDelta(delta) => text.push_str(delta),
            ModelEvent::ToolCallDelta { index, id, name, arguments_delta } => {
                if *index == calls.len() {
                    let id = id.clone().expect("a call's first delta has its id");
                    let name = name.clone().expect("a call's first delta has its name");
                    calls.push((id, name, String::new()));
                }
                let call = calls.get_mut(*index).expect("calls are announced in index order");
                call.2.push_str(arguments_delta);
            }
            ModelEvent::Finish(_) => panic!("Finish is the outcome, not a delta"),
        }
    }
    if !matches!(format, StreamFormat::Anthropic { structured: true }) {
        assert_eq!(response.text, text, "the response text is the text deltas joined");
    }
    assert_eq!(response.tool_calls.len(), calls.len(), "every tool call was announced by a delta");
    for (call, (id, name, arguments)) in response.tool_calls.iter().zip(&calls) {
        assert_eq!((&call.id, &call.name), (id, name));
        let spelled: Value =
            if arguments.trim().is_empty() { Value::Object(Default::default()) } else { serde_json::from_str(arguments).expect("accepted arguments parse") };
        assert_eq!(call.arguments, spelled, "the arguments are what the fragments spell");
    }
}
