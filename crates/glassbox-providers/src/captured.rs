//! Decoding a captured streamed response body offline, exactly as a live stream is decoded.
//!
//! A live stream goes bytes → server-sent events (`eventsource-stream`) → the provider's
//! decoder → [`ModelEvent`]s, with deadlines and retries around it (`http`). This module runs
//! the same two parsing stages over bytes already in memory, split into the chunks the network
//! would have delivered, with no deadlines and no I/O. It exists for the fuzz targets
//! (`fuzz/`), for regression tests of captures that once broke a stream, and for anyone who
//! wants to check what Glassbox makes of a recorded provider stream.
//!
//! The outcome matches the live path's: every event the decoder produced, then either the
//! assembled response (after the end marker, or at the end of a body that is already complete)
//! or the error that would have ended the stream.

use std::collections::VecDeque;
use std::convert::Infallible;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{FutureExt, StreamExt};
use glassbox_core::{ModelEvent, ModelResponse, ProviderError};

use crate::http::{SseDecoder, sse_error};

/// Which provider's stream format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// OpenAI-compatible chat completion chunks ending with `data: [DONE]`.
    OpenAi,
    /// Anthropic messages events ending with `message_stop`; `structured` strips a Markdown
    /// code fence from the final text, as for a request with an output schema.
    Anthropic { structured: bool },
}

/// What a stream made of a captured body.
#[derive(Debug)]
pub struct DecodedStream {
    /// Every event yielded before the end, in order (text and tool-call deltas).
    pub events: Vec<ModelEvent>,
    /// The assembled response, or the error that ended the stream.
    pub outcome: Result<ModelResponse, ProviderError>,
}

/// Decodes `chunks` (the body as the network delivered it) as a stream of `format` whose
/// request named `model`.
pub fn decode_stream<I>(format: StreamFormat, model: &str, chunks: I) -> DecodedStream
where
    I: IntoIterator<Item = Bytes>,
{
    match format {
        StreamFormat::OpenAi => decode(crate::openai::StreamDecoder::new(model), chunks),
        StreamFormat::Anthropic { structured } => decode(crate::anthropic::StreamDecoder::new(model, structured), chunks),
    }
}

fn decode<D: SseDecoder, I: IntoIterator<Item = Bytes>>(mut decoder: D, chunks: I) -> DecodedStream {
    let mut events = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, Infallible>)).eventsource();
    let mut pending = VecDeque::new();
    let outcome = loop {
        // The source is an in-memory iterator: every poll is ready, so `now_or_never` is the
        // whole executor.
        let next = match events.next().now_or_never() {
            Some(next) => next,
            None => {
                break Err(ProviderError::MalformedResponse {
                    message: "the captured stream did not make progress".to_owned(),
                    source: None,
                });
            }
        };
        match next {
            // The same rule as the live stream: a body that ends without the end marker is
            // accepted only when the decoder already holds the whole answer.
            None if decoder.is_complete() => break decoder.finish(),
            None => break Err(ProviderError::StreamInterrupted { source: None }),
            Some(Err(error)) => break Err(sse_error(error)),
            Some(Ok(event)) => match decoder.on_event(&event, &mut pending) {
                Ok(true) => break decoder.finish(),
                Ok(false) => {}
                Err(error) => break Err(error),
            },
        }
    };
    DecodedStream { events: pending.into_iter().collect(), outcome }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use glassbox_core::FinishReason;

    use super::*;

    fn body(text: &str) -> Vec<Bytes> {
        vec![Bytes::from(text.to_owned())]
    }

    #[test]
    fn openai_body_decodes_to_deltas_and_the_response() {
        let decoded = decode_stream(
            StreamFormat::OpenAi,
            "gpt",
            body(concat!(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            )),
        );
        assert_eq!(decoded.events, [ModelEvent::TextDelta("Hel".into()), ModelEvent::TextDelta("lo".into())]);
        let response = decoded.outcome.unwrap();
        assert_eq!(response.text, "Hello");
        assert_eq!(response.finish_reason, FinishReason::Stop);
    }

    /// The fuzz targets' seed captures (real mock-server streams), delivered byte by byte:
    /// each ends as its name says, whatever the chunking.
    #[test]
    fn seed_captures_decode_the_same_byte_by_byte() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let cases = [
            ("sse_openai/text.sse", StreamFormat::OpenAi, "ok"),
            ("sse_openai/crlf.sse", StreamFormat::OpenAi, "ok"),
            ("sse_openai/tool_call.sse", StreamFormat::OpenAi, "ok"),
            ("sse_openai/no_done.sse", StreamFormat::OpenAi, "ok"),
            ("sse_openai/cut.sse", StreamFormat::OpenAi, "interrupted"),
            ("sse_openai/malformed.sse", StreamFormat::OpenAi, "malformed"),
            ("sse_openai/error_chunk.sse", StreamFormat::OpenAi, "upstream"),
            ("sse_anthropic/text.sse", StreamFormat::Anthropic { structured: false }, "ok"),
            ("sse_anthropic/tool_use.sse", StreamFormat::Anthropic { structured: false }, "ok"),
            ("sse_anthropic/fenced_no_stop.sse", StreamFormat::Anthropic { structured: true }, "ok"),
            ("sse_anthropic/cut.sse", StreamFormat::Anthropic { structured: false }, "interrupted"),
            ("sse_anthropic/malformed.sse", StreamFormat::Anthropic { structured: false }, "malformed"),
            ("sse_anthropic/error.sse", StreamFormat::Anthropic { structured: false }, "upstream"),
        ];
        for (file, format, expected) in cases {
            let body = std::fs::read(corpus.join(file)).unwrap();
            let whole = decode_stream(format, "m", [Bytes::from(body.clone())]);
            let bytes = decode_stream(format, "m", body.iter().map(|byte| Bytes::copy_from_slice(&[*byte])));
            assert_eq!(format!("{:?}", whole.outcome), format!("{:?}", bytes.outcome), "{file}");
            assert_eq!(whole.events, bytes.events, "{file}");
            let outcome = match &whole.outcome {
                Ok(_) => "ok",
                Err(ProviderError::StreamInterrupted { .. }) => "interrupted",
                Err(ProviderError::MalformedResponse { .. }) => "malformed",
                Err(ProviderError::Upstream { .. }) => "upstream",
                Err(other) => panic!("{file}: {other:?}"),
            };
            assert_eq!(outcome, expected, "{file}: {:?}", whole.outcome);
        }
    }

    #[test]
    fn a_body_cut_before_the_end_is_interrupted() {
        let decoded = decode_stream(
            StreamFormat::Anthropic { structured: false },
            "claude",
            body("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n\n"),
        );
        assert_eq!(decoded.events, [ModelEvent::TextDelta("Hi".into())]);
        assert!(matches!(decoded.outcome, Err(ProviderError::StreamInterrupted { .. })), "{:?}", decoded.outcome);
    }
}
