//! Bearer tokens already checked against the store, remembered for a short time so that a
//! request does not pay a database round trip to learn who is calling.
//!
//! Keyed by the token's SHA-256 (what the store keeps; the token itself is not held). A
//! revocation empties the cache of every process at once: the revoking transaction raises a
//! signal ([`crate::store::signals`]) that each process's listener ([`crate::store::listener`]) turns
//! into [`TokenCache::forget_all`]. While a process cannot hear those signals (its listener
//! lost the database), it takes nothing from memory. An entry never outlives its token.

use super::Principal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Bounded: the map is emptied of expired entries when full, and cleared if that is not enough.
const MAX_ENTRIES: usize = 10_000;

pub struct TokenCache {
    ttl_ms: i64,
    /// Whether revocations are being heard (set by the listener).
    listening: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Raised by every [`TokenCache::forget_all`]: a lookup that began before it must not be
    /// remembered after it.
    epoch: u64,
    entries: HashMap<String, Entry>,
}

struct Entry {
    principal: Principal,
    until_ms: i64,
}

/// What a lookup that missed must hand back to [`TokenCache::remember`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl TokenCache {
    /// `ttl_secs = 0` turns the cache off.
    pub fn new(ttl_secs: u64) -> TokenCache {
        TokenCache {
            ttl_ms: i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            listening: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The caller of this token hash, if it was checked within the TTL and nothing was revoked
    /// since; else the epoch to remember the store's answer under.
    pub fn get(&self, token_hash: &str, now_ms: i64) -> Result<Principal, Epoch> {
        let Ok(inner) = self.inner.lock() else { return Err(Epoch(u64::MAX)) };
        if self.listening.load(Ordering::Acquire) {
            if let Some(e) = inner.entries.get(token_hash).filter(|e| e.until_ms > now_ms) {
                return Ok(e.principal.clone());
            }
        }
        Err(Epoch(inner.epoch))
    }

    /// Remembers the store's answer for a token that lives until `expires_at_ms`, unless a
    /// revocation came in since the lookup began (`epoch`).
    pub fn remember(&self, token_hash: String, principal: Principal, expires_at_ms: i64, now_ms: i64, epoch: Epoch) {
        if self.ttl_ms == 0 || !self.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.epoch != epoch.0 {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.retain(|_, e| e.until_ms > now_ms);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        let until_ms = expires_at_ms.min(now_ms.saturating_add(self.ttl_ms));
        inner.entries.insert(token_hash, Entry { principal, until_ms });
    }

    /// Forgets every token (a credential was revoked somewhere).
    pub fn forget_all(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.epoch = inner.epoch.wrapping_add(1);
            inner.entries.clear();
        }
    }

    /// The listener hears revocations (`true`) or lost the database (`false`: forget, and take
    /// nothing from memory until it hears them again).
    pub fn set_listening(&self, listening: bool) {
        if !listening {
            self.listening.store(false, Ordering::Release);
        }
        // Whatever was revoked while nobody listened is unknown: start empty either way.
        self.forget_all();
        if listening {
            self.listening.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    fn caller() -> Principal {
        Principal { partner: Some("acme-msp".into()), scope: Scope::Tickets, credential_id: 7, contract_major: None }
    }

    fn listening(ttl: u64) -> TokenCache {
        let cache = TokenCache::new(ttl);
        cache.set_listening(true);
        cache
    }

    #[test]
    fn a_remembered_token_is_served_until_its_ttl_or_its_expiry() {
        let cache = listening(10);
        let epoch = cache.get("h", 0).unwrap_err();
        cache.remember("h".into(), caller(), 60_000, 0, epoch);
        assert_eq!(cache.get("h", 9_999).map(|p| p.credential_id), Ok(7));
        assert!(cache.get("h", 10_000).is_err(), "the TTL ends the entry");
        let epoch = cache.get("short", 0).unwrap_err();
        cache.remember("short".into(), caller(), 2_000, 0, epoch);
        assert!(cache.get("short", 2_000).is_err(), "never beyond the token's own expiry");
    }

    #[test]
    fn a_revocation_forgets_everything_and_beats_a_lookup_in_flight() {
        let cache = listening(10);
        let epoch = cache.get("h", 0).unwrap_err();
        cache.remember("h".into(), caller(), 60_000, 0, epoch);
        let in_flight = cache.get("other", 0).unwrap_err();
        cache.forget_all();
        assert!(cache.get("h", 1).is_err());
        // The lookup began before the revocation: its answer may be stale and is not kept.
        cache.remember("other".into(), caller(), 60_000, 1, in_flight);
        assert!(cache.get("other", 2).is_err());
    }

    #[test]
    fn nothing_is_served_while_revocations_cannot_be_heard_or_with_ttl_zero() {
        let cache = listening(10);
        let epoch = cache.get("h", 0).unwrap_err();
        cache.remember("h".into(), caller(), 60_000, 0, epoch);
        cache.set_listening(false);
        assert!(cache.get("h", 1).is_err());
        let epoch = cache.get("h", 1).unwrap_err();
        cache.remember("h".into(), caller(), 60_000, 1, epoch);
        assert!(cache.get("h", 2).is_err(), "not remembered while deaf");
        let off = listening(0);
        let epoch = off.get("h", 0).unwrap_err();
        off.remember("h".into(), caller(), 60_000, 0, epoch);
        assert!(off.get("h", 1).is_err());
    }
}
