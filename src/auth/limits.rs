//! Inbound rate limits: a token bucket per partner (in this process), sized by the contract's
//! `rate_limit_per_minute`.

use crate::util::TokenBucket;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimiter {
    /// Takes one token for `partner`; `Err(wait)` when the bucket is empty.
    pub fn check(&self, partner: &str, per_minute: u32) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(partner.to_string()).or_insert_with(|| TokenBucket::new(per_minute)).take(per_minute)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_empties_and_says_how_long_to_wait() {
        let l = super::RateLimiter::default();
        assert!(l.check("p", 2).is_ok());
        assert!(l.check("p", 2).is_ok());
        let wait = l.check("p", 2).unwrap_err();
        assert!(wait.as_secs_f64() > 25.0 && wait.as_secs_f64() <= 30.0, "{wait:?}");
        assert!(l.check("other", 2).is_ok(), "buckets are per partner");
    }
}
