//! Issuing credentials and tokens, and checking bearer tokens.

use super::{password, AuthError, CredentialKind, Principal, Scope};
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
pub fn issue_credential<C: CredentialRepo + ?Sized>(
    c: &mut C,
    partner: Option<&str>,
    iterations: u32,
) -> Result<IssuedCredential, AuthError> {
    issue_credential_scoped(c, partner, false, CredentialKind::Client, None, iterations)
}

/// As [`issue_credential`]; `read_only` partner credentials only ever get `tickets:read` tokens;
/// a [`CredentialKind::Login`] is a Table-API facade login of the partner; `contract_major`
/// binds the credential's tokens to one major version of the partner's contract.
pub fn issue_credential_scoped<C: CredentialRepo + ?Sized>(
    c: &mut C,
    partner: Option<&str>,
    read_only: bool,
    kind: CredentialKind,
    contract_major: Option<i64>,
    iterations: u32,
) -> Result<IssuedCredential, AuthError> {
    let (prefix, scope) = match (partner, read_only) {
        (Some(p), false) => (p, Scope::Tickets),
        (Some(p), true) => (p, Scope::TicketsRead),
        (None, false) => ("admin", Scope::Admin),
        (None, true) => ("operator", Scope::AdminRead),
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
        kind: kind.as_str(),
        contract_major,
    })?;
    Ok(IssuedCredential { client_id, client_secret })
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
    pub kind: CredentialKind,
    pub contract_major: Option<i64>,
}

/// First half of the client-credentials grant: reads the credential and checks the secret
/// against its slow hash (and, during a rotation's overlap, the previous one) — through
/// `verified` when given, which remembers recent matches. Read-only, so it runs outside any
/// write transaction. A credential of another `kind` fails like a wrong secret. Errors carry a
/// reason for the auth-event log.
pub fn verify_client<C: CredentialRepo + ?Sized>(
    c: &mut C,
    client_id: &str,
    client_secret: &str,
    requested_scope: Option<&str>,
    kind: CredentialKind,
    iterations: u32,
    verified: Option<&super::verified::VerifiedSecrets>,
) -> Result<VerifiedClient, (AuthError, &'static str)> {
    let cred = match c.credential_by_client_id(client_id) {
        Ok(Some(cred)) => cred,
        Ok(None) => {
            // Spend the same time as a real check so unknown ids cannot be told apart by timing.
            let _ = password::hash(client_secret, iterations);
            return Err((AuthError::InvalidClient, "unknown_client"));
        }
        Err(e) => return Err((e.into(), "database")),
    };
    check_credential(&cred, client_secret, requested_scope, kind, verified)
}

/// [`verify_client`] for a credential already read.
pub fn check_credential(
    cred: &crate::store::models::CredentialRow,
    client_secret: &str,
    requested_scope: Option<&str>,
    kind: CredentialKind,
    verified: Option<&super::verified::VerifiedSecrets>,
) -> Result<VerifiedClient, (AuthError, &'static str)> {
    let check = |secret: &str, hash: &str| match verified {
        Some(v) => v.verify(secret, hash),
        None => password::verify(secret, hash),
    };
    let current = check(client_secret, &cred.secret_hash);
    let previous = !current
        && cred.previous_valid_until.is_some_and(|until| until > now_ms())
        && cred.previous_secret_hash.as_deref().is_some_and(|h| check(client_secret, h));
    if !current && !previous {
        return Err((AuthError::InvalidClient, "bad_secret"));
    }
    if cred.revoked_at.is_some() {
        return Err((AuthError::InvalidClient, "revoked"));
    }
    if cred.kind != kind.as_str() {
        return Err((AuthError::InvalidClient, "wrong_credential_kind"));
    }
    let granted = Scope::parse(&cred.scope).ok_or((AuthError::InvalidClient, "bad_scope_record"))?;
    let scope = match requested_scope.map(|r| r.split_whitespace().collect::<Vec<_>>()) {
        None => granted,
        Some(req) if req.is_empty() => granted,
        // A read-write partner credential may ask for a read-only token.
        Some(req) if req == ["tickets:read"] && granted == Scope::Tickets => Scope::TicketsRead,
        Some(req) if req.iter().all(|s| *s == granted.as_str()) => granted,
        Some(_) => {
            return Err((
                AuthError::InvalidScope(format!("this client may only request the `{}` scope", granted.as_str())),
                "invalid_scope",
            ))
        }
    };
    Ok(VerifiedClient {
        credential_id: cred.id,
        partner: cred.partner.clone(),
        scope,
        kind,
        contract_major: cred.contract_major,
    })
}

/// Second half: stores a new token's hash and returns the token.
pub fn issue_token<C: CredentialRepo + ?Sized>(
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
        contract_major: client.contract_major,
    })?;
    Ok(IssuedToken { access_token, expires_in: ttl_secs, scope: client.scope, partner: client.partner })
}

/// Checks a bearer token by its SHA-256 (one indexed lookup): its caller, and when it expires.
pub fn lookup<C: CredentialRepo + ?Sized>(c: &mut C, token_hash: &str) -> Result<(Principal, i64), AuthError> {
    let row = c.live_token(token_hash, now_ms())?.ok_or(AuthError::InvalidToken)?;
    let scope = Scope::parse(&row.scope).ok_or(AuthError::InvalidToken)?;
    let contract_major = row.contract_major.and_then(|m| u64::try_from(m).ok());
    Ok((Principal { partner: row.partner, scope, credential_id: row.credential_id, contract_major }, row.expires_at))
}

/// Gives the newest live credential of `partner` (or `client_id`) a new secret; the old secret
/// keeps working for `overlap_secs`.
pub fn rotate<C: CredentialRepo + ?Sized>(
    c: &mut C,
    partner: &str,
    client_id: Option<&str>,
    overlap_secs: i64,
    force: bool,
    iterations: u32,
) -> Result<Option<IssuedCredential>, AuthError> {
    let cred = c
        .list_credentials()?
        .into_iter()
        .filter(|k| k.partner.as_deref() == Some(partner) && k.revoked_at.is_none())
        // Without a client id, the OAuth client is rotated, not a Table-API login.
        .filter(|k| match client_id {
            Some(id) => k.client_id == id,
            None => k.kind == CredentialKind::Client.as_str(),
        })
        .max_by_key(|k| k.id);
    let Some(cred) = cred else { return Ok(None) };
    if let Some(until) = cred.previous_valid_until.filter(|u| *u > now_ms() && !force) {
        // A second rotation would silently end the first one's overlap.
        return Err(AuthError::InvalidRequest(format!(
            "{} was rotated and its previous secret stays valid until {}; rotate again after that, or with --force to end that overlap now",
            cred.client_id,
            crate::util::ms_to_rfc3339(until)
        )));
    }
    let client_secret = format!("ebs_{}", random_token(32)?);
    let hash = password::hash(&client_secret, iterations)?;
    c.rotate_secret(cred.id, &hash, &cred.secret_hash, now_ms() + overlap_secs * 1000)?;
    Ok(Some(IssuedCredential { client_id: cred.client_id, client_secret }))
}
