//! A JSON body extractor whose failures answer in the API's error shape: 413 over the body
//! limit, 408 when the body trickles in slower than the read timeout allows, 400 for
//! malformed JSON, 400 naming the field for a wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, but it accepts a missing `content-type` and names the offending field.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request.extensions().get::<BodyLimit>().map(|limit| limit.0);
        let timeout = request.extensions().get::<BodyReadTimeout>().map(|timeout| timeout.0);
        // A declared length over the limit is refused before reading a byte of it.
        if let Some(limit) = limit {
            let declared = request.headers().get(http::header::CONTENT_LENGTH).and_then(|value| value.to_str().ok());
            if declared.and_then(|value| value.parse::<u64>().ok()).is_some_and(|length| length > limit as u64) {
                return Err(ApiError::BodyTooLarge { limit });
            }
        }
        let read = Bytes::from_request(request, state);
        // Without a deadline a client sending one byte a minute holds its task and buffer
        // forever (slowloris); the router always sets one, a bare handler may not.
        let read = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, read).await {
                Ok(read) => read,
                Err(_elapsed) => return Err(ApiError::BodyTimeout { after: timeout }),
            },
            None => read.await,
        };
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge { limit: limit.unwrap_or_default() }
            } else {
                ApiError::BodyUnreadable
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// The configured body limit, attached to requests so a 413 can say what it is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The configured body read timeout, attached to requests by the router.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub std::time::Duration);

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
                ApiError::MalformedJson { message: inner.to_string() }
            }
            serde_json::error::Category::Data => {
                let field = (path != ".").then_some(path);
                let message = match &field {
                    Some(field) => format!("invalid request body: {field}: {}", strip_position(&inner)),
                    None => format!("invalid request body: {}", strip_position(&inner)),
                };
                ApiError::InvalidBody { message, field }
            }
        }
    })?;
    deserializer.end().map_err(|error| ApiError::MalformedJson { message: error.to_string() })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more to an API caller.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(index) => text[..index].to_owned(),
        None => text,
    }
}
