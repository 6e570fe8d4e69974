//! Lockout after repeated failed authentications: too many recent failures for a client id (or
//! login) or from a source address, and that client is refused for a while, right secret or
//! not. Counted from the authentication-event log, so every process sees the same count.

use crate::config::SecuritySettings;
use crate::store::auth_events::AuthEventRepo;

/// Seconds the client `id` calling from `source` is still locked out at `now` (ms), if it is.
pub fn remaining<C: AuthEventRepo + ?Sized>(
    c: &mut C,
    sec: &SecuritySettings,
    id: &str,
    source: &str,
    now: i64,
) -> diesel::QueryResult<Option<i64>> {
    let (failures, last) = c.recent_failures(Some(id), source, now - sec.lockout_window_secs * 1000)?;
    Ok(locked_for(sec, failures, last, now))
}

/// The lockout rule itself: `failures` within the window lock the client out until
/// `lockout_secs` after the last of them.
fn locked_for(sec: &SecuritySettings, failures: i64, last: Option<i64>, now: i64) -> Option<i64> {
    if failures < sec.lockout_threshold {
        return None;
    }
    let until = last.unwrap_or(now) + sec.lockout_secs * 1000;
    (until > now).then(|| (until - now + 999) / 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn locked_from_the_threshold_until_the_time_after_the_last_failure() {
        let sec = crate::config::SecuritySettings { lockout_threshold: 3, lockout_secs: 60, ..Default::default() };
        assert_eq!(super::locked_for(&sec, 2, Some(1_000), 1_000), None);
        assert_eq!(super::locked_for(&sec, 3, Some(1_000), 1_000), Some(60));
        assert_eq!(super::locked_for(&sec, 3, Some(1_000), 31_000), Some(30));
        assert_eq!(super::locked_for(&sec, 9, Some(1_000), 61_000), None);
    }
}
