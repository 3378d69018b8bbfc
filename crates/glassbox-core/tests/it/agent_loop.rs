use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use glassbox_core::{
    Agent, AgentChunk, AgentError, FinishReason, FnTool, GenerateOptions, LanguageModel, Message, ProviderError,
    ToolError,
};
use serde_json::{Value, json};

use crate::scripted::{ScriptedModel, text, tool_calls};

fn object_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

fn agent_with(model: Arc<ScriptedModel>) -> glassbox_core::AgentBuilder {
    Agent::builder("helper", model as Arc<dyn LanguageModel>).instructions("Be brief.")
}

#[tokio::test]
async fn plain_answer_sends_instructions_then_history() {
    let model = ScriptedModel::new([text("Hi there")]);
    let agent = agent_with(model.clone()).build().unwrap();
    let output = agent
        .generate(vec![Message::user("earlier"), Message::assistant("ok"), Message::user("hello")], GenerateOptions::default())
        .await
        .unwrap();
    assert_eq!(output.text, "Hi there");
    assert_eq!(output.finish_reason, FinishReason::Stop);
    assert_eq!(output.usage.input_tokens, 10);
    assert_eq!(output.model_calls, 1);
    let requests = model.requests();
    assert_eq!(
        requests[0].messages,
        vec![Message::system("Be brief."), Message::user("earlier"), Message::assistant("ok"), Message::user("hello")]
    );
}

#[tokio::test]
async fn tools_of_one_step_run_concurrently_and_results_go_back() {
    // Each tool waits for the other: if they ran one after another the run would never finish.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let make_tool = |name: &'static str| {
        let barrier = Arc::clone(&barrier);
        FnTool::new(name, "test tool", object_schema(), move |args| {
            let barrier = Arc::clone(&barrier);
            async move {
                barrier.wait().await;
                Ok(json!({"tool": name, "city": args["city"]}))
            }
        })
    };
    let model = ScriptedModel::new([
        tool_calls(&[("c1", "weather", json!({"city": "Oslo"})), ("c2", "time", json!({"city": "Lima"}))]),
        text("Oslo is cold"),
    ]);
    let agent = agent_with(model.clone()).tool(make_tool("weather")).tool(make_tool("time")).build().unwrap();
    let output = tokio::time::timeout(Duration::from_secs(5), agent.generate(vec![Message::user("q")], GenerateOptions::default()))
        .await
        .expect("tools of one step must run concurrently")
        .unwrap();
    assert_eq!(output.text, "Oslo is cold");
    assert_eq!(output.tool_calls.len(), 2);
    assert_eq!(output.tool_results[1].result, json!({"tool": "time", "city": "Lima"}));
    assert_eq!(output.usage.input_tokens, 30, "usage is summed over both calls");
    assert_eq!(output.usage.output_tokens, 12);
    let second = &model.requests()[1];
    assert_eq!(second.tools.len(), 2);
    let tail = &second.messages[2..];
    assert!(matches!(&tail[0], Message::Assistant { tool_calls, .. } if tool_calls.len() == 2));
    assert!(matches!(&tail[1], Message::Tool { call_id, is_error: false, .. } if call_id == "c1"));
    assert!(matches!(&tail[2], Message::Tool { call_id, content, .. } if call_id == "c2" && content.contains("Lima")));
}

#[tokio::test]
async fn invalid_arguments_and_unknown_tools_are_reported_to_the_model() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let tool = FnTool::new("weather", "w", object_schema(), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(json!({})) }
    });
    let failing = FnTool::new("broken", "b", json!({"type": "object"}), |_| async { Err(ToolError::failed("broken", "disk on fire")) });
    let model = ScriptedModel::new([
        tool_calls(&[("c1", "weather", json!({"city": 5})), ("c2", "nope", json!({})), ("c3", "broken", json!({}))]),
        text("sorry"),
    ]);
    let agent = agent_with(model.clone()).tool(tool).tool(failing).build().unwrap();
    let output = agent.generate(vec![Message::user("q")], GenerateOptions::default()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a tool never runs with arguments that break its schema");
    assert!(output.tool_results.iter().all(|result| result.is_error));
    let errors: Vec<String> = output.tool_results.iter().map(|result| result.result["error"].as_str().unwrap().to_owned()).collect();
    assert!(errors[0].contains("invalid arguments for tool `weather`"), "{}", errors[0]);
    assert!(errors[1].contains("does not have"), "{}", errors[1]);
    assert!(errors[2].contains("disk on fire"), "{}", errors[2]);
}

#[tokio::test]
async fn the_step_limit_stops_a_model_that_keeps_calling_tools() {
    let tool = FnTool::new("ping", "p", json!({"type": "object"}), |_| async { Ok(json!("pong")) });
    let model = ScriptedModel::new((0..3).map(|i| tool_calls(&[(&format!("c{i}"), "ping", json!({}))])));
    let agent = agent_with(model.clone()).tool(tool).max_steps(10).build().unwrap();
    let options = GenerateOptions { max_steps: Some(3), ..GenerateOptions::default() };
    let output = agent.generate(vec![Message::user("q")], options).await.unwrap();
    assert_eq!(output.finish_reason, FinishReason::MaxSteps);
    assert_eq!(model.requests().len(), 3);
    assert_eq!(output.tool_results.len(), 3);
}

#[tokio::test]
async fn structured_output_is_parsed_and_validated() {
    let model = ScriptedModel::new([text("```json\n{\"city\": \"Oslo\"}\n```")]);
    let agent = agent_with(model.clone()).output_schema(object_schema()).build().unwrap();
    let output = agent.generate(vec![Message::user("q")], GenerateOptions::default()).await.unwrap();
    assert_eq!(output.object, Some(json!({"city": "Oslo"})));
    let schema = model.requests()[0].output_schema.clone().unwrap();
    assert_eq!(schema.name, "helper_output");
}

#[tokio::test]
async fn structured_output_gets_one_repair_attempt() {
    let model = ScriptedModel::new([text("Oslo, I think"), text("{\"city\": \"Oslo\"}")]);
    let agent = agent_with(model.clone()).build().unwrap();
    let options = GenerateOptions { output_schema: Some(object_schema()), ..GenerateOptions::default() };
    let output = agent.generate(vec![Message::user("q")], options).await.unwrap();
    assert_eq!(output.object, Some(json!({"city": "Oslo"})));
    assert_eq!(output.model_calls, 2);
    assert_eq!(output.usage.input_tokens, 20);
    let repair = model.requests()[1].messages.last().cloned().unwrap();
    assert!(matches!(repair, Message::User { text } if text.contains("not valid") && text.contains("\"city\"")));
}

#[tokio::test]
async fn structured_output_fails_clearly_after_the_repair_attempt() {
    let model = ScriptedModel::new([text("{\"city\": 1}"), text("still {\"town\": 2}")]);
    let agent = agent_with(model).output_schema(object_schema()).build().unwrap();
    let error = agent.generate(vec![Message::user("q")], GenerateOptions::default()).await.unwrap_err();
    match error {
        AgentError::StructuredOutput { message, text } => {
            assert!(message.contains("not JSON"), "{message}");
            assert_eq!(text, "still {\"town\": 2}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_invalid_request_schema_is_refused_before_any_model_call() {
    let model = ScriptedModel::new([]);
    let agent = agent_with(model.clone()).build().unwrap();
    let options = GenerateOptions { output_schema: Some(json!({"type": "no-such-type"})), ..GenerateOptions::default() };
    let error = agent.generate(vec![Message::user("q")], options).await.unwrap_err();
    assert!(matches!(error, AgentError::InvalidOutputSchema { .. }), "{error:?}");
    assert!(model.requests().is_empty());
    let error = agent.generate(Vec::new(), GenerateOptions::default()).await.unwrap_err();
    assert!(matches!(error, AgentError::EmptyConversation));
}

#[tokio::test]
async fn provider_errors_end_the_run_with_their_type() {
    let model = ScriptedModel::failing(ProviderError::Upstream { status: 503, message: "overloaded".into() });
    let agent = agent_with(model).build().unwrap();
    let error = agent.generate(vec![Message::user("q")], GenerateOptions::default()).await.unwrap_err();
    assert_eq!(error.kind(), "provider_error");
}

#[tokio::test]
async fn streaming_yields_deltas_tool_events_and_a_final_chunk() {
    let tool = FnTool::new("ping", "p", json!({"type": "object"}), |_| async { Ok(json!("pong")) });
    let model = ScriptedModel::new([tool_calls(&[("c1", "ping", json!({}))]), text("all done now")]);
    let agent = agent_with(model).tool(tool).build().unwrap();
    let chunks: Vec<AgentChunk> =
        agent.stream(vec![Message::user("q")], GenerateOptions::default()).map(|chunk| chunk.unwrap()).collect().await;
    let kinds: Vec<&str> = chunks
        .iter()
        .map(|chunk| match chunk {
            AgentChunk::TextDelta(_) => "text",
            AgentChunk::ToolCall(_) => "tool-call",
            AgentChunk::ToolResult(_) => "tool-result",
            AgentChunk::StepFinish { .. } => "step",
            AgentChunk::Finish(_) => "finish",
            AgentChunk::Tripwire(_) => "tripwire",
        })
        .collect();
    assert_eq!(kinds, ["step", "tool-call", "tool-result", "text", "text", "text", "step", "finish"]);
    let AgentChunk::Finish(output) = chunks.last().unwrap() else { unreachable!() };
    assert_eq!(output.text, "all done now");
}

#[tokio::test]
async fn dropping_the_stream_cancels_running_tools() {
    let finished = Arc::new(AtomicBool::new(false));
    let started = Arc::new(tokio::sync::Notify::new());
    let (flag, notify) = (Arc::clone(&finished), Arc::clone(&started));
    let slow = FnTool::new("slow", "s", json!({"type": "object"}), move |_| {
        let (flag, notify) = (Arc::clone(&flag), Arc::clone(&notify));
        async move {
            notify.notify_one();
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(json!({}))
        }
    });
    let model = ScriptedModel::new([tool_calls(&[("c1", "slow", json!({}))]), text("never")]);
    let agent = agent_with(model.clone()).tool(slow).build().unwrap();
    let mut stream = agent.stream(vec![Message::user("q")], GenerateOptions::default());
    let driver = tokio::spawn(async move { while stream.next().await.is_some() {} });
    started.notified().await;
    driver.abort();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!finished.load(Ordering::SeqCst), "the tool must stop when the run is dropped");
    assert_eq!(model.requests().len(), 1, "no model call after cancellation");
}
