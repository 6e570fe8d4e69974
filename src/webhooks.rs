//! Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, and `webhook-signature`
//! = `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being the base64 part
//! of a `whsec_…` secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("signing secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("HMAC failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

fn key(secret: &str) -> Result<Vec<u8>, SigningError> {
    let b64 = secret.strip_prefix("whsec_").ok_or(SigningError::BadSecret)?;
    B64.decode(b64).map_err(|_| SigningError::BadSecret)
}

/// The `webhook-signature` header value for one message.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, SigningError> {
    let key = PKey::hmac(&key(secret)?)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(format!("{msg_id}.{timestamp}.").as_bytes())?;
    signer.update(body)?;
    Ok(format!("v1,{}", B64.encode(signer.sign_to_vec()?)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vector() {
        // The example from the Standard Webhooks specification.
        let sig = super::sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(super::sign("nope", "m", 1, b"x").is_err());
    }
}
