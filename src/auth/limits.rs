//! Inbound rate limits: a token bucket per partner (in this process), sized by the contract's
//! `rate_limit_per_minute`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token for `partner`; `Err(wait)` when the bucket is empty.
    pub fn check(&self, partner: &str, per_minute: u32) -> Result<(), Duration> {
        let cap = f64::from(per_minute.max(1));
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = map.entry(partner.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * cap / 60.0).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) * 60.0 / cap))
        }
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
