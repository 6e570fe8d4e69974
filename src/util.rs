//! Small helpers shared by several modules: time, hashing, random identifiers.

use base64::Engine;

/// Current time as Unix epoch milliseconds (the unit of every timestamp column).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

/// `n` bytes from the OpenSSL CSPRNG, URL-safe base64 without padding. Fails only when the
/// CSPRNG cannot be seeded.
pub fn random_token(n: usize) -> Result<String, openssl::error::ErrorStack> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// Constant-time equality for secrets and hashes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// An error with its chain of sources, `outer: inner: …` (reqwest and oauth2 keep the useful
/// part — connection refused, a TLS failure — in the sources).
pub fn describe_error<E: std::error::Error>(e: &E) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Replaces the value of every query parameter that looks like a credential with `***`: the
/// audit trail and run reports are read by operators, and a token in a query must not be readable there.
pub fn redact_query(query: &str) -> String {
    const SECRET_NAMES: [&str; 6] = ["token", "secret", "password", "key", "signature", "code"];
    query
        .split('&')
        .map(|part| {
            let raw_name = part.split('=').next().unwrap_or_default();
            let name = serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("{raw_name}="))
                .ok()
                .and_then(|mut v| v.pop())
                .map(|(n, _)| n.to_ascii_lowercase())
                .unwrap_or_else(|| raw_name.to_ascii_lowercase());
            if SECRET_NAMES.iter().any(|s| name.contains(s)) {
                format!("{raw_name}=***")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes one URL path segment (RFC 3986 unreserved characters stay).
pub fn encode_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A token bucket refilled continuously at `per_minute`, holding at most `per_minute` tokens.
/// Used for the inbound rate limit and the outbound one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    refilled: std::time::Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_minute: u32) -> TokenBucket {
        TokenBucket { tokens: f64::from(per_minute.max(1)), refilled: std::time::Instant::now() }
    }

    fn refill(&mut self, per_minute: u32) -> f64 {
        let cap = f64::from(per_minute.max(1));
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * cap / 60.0).min(cap);
        self.refilled = now;
        cap
    }

    /// Is a token there (without taking it)?
    pub fn available(&mut self, per_minute: u32) -> bool {
        self.refill(per_minute);
        self.tokens >= 1.0
    }

    /// Takes a token; `Err(wait)` until the next one when the bucket is empty.
    pub fn take(&mut self, per_minute: u32) -> Result<(), std::time::Duration> {
        let cap = self.refill(per_minute);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / cap))
        }
    }
}
