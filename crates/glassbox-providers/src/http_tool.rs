//! Tools declared in the configuration that call an HTTP endpoint.
//!
//! `GET` sends the top-level scalar arguments (strings, numbers, booleans) as query parameters
//! and drops nested values; every other method sends the arguments as a JSON body. A JSON
//! response (by `Content-Type`) is the tool's result as is; any other body is wrapped as
//! `{"text": ..}`. A non-2xx status is a failed tool call whose message carries the status and
//! the start of the body, so the model can react to it.

use std::time::Duration;

use async_trait::async_trait;
use glassbox_core::{Tool, ToolError, ToolSpec};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::Value;

use crate::BuildError;
use crate::http::{build_client, extend_headers, parse_url, truncate};

/// Larger responses are refused rather than fed to a model.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// How much of an error body goes into the failure message.
const MAX_ERROR_BODY_CHARS: usize = 500;

/// The HTTP method of an [`HttpTool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A tool whose body is one HTTP request.
pub struct HttpTool {
    spec: ToolSpec,
    client: reqwest::Client,
    url: reqwest::Url,
    method: HttpMethod,
    timeout: Duration,
}

impl HttpTool {
    /// `headers` go on every request (their values are treated as secrets and never shown);
    /// `timeout` bounds the whole request including reading the response.
    pub fn new(
        spec: ToolSpec,
        url: String,
        method: HttpMethod,
        timeout: Duration,
        headers: Vec<(String, String)>,
    ) -> Result<Self, BuildError> {
        let url = parse_url(&url)?;
        let mut default_headers = HeaderMap::new();
        extend_headers(&mut default_headers, &headers)?;
        let client = build_client(Some(timeout), default_headers)?;
        Ok(Self { spec, client, url, method, timeout })
    }

    fn failed(&self, message: String, source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>) -> ToolError {
        ToolError::Failed { tool: self.spec.name.clone(), message, source }
    }

    fn transport_error(&self, error: reqwest::Error) -> ToolError {
        if error.is_timeout() {
            ToolError::Timeout { tool: self.spec.name.clone() }
        } else {
            let message = format!("request to {} failed", self.url_for_messages());
            self.failed(message, Some(Box::new(error)))
        }
    }

    /// The URL without its query, which may hold tokens.
    fn url_for_messages(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        url.to_string()
    }

    async fn send(&self, arguments: Value) -> Result<Value, ToolError> {
        let mut request = match self.method {
            HttpMethod::Get => {
                let mut url = self.url.clone();
                if let Value::Object(arguments) = &arguments {
                    let mut scalars =
                        arguments.iter().filter_map(|(name, value)| Some((name, query_value(value)?))).peekable();
                    if scalars.peek().is_some() {
                        let mut pairs = url.query_pairs_mut();
                        for (name, value) in scalars {
                            pairs.append_pair(name, &value);
                        }
                    }
                }
                self.client.get(url)
            }
            method => self.client.request(method.as_reqwest(), self.url.clone()).json(&arguments),
        };
        request = request.timeout(self.timeout);
        let mut response = request.send().await.map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|content_type| content_type.to_ascii_lowercase().contains("json"));

        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| self.transport_error(error))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(self.failed(format!("response is larger than {MAX_RESPONSE_BYTES} bytes"), None));
            }
            body.extend_from_slice(&chunk);
        }

        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let message = format!("HTTP {}: {}", status.as_u16(), truncate(text.trim(), MAX_ERROR_BODY_CHARS));
            return Err(self.failed(message, None));
        }
        if is_json {
            return serde_json::from_slice(&body)
                .map_err(|error| self.failed("response is not valid JSON".to_owned(), Some(Box::new(error))));
        }
        Ok(serde_json::json!({ "text": String::from_utf8_lossy(&body) }))
    }
}

/// A top-level scalar argument as a query-parameter value; nested values are not sent.
fn query_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[async_trait]
impl Tool for HttpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        let outcome = self.send(arguments).await;
        if let Err(error) = &outcome {
            tracing::debug!(tool = %self.spec.name, error = %error, "http tool failed");
        }
        outcome
    }
}
