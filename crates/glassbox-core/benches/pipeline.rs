//! What the built-in deterministic processors and guardrails add to one request with a 4 KB
//! prompt.
//!
//! Prints, for a realistic 4 KB prompt (prose with an e-mail address and a phone number), the
//! time of each processor alone, then `Agent::generate` against an instant in-process model
//! with no pipeline (the baseline) and with the full deterministic pipeline (normalize, length
//! in characters and tokens, PII redaction, injection detection, topic and regex guardrails on
//! the input; PII, regex and length guardrails on the output), and the difference. The
//! exact-tokenizer figure is shown apart: the token limit only runs the tokenizer when the
//! prompt's byte length exceeds the limit.
//!
//! Run: `cargo bench -p glassbox-core --bench pipeline` (`BENCH_MILLIS` per figure, default
//! 1000). No tracing subscriber is installed, so span events cost what `tracing` costs
//! without one; the exporter's cost is the telemetry pipeline's, measured elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use glassbox_core::pii::RedactionMode;
use glassbox_core::pipeline::{
    InjectionDetector, LengthLimit, Normalizer, PiiProcessor, RegexRule, TokenCounter, TopicGuardrail,
};
use glassbox_core::{
    Agent, FinishReason, GenerateOptions, LanguageModel, Message, ModelRequest, ModelResponse, ModelStream,
    PipelineStep, ProviderError, Stage, Strategy, Usage,
};

struct InstantModel;

#[async_trait]
impl LanguageModel for InstantModel {
    fn provider(&self) -> &str {
        "openai"
    }
    fn model_name(&self) -> &str {
        "gpt-4o-mini"
    }
    async fn generate(&self, _request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        Ok(ModelResponse {
            model: "gpt-4o-mini".into(),
            text: "Thanks for the details. I have opened ticket 4821 and we will get back to you within two \
                   business days with a replacement or a refund, whichever you prefer."
                .into(),
            tool_calls: Vec::new(),
            usage: Usage { input_tokens: 900, output_tokens: 40, cached_input_tokens: 0, reasoning_tokens: 0 },
            finish_reason: FinishReason::Stop,
        })
    }
    async fn stream(&self, _request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        Err(ProviderError::Upstream { status: 501, message: "not used".into() })
    }
}

/// About 4 KB of a support request: prose, numbers, one e-mail address, one phone number.
fn prompt_4k() -> String {
    let paragraph = "Hello, I ordered a pair of running shoes three weeks ago (order 118-2231) and they arrived \
        with a torn sole. I would like to return them and get either a replacement in size 42 or a full refund. \
        The package was left at the door and the box was already damaged, so it may have happened in transit. \
        I have photos of the box and of the shoes if you need them. ";
    let mut text = String::from("Subject: damaged delivery\n\n");
    while text.len() < 3900 {
        text.push_str(paragraph);
    }
    text.push_str("\nYou can reach me at jordan.miller@example.com or +1 415 555 2671. Thanks!");
    text
}

fn input_steps() -> Vec<PipelineStep> {
    vec![
        Normalizer::new("normalize", Strategy::Redact).into(),
        LengthLimit::new("length", Strategy::Redact, Some(16_000), Some(8_000), TokenCounter::O200k).into(),
        PiiProcessor::new("pii", Strategy::Redact, RedactionMode::Placeholder, vec![]).into(),
        InjectionDetector::new("injection", Strategy::Block, 0.5).into(),
        TopicGuardrail::new(
            "topic",
            Strategy::Block,
            &["stock tips".into(), "crypto".into(), "medical advice".into()],
            &[],
        )
        .unwrap()
        .into(),
        RegexRule::new("no-internal", Strategy::Block, r"(?i)internal use only", "").unwrap().into(),
    ]
}

fn output_steps() -> Vec<PipelineStep> {
    vec![
        PiiProcessor::new("pii-out", Strategy::Redact, RedactionMode::Placeholder, vec![]).into(),
        RegexRule::new("no-internal-out", Strategy::Block, r"(?i)internal use only", "").unwrap().into(),
        LengthLimit::new("max-output", Strategy::Redact, Some(4000), None, TokenCounter::O200k).into(),
    ]
}

/// This thread's CPU time: unlike wall time, it does not count the time other processes of a
/// busy machine hold the CPU.
fn thread_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Median time per call over batches run for about `budget`: (wall, thread CPU).
fn measure(budget: Duration, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..50 {
        f();
    }
    let started = Instant::now();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    while started.elapsed() < budget || wall.len() < 5 {
        let batch = 200;
        let (wall_started, cpu_started) = (Instant::now(), thread_cpu());
        for _ in 0..batch {
            f();
        }
        cpu.push((thread_cpu() - cpu_started) / batch);
        wall.push(wall_started.elapsed() / batch);
    }
    wall.sort();
    cpu.sort();
    (wall[wall.len() / 2], cpu[cpu.len() / 2])
}

fn micros(duration: Duration) -> String {
    format!("{:>9.2} µs", duration.as_secs_f64() * 1e6)
}

fn both((wall, cpu): (Duration, Duration)) -> String {
    format!("{} wall {} cpu", micros(wall), micros(cpu))
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let budget = Duration::from_millis(std::env::var("BENCH_MILLIS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000));
    let prompt = prompt_4k();
    println!(
        "pipeline benchmark: prompt of {} bytes, median per call (wall time and this thread's CPU time)",
        prompt.len()
    );
    println!();

    let (mut total_wall, mut total_cpu) = (Duration::ZERO, Duration::ZERO);
    for step in input_steps() {
        let PipelineStep::Sync(processor) = &step else { continue };
        let time = measure(budget, || {
            let mut text = prompt.clone();
            black_box(processor.process(&mut text, Stage::Input));
        });
        total_wall += time.0;
        total_cpu += time.1;
        println!("  input  {:<16}{}", processor.id(), both(time));
    }
    let answer = "Thanks for the details. I have opened ticket 4821 and we will get back to you within two business \
                  days with a replacement or a refund, whichever you prefer.";
    for step in output_steps() {
        let PipelineStep::Sync(processor) = &step else { continue };
        let time = measure(budget, || {
            let mut text = answer.to_owned();
            black_box(processor.process(&mut text, Stage::Output { final_answer: true }));
        });
        total_wall += time.0;
        total_cpu += time.1;
        println!("  output {:<16}{}", processor.id(), both(time));
    }
    let clone_only = measure(budget, || {
        black_box(prompt.clone());
    });
    println!("  (copying the prompt, included above: {})", both(clone_only).trim());
    println!("  sum of the steps      {}", both((total_wall, total_cpu)));
    println!();

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let model: Arc<dyn LanguageModel> = Arc::new(InstantModel);
    let bare = Agent::builder("bench", Arc::clone(&model)).instructions("You are a support agent.").build().unwrap();
    let mut builder = Agent::builder("bench", Arc::clone(&model)).instructions("You are a support agent.");
    for step in input_steps() {
        builder = builder.input_step(step);
    }
    for step in output_steps() {
        builder = builder.output_step(step);
    }
    let guarded = builder.build().unwrap();
    let run = |agent: &Agent| {
        let output =
            runtime.block_on(agent.generate(vec![Message::user(prompt.clone())], GenerateOptions::default())).unwrap();
        assert!(output.tripwire.is_none());
        black_box(output);
    };
    let baseline = measure(budget, || run(&bare));
    let with_pipeline = measure(budget, || run(&guarded));
    println!("  generate, no pipeline (baseline)   {}", both(baseline));
    println!("  generate, deterministic pipeline   {}", both(with_pipeline));
    let added = (with_pipeline.0.saturating_sub(baseline.0), with_pipeline.1.saturating_sub(baseline.1));
    println!("  added by the pipeline              {}   (aim: under 50 µs)", both(added));
    println!();

    let exact = measure(budget, || {
        black_box(TokenCounter::O200k.count(&prompt));
    });
    println!("  exact o200k token count of the prompt (only when bytes exceed a token limit): {}", both(exact).trim());
}
