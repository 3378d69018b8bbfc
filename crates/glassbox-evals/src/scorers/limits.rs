//! Scorers on what the run cost: latency, US dollars, tokens.

use std::time::Duration;

use async_trait::async_trait;

use crate::scorer::{Score, ScoreInput, Scorer, ScorerError};

/// The run took at most `max` (in replay: the recorded model latency).
#[derive(Debug, Clone)]
pub struct LatencyUnder {
    pub max: Duration,
}

#[async_trait]
impl Scorer for LatencyUnder {
    fn kind(&self) -> &str {
        "latency"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let took = input.latency.as_secs_f64() * 1000.0;
        let max = self.max.as_secs_f64() * 1000.0;
        Ok(Score::from_bool(
            input.latency <= self.max,
            format!("took {took:.1} ms, within {max:.0} ms"),
            format!("took {took:.1} ms, over the {max:.0} ms limit"),
        ))
    }
}

/// The run cost at most `max_usd`. An unknown price fails: a limit that cannot be checked is
/// not met.
#[derive(Debug, Clone)]
pub struct CostUnder {
    pub max_usd: f64,
}

#[async_trait]
impl Scorer for CostUnder {
    fn kind(&self) -> &str {
        "cost"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        Ok(match input.cost_usd {
            Some(cost) => Score::from_bool(
                cost <= self.max_usd,
                format!("cost ${cost:.6}, within ${:.6}", self.max_usd),
                format!("cost ${cost:.6}, over the ${:.6} limit", self.max_usd),
            ),
            None => Score::fail("the model's price is unknown, so the cost limit cannot be checked"),
        })
    }
}

/// The run used at most `max` tokens (input plus output, over every model call).
#[derive(Debug, Clone)]
pub struct TokensUnder {
    pub max: u64,
}

#[async_trait]
impl Scorer for TokensUnder {
    fn kind(&self) -> &str {
        "tokens"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let total = input.usage.total_tokens();
        Ok(Score::from_bool(
            total <= self.max,
            format!("{total} tokens, within {}", self.max),
            format!("{total} tokens, over the {} limit", self.max),
        ))
    }
}
