//! Issuing credentials and tokens, and checking bearer tokens.

use super::{password, AuthError, Principal, Scope};
use crate::store::credentials::CredentialRepo;
use crate::store::models::{AccessTokenRow, NewCredential};
use crate::util::{now_ms, random_token, sha256_hex};

/// A credential as shown once to the operator who issued it.
#[derive(Debug, serde::Serialize)]
pub struct IssuedCredential {
    pub client_id: String,
    pub client_secret: String,
}

/// Creates a credential for `partner` (scope tickets) or for operators (`None`, scope admin).
pub fn issue_credential<C: CredentialRepo>(
    c: &mut C,
    partner: Option<&str>,
    iterations: u32,
) -> Result<IssuedCredential, AuthError> {
    let (prefix, scope) = match partner {
        Some(p) => (p, Scope::Tickets),
        None => ("admin", Scope::Admin),
    };
    let client_id = format!("{prefix}.{}", random_token(9)?);
    let client_secret = format!("ebs_{}", random_token(32)?);
    let secret_hash = password::hash(&client_secret, iterations)?;
    c.insert_credential(&NewCredential {
        client_id: &client_id,
        secret_hash: &secret_hash,
        partner,
        scope: scope.as_str(),
        created_at: now_ms(),
    })?;
    Ok(IssuedCredential {
        client_id,
        client_secret,
    })
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: Scope,
    pub partner: Option<String>,
}

/// A client that proved its secret.
#[derive(Debug)]
pub struct VerifiedClient {
    pub credential_id: i64,
    pub partner: Option<String>,
    pub scope: Scope,
}

/// First half of the client-credentials grant: reads the credential and checks the secret
/// against its slow hash. Read-only, so it runs outside any write transaction.
pub fn verify_client<C: CredentialRepo>(
    c: &mut C,
    client_id: &str,
    client_secret: &str,
    requested_scope: Option<&str>,
    iterations: u32,
) -> Result<VerifiedClient, AuthError> {
    let Some(cred) = c.credential_by_client_id(client_id)? else {
        // Spend the same time as a real check so unknown ids cannot be told apart by timing.
        let _ = password::hash(client_secret, iterations)?;
        return Err(AuthError::InvalidClient);
    };
    if cred.revoked_at.is_some() || !password::verify(client_secret, &cred.secret_hash) {
        return Err(AuthError::InvalidClient);
    }
    let scope = Scope::parse(&cred.scope).ok_or(AuthError::InvalidClient)?;
    if let Some(req) = requested_scope {
        let mut requested = req.split_whitespace();
        if !requested.all(|s| s == scope.as_str()) {
            return Err(AuthError::InvalidScope(format!(
                "this client may only request the `{}` scope",
                scope.as_str()
            )));
        }
    }
    Ok(VerifiedClient {
        credential_id: cred.id,
        partner: cred.partner,
        scope,
    })
}

/// Second half: stores a new token's hash and returns the token.
pub fn issue_token<C: CredentialRepo>(
    c: &mut C,
    client: VerifiedClient,
    ttl_secs: i64,
) -> Result<IssuedToken, AuthError> {
    let access_token = random_token(32)?;
    let now = now_ms();
    c.insert_token(&AccessTokenRow {
        token_hash: sha256_hex(access_token.as_bytes()),
        credential_id: client.credential_id,
        partner: client.partner.clone(),
        scope: client.scope.as_str().to_string(),
        expires_at: now + ttl_secs * 1000,
        created_at: now,
    })?;
    Ok(IssuedToken {
        access_token,
        expires_in: ttl_secs,
        scope: client.scope,
        partner: client.partner,
    })
}

/// Checks a bearer token: one indexed lookup by its SHA-256.
pub fn check<C: CredentialRepo>(c: &mut C, token: &str) -> Result<Principal, AuthError> {
    let row = c
        .live_token(&sha256_hex(token.as_bytes()), now_ms())?
        .ok_or(AuthError::InvalidToken)?;
    let scope = Scope::parse(&row.scope).ok_or(AuthError::InvalidToken)?;
    Ok(Principal {
        partner: row.partner,
        scope,
    })
}
