//! Secrets already proven against their slow hash, remembered for a short time: HTTP Basic
//! sends the password on every request, and PBKDF2 must not run for each of them.
//!
//! An entry is keyed by a SHA-256 of the stored hash and the secret together, so it vouches for
//! that secret against that hash only: a rotation (a new hash) misses the cache at once, and
//! revocation is checked on the credential row, which is read on every request anyway. Nothing
//! of the secret itself is kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bounded: a flood of distinct wrong passwords never gets in (only matches are remembered),
/// and the map is emptied when full rather than grown.
const MAX_ENTRIES: usize = 10_000;

pub struct VerifiedSecrets {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifiedSecrets {
    pub fn new(ttl: Duration) -> VerifiedSecrets {
        VerifiedSecrets { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// Was `secret` proven against `hash` within the TTL? (No hashing: what decides whether the
    /// lockout must be looked at before the slow check.)
    pub fn is_known(&self, secret: &str, hash: &str) -> bool {
        let key = key(secret, hash);
        self.entries.lock().map(|e| e.get(&key).is_some_and(|until| *until > Instant::now())).unwrap_or(false)
    }

    /// Does `secret` match the encoded `hash`? From memory when it was proven within the TTL.
    pub fn verify(&self, secret: &str, hash: &str) -> bool {
        let key = key(secret, hash);
        let now = Instant::now();
        if let Ok(entries) = self.entries.lock() {
            if entries.get(&key).is_some_and(|until| *until > now) {
                return true;
            }
        }
        let ok = super::password::verify(secret, hash);
        if ok && !self.ttl.is_zero() {
            if let Ok(mut entries) = self.entries.lock() {
                if entries.len() >= MAX_ENTRIES {
                    entries.retain(|_, until| *until > now);
                    if entries.len() >= MAX_ENTRIES {
                        entries.clear();
                    }
                }
                entries.insert(key, now + self.ttl);
            }
        }
        ok
    }
}

fn key(secret: &str, hash: &str) -> [u8; 32] {
    let mut h = openssl::sha::Sha256::new();
    h.update(hash.as_bytes());
    h.update(&[0]);
    h.update(secret.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_matches_for_that_hash_only() {
        let cache = VerifiedSecrets::new(Duration::from_secs(60));
        let hash = crate::auth::password::hash("pw", 1000).unwrap();
        assert!(cache.verify("pw", &hash));
        assert!(cache.entries.lock().unwrap().contains_key(&key("pw", &hash)));
        assert!(cache.verify("pw", &hash), "from memory");
        assert!(!cache.verify("px", &hash));
        let rotated = crate::auth::password::hash("pw2", 1000).unwrap();
        assert!(!cache.verify("pw", &rotated), "a new hash is not vouched for by the old entry");
        assert_eq!(cache.entries.lock().unwrap().len(), 1, "failures are not remembered");
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let cache = VerifiedSecrets::new(Duration::ZERO);
        let hash = crate::auth::password::hash("pw", 1000).unwrap();
        assert!(cache.verify("pw", &hash));
        assert!(cache.entries.lock().unwrap().is_empty());
    }
}
