//! The LLM judge against the mock LLM server, over the real OpenAI wire format: the verdict
//! is requested with a JSON schema, parsed, and a malformed verdict is an error.

use std::sync::Arc;
use std::time::Duration;

use glassbox_core::LanguageModel;
use glassbox_evals::ScorerSpec;
use glassbox_mockllm::{MockLlm, Reply};
use glassbox_providers::{HttpModelSettings, OpenAiModel};
use serde_json::json;

use crate::support::input;

fn judge_model(mock: &MockLlm) -> Arc<dyn LanguageModel> {
    Arc::new(
        OpenAiModel::new(HttpModelSettings {
            model: "judge-model".to_owned(),
            base_url: mock.openai_base_url(),
            api_key: Some("sk-test".to_owned()),
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_retries: 0,
            headers: Vec::new(),
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn judge_scores_with_a_rubric_and_structured_output() {
    glassbox_providers::install_crypto_provider();
    let mock = MockLlm::start().await.unwrap();
    let model = judge_model(&mock);
    let spec = ScorerSpec::from_json(
        &json!({ "type": "llm_judge", "model": "judge", "rubric": "The answer is polite and names the capital." }),
        "judge",
    )
    .unwrap();
    let scorer = spec.build("judge", &|id| (id == "judge").then(|| Arc::clone(&model))).unwrap();
    assert_eq!(scorer.threshold, 0.5);
    let mut case = input("Paris, of course!");
    case.expected = Some(json!("Paris"));

    mock.push(Reply::Text(r#"{"score": 0.8, "reason": "polite and correct"}"#.into()));
    let outcome = scorer.score(&case, Duration::from_secs(10)).await;
    assert!(outcome.passed, "{outcome:?}");
    assert_eq!(outcome.value, Some(0.8));
    assert_eq!(outcome.reason, "judge: polite and correct");

    // What the judge was asked: the rubric, the answer, the reference, a JSON schema verdict.
    let request = &mock.requests()[0].body;
    let prompt = request["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("names the capital") && prompt.contains("Paris, of course!") && prompt.contains("Reference answer:\nParis"), "{prompt}");
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert_eq!(request["response_format"]["json_schema"]["schema"]["required"], json!(["score", "reason"]));

    mock.push(Reply::Text(r#"{"score": 0.2, "reason": "rude"}"#.into()));
    let outcome = scorer.score(&case, Duration::from_secs(10)).await;
    assert!(!outcome.passed && outcome.value == Some(0.2), "{outcome:?}");

    for bad in [r#"{"score": 3, "reason": "x"}"#, "I think it is fine", r#"{"reason": "no score"}"#] {
        mock.push(Reply::Text(bad.into()));
        let outcome = scorer.score(&case, Duration::from_secs(10)).await;
        assert!(!outcome.passed && outcome.value.is_none(), "{bad}: {outcome:?}");
        assert!(outcome.error.as_deref().unwrap().starts_with("judge model failed"), "{outcome:?}");
    }

    mock.push(Reply::Fault(glassbox_mockllm::Fault::ServerError));
    let outcome = scorer.score(&case, Duration::from_secs(10)).await;
    assert!(outcome.error.as_deref().unwrap().contains("status 500"), "{outcome:?}");
    mock.shutdown().await;
}
