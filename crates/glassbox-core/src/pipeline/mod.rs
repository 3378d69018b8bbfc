//! The request pipeline around the agent loop: input processors, input and output guardrails,
//! and the tripwire a block ends a run with.
//!
//! A processor looks at one text at a time (each caller message before the first model call,
//! each model answer before it leaves the loop) and returns a [`Verdict`]: pass, changed
//! (normalized, truncated, redacted), warn, or block. Deterministic processors implement the
//! synchronous [`Processor`] trait, so the common path costs no allocation or await; processors
//! that must call out (the LLM moderation processor) implement [`AsyncProcessor`]. Both are
//! public so that library users can add their own.
//!
//! Guardrails are processors too: the difference is only where they run. An agent has an
//! ordered list of input steps (processors, then input guardrails) and of output steps. The
//! first block stops the run before any further model call and becomes a [`Tripwire`].
//!
//! Every step's decision is a `glassbox.processor` event on the run's `invoke_agent` span,
//! with the processor id, stage, strategy, decision and reason, so a blocked request's trace
//! says why.

mod guardrails;
mod injection;
mod length;
mod moderation;
mod normalize;
mod pii;
pub mod tokens;

use std::sync::Arc;

use async_trait::async_trait;

pub use guardrails::{GuardrailError, JsonSchemaGuardrail, RegexRule, TopicGuardrail};
pub use injection::{InjectionDetector, InjectionScore, score as injection_score};
pub use length::LengthLimit;
pub use moderation::{DEFAULT_MODERATION_INSTRUCTIONS, FailMode, ModerationProcessor};
pub use normalize::Normalizer;
pub use pii::PiiProcessor;
pub use tokens::TokenCounter;

/// What a processor does when it finds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Stop the run with a tripwire.
    Block,
    /// Let the text through unchanged and record the finding.
    Warn,
    /// Change the text: redact, filter, normalize or truncate it, then carry on.
    Redact,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Warn => "warn",
            Self::Redact => "redact",
        }
    }
}

/// Where a text is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A caller message, before the first model call.
    Input,
    /// A model answer. `final_answer` is false for the text that comes with tool calls.
    Output { final_answer: bool },
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output { .. } => "output",
        }
    }
}

/// A processor's decision about one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The text was changed in place (and the run carries on).
    Changed {
        reason: String,
    },
    Warn {
        reason: String,
    },
    Block {
        reason: String,
    },
}

impl Verdict {
    /// The name recorded as `glassbox.guardrail.decision`.
    pub fn decision(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Changed { .. } => "changed",
            Self::Warn { .. } => "warn",
            Self::Block { .. } => "block",
        }
    }

    /// Why the stage decided what it did; a pass has no reason.
    fn reason(&self) -> Option<&str> {
        match self {
            Self::Pass => None,
            Self::Changed { reason } | Self::Warn { reason } | Self::Block { reason } => Some(reason),
        }
    }

    fn severity(&self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Changed { .. } => 1,
            Self::Warn { .. } => 2,
            Self::Block { .. } => 3,
        }
    }

    /// The verdict for a finding under `strategy`; `changed` is what `Redact` did to the text.
    pub fn for_finding(strategy: Strategy, reason: String) -> Self {
        match strategy {
            Strategy::Block => Self::Block { reason },
            Strategy::Warn => Self::Warn { reason },
            Strategy::Redact => Self::Changed { reason },
        }
    }
}

/// A deterministic processor or guardrail: runs synchronously on the caller's thread.
pub trait Processor: Send + Sync {
    /// The id reported as the tripwire's `processorId` and in traces.
    fn id(&self) -> &str;
    fn strategy(&self) -> Strategy;
    /// Checks `text`, changing it in place when the strategy says so.
    fn process(&self, text: &mut String, stage: Stage) -> Verdict;
}

/// A processor that has to wait for something (a model call); see [`ModerationProcessor`].
#[async_trait]
pub trait AsyncProcessor: Send + Sync {
    fn id(&self) -> &str;
    fn strategy(&self) -> Strategy;
    async fn process(&self, text: &mut String, stage: Stage) -> Verdict;
}

/// One step of an agent's input or output pipeline.
#[derive(Clone)]
pub enum PipelineStep {
    Sync(Arc<dyn Processor>),
    Async(Arc<dyn AsyncProcessor>),
}

impl PipelineStep {
    pub fn id(&self) -> &str {
        match self {
            Self::Sync(processor) => processor.id(),
            Self::Async(processor) => processor.id(),
        }
    }
    pub fn strategy(&self) -> Strategy {
        match self {
            Self::Sync(processor) => processor.strategy(),
            Self::Async(processor) => processor.strategy(),
        }
    }
}

impl std::fmt::Debug for PipelineStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PipelineStep").field(&self.id()).finish()
    }
}

impl<P: Processor + 'static> From<P> for PipelineStep {
    fn from(processor: P) -> Self {
        Self::Sync(Arc::new(processor))
    }
}

/// Why a run was stopped by a processor, guardrail or budget: Mastra's `tripwire`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripwire {
    pub reason: String,
    pub processor_id: String,
}

/// What an agent does when a step blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBlock {
    /// The run finishes normally with a [`Tripwire`] in its output (Mastra's convention).
    #[default]
    Tripwire,
    /// The run fails with [`crate::AgentError::Blocked`] (the server answers 422).
    Error,
}

/// Runs `steps` in order over each text of `texts`. Each step's combined decision is recorded
/// as one event; the first block stops the pipeline and is returned.
pub async fn run_steps(steps: &[PipelineStep], texts: &mut [&mut String], stage: Stage) -> Option<Tripwire> {
    for step in steps {
        let mut worst = Verdict::Pass;
        for text in texts.iter_mut() {
            let verdict = match step {
                PipelineStep::Sync(processor) => processor.process(text, stage),
                PipelineStep::Async(processor) => processor.process(text, stage).await,
            };
            if verdict.severity() > worst.severity() {
                worst = verdict;
            }
            if matches!(worst, Verdict::Block { .. }) {
                break;
            }
        }
        record_decision(step.id(), stage, step.strategy().as_str(), &worst);
        if let Verdict::Block { reason } = worst {
            return Some(Tripwire { reason, processor_id: step.id().to_owned() });
        }
    }
    None
}

/// The `glassbox.processor` span event of one decision (on the current span, `invoke_agent`).
pub(crate) fn record_decision(id: &str, stage: Stage, strategy: &str, verdict: &Verdict) {
    // The event's name (its callsite's, static) rather than a message: the span layer takes it
    // as the span event's name without formatting a message into a new string each time.
    tracing::event!(
        name: "glassbox.processor",
        tracing::Level::INFO,
        glassbox.processor = id,
        glassbox.processor.stage = stage.as_str(),
        glassbox.processor.strategy = strategy,
        glassbox.guardrail.decision = verdict.decision(),
        glassbox.processor.reason = verdict.reason(),
    );
}
