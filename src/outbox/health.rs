//! Per-partner health in this process: a circuit breaker (opens after consecutive failures,
//! lets one probe through after a cool-down, so a dead partner's backlog waits instead of
//! burning retries) and a token-bucket rate limit from the contract.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
    in_flight: u32,
    bucket: crate::util::TokenBucket,
}

#[derive(Debug)]
pub struct PartnerHealth {
    threshold: u32,
    cooldown: Duration,
    partners: Mutex<HashMap<String, State>>,
}

/// Breaker position, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

impl PartnerHealth {
    pub fn new(threshold: u32, cooldown: Duration) -> PartnerHealth {
        PartnerHealth { threshold: threshold.max(1), cooldown, partners: Mutex::new(HashMap::new()) }
    }

    fn with<T>(&self, partner: &str, per_minute: u32, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let now = Instant::now();
        let mut map = self.partners.lock().unwrap_or_else(|p| p.into_inner());
        let st = map.entry(partner.to_string()).or_insert_with(|| State {
            failures: 0,
            open_until: None,
            probing: false,
            in_flight: 0,
            bucket: crate::util::TokenBucket::new(per_minute),
        });
        f(st, now)
    }

    /// May a delivery to `partner` start now? Consumes a rate-limit token when it may. After
    /// a failure, deliveries go one at a time until one succeeds, so a partner going down
    /// sees a single failing request rather than a burst.
    pub fn admit(&self, partner: &str, per_minute: u32) -> bool {
        self.with(partner, per_minute, |st, now| {
            if st.failures > 0 && st.in_flight > 0 {
                return false;
            }
            let breaker_ok = match st.open_until {
                None => true,
                Some(until) if now < until => false,
                Some(_) if st.probing => false,
                Some(_) => {
                    st.probing = true; // half-open: exactly one probe
                    true
                }
            };
            if !breaker_ok || !st.bucket.available(per_minute) {
                if breaker_ok && st.probing {
                    st.probing = false;
                }
                return false;
            }
            let _ = st.bucket.take(per_minute);
            st.in_flight += 1;
            true
        })
    }

    /// Undoes `admit` for a delivery that did not start.
    pub fn cancel(&self, partner: &str, per_minute: u32) {
        self.with(partner, per_minute, |st, _| {
            st.in_flight = st.in_flight.saturating_sub(1);
            st.probing = false;
        })
    }

    /// Partners nothing should be claimed for right now.
    pub fn blocked(&self, limits: &HashMap<String, u32>) -> Vec<String> {
        limits
            .iter()
            .filter(|(p, per_minute)| {
                self.with(p, **per_minute, |st, now| {
                    !st.bucket.available(**per_minute)
                        || st.open_until.is_some_and(|u| now < u)
                        || (st.open_until.is_some() && st.probing)
                        || (st.failures > 0 && st.in_flight > 0)
                })
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Records an attempt's outcome; returns the breaker position after it.
    pub fn record(&self, partner: &str, per_minute: u32, success: bool) -> Breaker {
        let (threshold, cooldown) = (self.threshold, self.cooldown);
        self.with(partner, per_minute, |st, now| {
            st.probing = false;
            st.in_flight = st.in_flight.saturating_sub(1);
            if success {
                st.failures = 0;
                st.open_until = None;
                return Breaker::Closed;
            }
            st.failures += 1;
            if st.failures >= threshold {
                st.open_until = Some(now + cooldown);
                Breaker::Open
            } else {
                Breaker::Closed
            }
        })
    }

    /// How long an open breaker stays open.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    pub fn position(&self, partner: &str, per_minute: u32) -> Breaker {
        self.with(partner, per_minute, |st, now| match st.open_until {
            None => Breaker::Closed,
            Some(u) if now < u => Breaker::Open,
            Some(_) => Breaker::HalfOpen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_then_probes_once() {
        let h = PartnerHealth::new(2, Duration::from_millis(50));
        assert!(h.admit("p", 1000));
        assert_eq!(h.record("p", 1000, false), Breaker::Closed);
        assert!(h.admit("p", 1000), "after a failure: one at a time");
        assert!(!h.admit("p", 1000), "no second delivery while the first is out");
        assert_eq!(h.record("p", 1000, false), Breaker::Open);
        assert!(!h.admit("p", 1000), "open: nothing goes out");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(h.position("p", 1000), Breaker::HalfOpen);
        assert!(h.admit("p", 1000), "one probe");
        assert!(!h.admit("p", 1000), "only one probe");
        assert_eq!(h.record("p", 1000, true), Breaker::Closed);
        assert!(h.admit("p", 1000));
    }

    #[test]
    fn rate_limit_spends_tokens() {
        let h = PartnerHealth::new(5, Duration::from_secs(1));
        assert!(h.admit("q", 2));
        assert!(h.admit("q", 2));
        assert!(!h.admit("q", 2), "bucket of 2 per minute is empty");
        let limits = HashMap::from([("q".to_string(), 2u32)]);
        assert_eq!(h.blocked(&limits), vec!["q".to_string()]);
    }
}
