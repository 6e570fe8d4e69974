//! Who is calling: the bearer token checked against the store, then the per-partner controls
//! (scope, source network, pinned client certificate, rate limit). Failures are recorded as
//! authentication events.

use super::context::record_partner;
use super::problem::ApiError;
use super::AppState;
use crate::auth::{tokens, AuthError, Principal, Scope};
use crate::contract::Contract;
use actix_web::http::header;
use actix_web::HttpRequest;
use std::sync::Arc;

/// Authenticates the bearer token of `req` (from memory when it was checked recently: see
/// [`crate::auth::token_cache`]). Failures are recorded as authentication events.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, ApiError> {
    let checked = match bearer_token(req) {
        Ok(token) => lookup(state, &token).await,
        Err(e) => Err(e),
    };
    let e = match checked {
        Ok(principal) => {
            if let Some(p) = &principal.partner {
                // Known from here on, even if a later control refuses the request (audit, metrics).
                record_partner(req, p);
            }
            return Ok(principal);
        }
        // The store could not be asked: nothing was learnt about the caller, and recording it
        // would only wait for the same database again.
        Err(e @ AuthError::Store(_)) => return Err(e.into()),
        Err(e) => e,
    };
    let reason = match e {
        AuthError::MissingToken => "missing_token",
        AuthError::InvalidToken => "invalid_token",
        _ => "error",
    };
    let source =
        crate::auth::network::client_ip(req, &state.trusted_proxies).map(|i| i.to_string()).unwrap_or_default();
    // "rejected", not "failure": a stale token must not lock its partner out of the token
    // endpoint (lockout counts failed client authentications only).
    record_auth_event(state, None, source, "rejected", reason).await;
    Err(e.into())
}

/// The token's caller: from the cache, else from the store (and then remembered).
async fn lookup(state: &AppState, token: &str) -> Result<Principal, AuthError> {
    let hash = crate::util::sha256_hex(token.as_bytes());
    let epoch = match state.tokens.get(&hash, crate::util::now_ms()) {
        Ok(principal) => return Ok(principal),
        Err(epoch) => epoch,
    };
    let h2 = hash.clone();
    let (principal, expires_at) = state.db.read(move |c| tokens::lookup(c, &h2)).await?;
    state.tokens.remember(hash, principal.clone(), expires_at, crate::util::now_ms(), epoch);
    Ok(principal)
}

/// Refuses `id` (a client id or a facade login) calling from `source` while it is locked out
/// (see [`crate::auth::lockout`]); the refusal is an authentication event of its own.
pub async fn refuse_if_locked_out(state: &AppState, id: &str, source: &str) -> Result<(), ApiError> {
    let sec = state.settings.security.clone();
    let (id2, src2) = (id.to_string(), source.to_string());
    let now = crate::util::now_ms();
    let locked = state
        .db
        .read(move |c| {
            crate::auth::lockout::remaining(c, &sec, &id2, &src2, now).map_err(crate::store::StoreError::from)
        })
        .await?;
    match locked {
        None => Ok(()),
        Some(secs) => {
            record_auth_event(state, Some(id.to_string()), source.to_string(), "refused", "locked_out").await;
            tracing::warn!(client_id = %id, source = %source, "refused: locked out");
            Err(AuthError::LockedOut(secs).into())
        }
    }
}

/// Appends an authentication event (never the secret or token).
pub async fn record_auth_event(
    state: &AppState,
    client_id: Option<String>,
    source: String,
    outcome: &'static str,
    reason: &'static str,
) {
    let row = crate::store::models::AuthEventRow {
        id: 0,
        at: crate::util::now_ms(),
        client_id: client_id.map(|c| c.chars().take(200).collect()),
        source,
        outcome: outcome.into(),
        reason: reason.into(),
    };
    let result = state.db.write(move |c| c.insert_auth_event(&row).map_err(crate::store::StoreError::from)).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record the authentication event");
    }
}

fn bearer_token(req: &HttpRequest) -> Result<String, AuthError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or(AuthError::MissingToken)?;
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token.trim().to_string())
}

/// A partner token's contract, after every per-partner control: scope (`write` needs a
/// read-write token), source network, pinned client certificate, and rate limit. Operator
/// tokens are refused.
pub fn partner_of(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    write: bool,
) -> Result<Arc<Contract>, ApiError> {
    match principal.scope {
        Scope::Tickets => {}
        Scope::TicketsRead if !write => {}
        Scope::TicketsRead => return Err(AuthError::ReadOnly.into()),
        Scope::Admin | Scope::AdminRead => return Err(ApiError::PartnerOnly),
    }
    let id = principal.partner.as_deref().ok_or(ApiError::PartnerOnly)?;
    let registry = state.registry();
    let default = registry.get(id).cloned().ok_or_else(|| AuthError::UnknownPartner(id.to_string()))?;
    // The header decides; else the credential's binding; else the partner's default.
    let asked = requested_version(req)?;
    let contract = match asked.or(principal.contract_major) {
        None => default,
        Some(major) if asked.is_none() => registry.version(id, major).cloned().ok_or_else(|| {
            let live: Vec<String> = registry.versions(id).map(|c| c.major.to_string()).collect();
            ApiError::Auth(AuthError::RetiredContractVersion(format!(
                "this credential is bound to contract version {major}, which is no longer live (live: {}); issue one for a live version, or send Ebond-Contract-Version",
                live.join(", ")
            )))
        })?,
        Some(major) => registry.version(id, major).cloned().ok_or_else(|| {
            let live: Vec<String> = registry.versions(id).map(|c| c.major.to_string()).collect();
            ApiError::BadRequest {
                code: "unknown-contract-version",
                detail: format!(
                    "Ebond-Contract-Version {major}: this partner's live contract versions are {}",
                    live.join(", ")
                ),
            }
        })?,
    };
    if contract.sunset.is_some_and(|at| crate::util::now_ms() / 1000 >= at) {
        let live: Vec<String> = registry
            .versions(id)
            .filter(|c| c.sunset.is_none_or(|at| crate::util::now_ms() / 1000 < at))
            .map(|c| c.major.to_string())
            .collect();
        return Err(AuthError::RetiredContractVersion(format!(
            "contract version {} of this partner reached its sunset date; use {}",
            contract.version,
            if live.is_empty() {
                "a version the operator publishes".to_string()
            } else {
                format!("version {}", live.join(" or "))
            }
        ))
        .into());
    }
    if contract.deprecated.is_some() || contract.sunset.is_some() {
        let successor = registry.versions(id).map(|c| c.major).filter(|m| *m > contract.major).max();
        actix_web::HttpMessage::extensions_mut(req).insert(VersionNotice {
            deprecated: contract.deprecated,
            sunset: contract.sunset,
            successor: successor.map(|m| format!("/api/ebond/v1/partners/{id}/openapi.json?version={m}")),
        });
    }
    record_partner(req, &contract.id);
    check_partner_transport(state, req, &contract)?;
    Ok(contract)
}

/// Request extension: the contract version the request is served under is deprecated or has a
/// sunset date (the context middleware answers with `Deprecation`, `Sunset` and `Link`).
#[derive(Debug, Clone)]
pub struct VersionNotice {
    pub deprecated: Option<i64>,
    pub sunset: Option<i64>,
    /// The newest version's OpenAPI document.
    pub successor: Option<String>,
}

/// `Ebond-Contract-Version: 2` (the major version; `2.1` and `v2` are read as 2).
fn requested_version(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(v) = req.headers().get("ebond-contract-version") else { return Ok(None) };
    let text = v.to_str().unwrap_or("").trim();
    crate::contract::parse_major(text).map(Some).ok_or_else(|| ApiError::BadRequest {
        code: "unknown-contract-version",
        detail: format!("Ebond-Contract-Version `{text}`: send the contract's major version, e.g. 2"),
    })
}

/// Source network, client certificate pin and inbound rate limit of `contract`.
pub fn check_partner_transport(state: &AppState, req: &HttpRequest, contract: &Contract) -> Result<(), ApiError> {
    check_partner_origin(state, req, contract)?;
    // Each `serve` process on the database takes its share of the partner's limit (requests
    // are spread across them by whatever balances the load).
    let gateways = state.listener.as_ref().map_or(1, |l| l.gateways());
    let share = (contract.inbound_rate_per_minute / u32::try_from(gateways).unwrap_or(1)).max(1);
    if let Err(wait) = state.limiter.check(&contract.id, share) {
        return Err(AuthError::RateLimited {
            per_minute: contract.inbound_rate_per_minute,
            retry_after_secs: wait.as_secs().max(1),
        }
        .into());
    }
    Ok(())
}

/// Where the request comes from: the partner's source networks and pinned client certificate.
pub fn check_partner_origin(state: &AppState, req: &HttpRequest, contract: &Contract) -> Result<(), ApiError> {
    if !contract.source_networks.is_empty() {
        let ip = crate::auth::network::client_ip(req, &state.trusted_proxies);
        if !ip.is_some_and(|ip| contract.source_allowed(ip)) {
            let shown = ip.map(|i| i.to_string()).unwrap_or_else(|| "an unknown address".into());
            tracing::warn!(source = %shown, "request from outside the partner's networks refused");
            return Err(AuthError::SourceNotAllowed(shown).into());
        }
    }
    if !contract.client_cert_sha256.is_empty() {
        match crate::auth::network::client_cert(req) {
            Some(fp)
                if contract
                    .client_cert_sha256
                    .iter()
                    .any(|pin| crate::util::constant_time_eq(pin.as_bytes(), fp.as_bytes())) => {}
            Some(_) => {
                tracing::warn!("client certificate does not match the partner's pinned certificates");
                return Err(AuthError::ClientCertificate(
                    "the client certificate is not one pinned for this partner".into(),
                )
                .into());
            }
            // Pinning a certificate means the partner must present it.
            None => {
                return Err(AuthError::ClientCertificate(
                    "this partner must present its client certificate (mutual TLS)".into(),
                )
                .into())
            }
        }
    }
    Ok(())
}
