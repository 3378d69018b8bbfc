//! The parts of a model request the mock looks at, read from either wire format.
//!
//! OpenAI chat completions (`POST /v1/chat/completions`):
//! `{model, messages:[{role, content}], stream?, stream_options?:{include_usage},
//! max_completion_tokens? | max_tokens?, tools?:[{type:"function", function:{name, parameters}}]}`,
//! where `content` is a string or an array of parts (`{type:"text", text}` counts, other parts
//! such as images are ignored) and a tool result is a message with role `tool`.
//!
//! Anthropic messages (`POST /v1/messages`): `{model, max_tokens, messages:[{role, content}],
//! system?, stream?, tools?:[{name, input_schema}]}`, where `content` and `system` are a string
//! or an array of blocks (`text` blocks count) and a tool result is a `tool_result` block, whose
//! own `content` is again a string or blocks, inside a user message.
//!
//! Validation is deliberately shallow: it rejects what the real APIs reject outright (no model,
//! no messages, a message that is not an object with a role) so client bugs surface as a 400.

use serde_json::Value;

/// A model request reduced to what the mock needs to answer it.
#[derive(Debug)]
pub(crate) struct Conversation {
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: send a final usage chunk in a stream.
    pub include_usage: bool,
    /// The request's output-token limit, if any; a longer text answer is cut to it.
    pub max_output_tokens: Option<u64>,
    /// Characters of every text in the conversation: system prompt, message texts and tool
    /// results (tool-call arguments, images and tool definitions do not count).
    pub input_chars: usize,
    /// The text of the last user message that has any text (its text parts joined by `\n`);
    /// empty when there is none.
    pub last_user_text: String,
    /// The text of the last tool result, if the conversation has one.
    pub last_tool_result: Option<String>,
    pub first_tool: Option<OfferedTool>,
}

/// The first tool a request offers, with its JSON schema.
#[derive(Debug)]
pub(crate) struct OfferedTool {
    pub name: String,
    pub parameters: Value,
}

impl Conversation {
    /// Reads an OpenAI chat-completions request body; `Err` is the 400 message.
    pub(crate) fn from_openai(body: &Value) -> Result<Conversation, String> {
        let (model, messages) = model_and_messages(body)?;
        let mut conversation = Conversation::new(model, stream_flag(body)?);
        conversation.include_usage =
            body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        conversation.max_output_tokens = body
            .get("max_completion_tokens")
            .and_then(Value::as_u64)
            .or_else(|| body.get("max_tokens").and_then(Value::as_u64));

        for (message_idx, message) in messages.iter().enumerate() {
            let role = role_of(message, message_idx)?;
            let text = message.get("content").and_then(TextContent::read);
            let Some(text) = text else { continue };
            conversation.input_chars += text.n_chars;
            match role {
                "user" if text.has_text => conversation.last_user_text = text.joined,
                "tool" => conversation.last_tool_result = Some(text.joined),
                _ => {}
            }
        }

        conversation.first_tool = body
            .get("tools")
            .and_then(Value::as_array)
            .and_then(|tools| tools.first())
            .and_then(|tool| tool.get("function"))
            .and_then(|function| {
                Some(OfferedTool {
                    name: function.get("name")?.as_str()?.to_owned(),
                    parameters: function.get("parameters").cloned().unwrap_or(Value::Null),
                })
            });
        Ok(conversation)
    }

    /// Reads an Anthropic messages request body; `Err` is the 400 message.
    pub(crate) fn from_anthropic(body: &Value) -> Result<Conversation, String> {
        let (model, messages) = model_and_messages(body)?;
        let max_tokens = body
            .get("max_tokens")
            .ok_or("max_tokens: Field required")?
            .as_u64()
            .ok_or("max_tokens: Input should be a valid integer")?;
        let mut conversation = Conversation::new(model, stream_flag(body)?);
        conversation.max_output_tokens = Some(max_tokens);
        if let Some(system) = body.get("system").and_then(TextContent::read) {
            conversation.input_chars += system.n_chars;
        }

        for (message_idx, message) in messages.iter().enumerate() {
            let role = role_of(message, message_idx)?;
            let Some(content) = message.get("content") else {
                continue;
            };
            if let Some(text) = TextContent::read(content) {
                conversation.input_chars += text.n_chars;
                if role == "user" && text.has_text {
                    conversation.last_user_text = text.joined;
                }
            }
            let tool_results = content
                .as_array()
                .into_iter()
                .flatten()
                .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"));
            for tool_result in tool_results {
                let text = tool_result.get("content").and_then(TextContent::read);
                let text = text.unwrap_or_default();
                conversation.input_chars += text.n_chars;
                conversation.last_tool_result = Some(text.joined);
            }
        }

        conversation.first_tool =
            body.get("tools").and_then(Value::as_array).and_then(|tools| tools.first()).and_then(|tool| {
                Some(OfferedTool {
                    name: tool.get("name")?.as_str()?.to_owned(),
                    parameters: tool.get("input_schema").cloned().unwrap_or(Value::Null),
                })
            });
        Ok(conversation)
    }

    fn new(model: String, stream: bool) -> Conversation {
        Conversation {
            model,
            stream,
            include_usage: false,
            max_output_tokens: None,
            input_chars: 0,
            last_user_text: String::new(),
            last_tool_result: None,
            first_tool: None,
        }
    }
}

fn model_and_messages(body: &Value) -> Result<(String, &Vec<Value>), String> {
    if !body.is_object() {
        return Err("the request body must be a JSON object".to_owned());
    }
    let model =
        body.get("model").ok_or("model: Field required")?.as_str().ok_or("model: Input should be a valid string")?;
    let messages = body
        .get("messages")
        .ok_or("messages: Field required")?
        .as_array()
        .ok_or("messages: Input should be a valid list")?;
    Ok((model.to_owned(), messages))
}

fn stream_flag(body: &Value) -> Result<bool, String> {
    match body.get("stream") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(stream)) => Ok(*stream),
        Some(_) => Err("stream: Input should be a valid boolean".to_owned()),
    }
}

fn role_of(message: &Value, message_idx: usize) -> Result<&str, String> {
    message.get("role").and_then(Value::as_str).ok_or_else(|| format!("messages.{message_idx}.role: Field required"))
}

/// The text inside a `content` value: a string, or the `text` of each part/block in an array.
#[derive(Debug, Default)]
struct TextContent {
    joined: String,
    n_chars: usize,
    /// False for an array without text parts (say, only images or tool results).
    has_text: bool,
}

impl TextContent {
    fn read(content: &Value) -> Option<TextContent> {
        match content {
            Value::String(text) => {
                Some(TextContent { n_chars: text.chars().count(), joined: text.clone(), has_text: true })
            }
            Value::Array(parts) => {
                let mut text_content = TextContent::default();
                let texts = parts.iter().filter_map(|part| {
                    let is_text = part.get("type").and_then(Value::as_str) == Some("text");
                    is_text.then(|| part.get("text").and_then(Value::as_str))?
                });
                for text in texts {
                    if text_content.has_text {
                        text_content.joined.push('\n');
                    }
                    text_content.joined.push_str(text);
                    text_content.n_chars += text.chars().count();
                    text_content.has_text = true;
                }
                Some(text_content)
            }
            _ => None,
        }
    }
}
