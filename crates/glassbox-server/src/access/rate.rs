//! Per-key rate limits: one GCRA limiter (`governor`) per key, made at start and kept in the
//! key's entry, so checking a request takes no lock and no map lookup beyond the key's own.

use std::num::NonZeroU32;
use std::time::Duration;

use glassbox_config::RateLimitConfig;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// What the `RateLimit-*` headers say after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// The burst: requests allowed at once.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again (allowed) or until the next request may pass
    /// (refused); rounded up.
    pub reset_secs: u64,
}

pub struct RateLimit {
    limiter: Limiter,
    burst: u32,
    replenish: Duration,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("burst", &self.burst).field("replenish", &self.replenish).finish()
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl RateLimit {
    pub fn new(config: RateLimitConfig) -> Self {
        let per_minute = NonZeroU32::new(config.requests_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        let replenish = quota.replenish_interval();
        Self {
            limiter: RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
            burst: burst.get(),
            replenish,
        }
    }

    /// Takes one request from the bucket: `Ok` with the state after it, or `Err` with when
    /// to retry.
    pub fn check(&self) -> Result<RateState, RateState> {
        match self.limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let empty_slots = self.burst.saturating_sub(remaining);
                Ok(RateState {
                    limit: self.burst,
                    remaining,
                    reset_secs: ceil_secs(self.replenish.saturating_mul(empty_slots)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Err(RateState { limit: self.burst, remaining: 0, reset_secs: ceil_secs(wait).max(1) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_passes_then_requests_wait_for_the_rate() {
        let limit = RateLimit::new(RateLimitConfig { requests_per_minute: 6, burst: 3 });
        let first = limit.check().unwrap();
        assert_eq!((first.limit, first.remaining), (3, 2));
        assert_eq!(first.reset_secs, 10);
        assert_eq!(limit.check().unwrap().remaining, 1);
        assert_eq!(limit.check().unwrap().remaining, 0);
        let refused = limit.check().unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (3, 0));
        // One request every 10 s: the next one is at most 10 s away.
        assert!((1..=10).contains(&refused.reset_secs), "{refused:?}");
    }
}
