//! What a partner's answer means for a delivery, and when to try again.

use std::time::Duration;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Worth retrying: 5xx, 408, 429, timeouts, connection failures, missing configuration.
    Retry {
        class: &'static str,
        retry_after: Option<Duration>,
    },
    /// Other 4xx and unusable answers: dead letter at once.
    Permanent {
        class: &'static str,
    },
}

/// Classifies an HTTP status.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 => Verdict::Retry { class: "http_408", retry_after },
        429 => Verdict::Retry { class: "http_429", retry_after },
        500..=599 => Verdict::Retry { class: "http_5xx", retry_after },
        400..=499 => Verdict::Permanent { class: "http_4xx" },
        _ => Verdict::Permanent { class: "http_unexpected" },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&chrono::Utc);
    (at - now).to_std().ok().or(Some(Duration::ZERO))
}

/// The delay before the next attempt after `attempts_done` failed attempts, or `None` when the
/// schedule is used up (dead letter). A partner's `Retry-After` replaces the scheduled delay,
/// capped at `max_retry_after`; the scheduled delay gets ±20 % jitter.
pub fn next_delay(
    schedule: &[Duration],
    attempts_done: usize,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Option<Duration> {
    let scheduled = *schedule.get(attempts_done.checked_sub(1)?)?;
    Some(match retry_after {
        Some(ra) => ra.min(max_retry_after),
        None => jitter(scheduled),
    })
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    // Without randomness the delay is simply unjittered.
    let r =
        if openssl::rand::rand_bytes(&mut b).is_ok() { u16::from_le_bytes(b) as f64 / u16::MAX as f64 } else { 0.5 };
    d.mul_f64(0.8 + 0.4 * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(201, None), Verdict::Delivered);
        assert!(matches!(classify(503, None), Verdict::Retry { class: "http_5xx", .. }));
        assert!(matches!(classify(429, Some(Duration::from_secs(3))), Verdict::Retry { retry_after: Some(_), .. }));
        assert!(matches!(classify(408, None), Verdict::Retry { .. }));
        assert_eq!(classify(404, None), Verdict::Permanent { class: "http_4xx" });
        assert_eq!(classify(302, None), Verdict::Permanent { class: "http_unexpected" });
    }

    #[test]
    fn schedule_jitter_and_retry_after() {
        let s = [Duration::from_secs(60), Duration::from_secs(300)];
        let max = Duration::from_secs(3600);
        let d = next_delay(&s, 1, None, max).unwrap();
        assert!(d >= Duration::from_secs(48) && d <= Duration::from_secs(72), "{d:?}");
        let d = next_delay(&s, 2, None, max).unwrap();
        assert!(d >= Duration::from_secs(240) && d <= Duration::from_secs(360));
        assert_eq!(next_delay(&s, 3, None, max), None, "schedule used up");
        assert_eq!(next_delay(&s, 1, Some(Duration::from_secs(7)), max), Some(Duration::from_secs(7)));
        assert_eq!(next_delay(&s, 1, Some(Duration::from_secs(99_999)), max), Some(max));
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 22 Nov 2026 10:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
