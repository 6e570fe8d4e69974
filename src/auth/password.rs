//! Client secrets at rest: PBKDF2-HMAC-SHA256 with a random salt, encoded as
//! `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use openssl::hash::MessageDigest;

const PREFIX: &str = "pbkdf2-sha256";

pub fn hash(secret: &str, iterations: u32) -> Result<String, openssl::error::ErrorStack> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt)?;
    let dk = derive(secret.as_bytes(), &salt, iterations);
    Ok(format!("{PREFIX}${iterations}${}${}", B64.encode(salt), B64.encode(dk)))
}

/// Constant-time check of `secret` against an encoded hash; malformed hashes never match.
pub fn verify(secret: &str, encoded: &str) -> bool {
    let mut parts = encoded.split('$');
    let (Some(PREFIX), Some(iter), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(expected)) = (iter.parse::<u32>(), B64.decode(salt), B64.decode(expected)) else {
        return false;
    };
    let dk = derive(secret.as_bytes(), &salt, iterations);
    crate::util::constant_time_eq(&dk, &expected)
}

fn derive(secret: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Only fails on invalid parameters (iterations 0), which hash() never produces.
    let _ = openssl::pkcs5::pbkdf2_hmac(secret, salt, iterations.max(1) as usize, MessageDigest::sha256(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_mismatch() {
        let h = super::hash("s3cret", 1000).unwrap();
        assert!(h.starts_with("pbkdf2-sha256$1000$"));
        assert!(super::verify("s3cret", &h));
        assert!(!super::verify("s3cres", &h));
        assert!(!super::verify("s3cret", "garbage"));
        assert_ne!(super::hash("s3cret", 1000).unwrap(), h, "salted");
    }
}
