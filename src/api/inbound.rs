//! The steps every partner endpoint shares: authenticate, bound and parse the body, and audit
//! rejected requests (accepted writes are audited inside their own transaction).

use super::context::{record_partner, RequestId};
use super::problem::ApiError;
use super::AppState;
use crate::auth::{tokens, AuthError, Principal, Scope};
use crate::contract::Contract;
use crate::store::models::TransactionRow;
use crate::sync::AuditInfo;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use std::sync::Arc;

/// Authenticates the bearer token of `req`. Failures are recorded as authentication events.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, ApiError> {
    let checked = match bearer_token(req) {
        Ok(token) => state.db.read(move |c| tokens::check(c, &token)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &checked {
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
    }
    Ok(checked?)
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
        Scope::Admin => return Err(ApiError::PartnerOnly),
    }
    let id = principal.partner.as_deref().ok_or(ApiError::PartnerOnly)?;
    let contract = state.registry.get(id).cloned().ok_or_else(|| AuthError::UnknownPartner(id.to_string()))?;
    record_partner(req, &contract.id);
    check_partner_transport(state, req, &contract)?;
    Ok(contract)
}

/// Source network, client certificate pin and inbound rate limit of `contract`.
pub fn check_partner_transport(state: &AppState, req: &HttpRequest, contract: &Contract) -> Result<(), ApiError> {
    check_partner_origin(state, req, contract)?;
    if let Err(wait) = state.limiter.check(&contract.id, contract.inbound_rate_per_minute) {
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

/// Operators only.
pub async fn require_admin(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let principal = authenticate(state, req).await?;
    if principal.scope == Scope::Admin {
        Ok(())
    } else {
        Err(ApiError::AdminOnly)
    }
}

/// `application/json` or any `application/*+json`; anything else (or nothing) is 415.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType { got: if ct.is_empty() { "(none)".into() } else { ct.to_string() } })
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
pub async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest { code: "bad-body", detail: format!("could not read the body: {e}") })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Nesting depth of a JSON text (brackets outside strings), without parsing it.
fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses JSON, pointing at the line and column of a syntax error; refuses bodies nested deeper
/// than `max_depth` before parsing them.
pub fn parse_json_limited(body: &[u8], max_depth: usize) -> Result<serde_json::Value, ApiError> {
    if json_depth(body) > max_depth {
        return Err(ApiError::BadRequest {
            code: "json-too-deep",
            detail: format!("the body nests JSON more than {max_depth} levels deep"),
        });
    }
    parse_json(body)
}

/// Parses JSON, pointing at the line and column of a syntax error.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson {
            line: 1,
            column: 1,
            message: "the body is empty; send a JSON object".into(),
        });
    }
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line").next().unwrap_or_default().to_string(),
    })
}

pub fn audit_info(req: &HttpRequest, body: &[u8]) -> AuditInfo {
    AuditInfo {
        request_id: RequestId::of(req),
        method: req.method().to_string(),
        path: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| req.path().to_string()),
        payload_sha256: crate::util::sha256_hex(body),
    }
}

/// Records a request in the transaction log outside any write transaction: rejected requests,
/// and reads. `reference` (the partner's ticket id from the path) names the ticket when it
/// resolves.
pub async fn audit(
    state: &AppState,
    info: AuditInfo,
    partner: Option<String>,
    reference: Option<String>,
    result: &'static str,
    status: u16,
    error_codes: String,
) {
    let outcome = state
        .db
        .write(move |c| {
            let ticket = match (&partner, &reference) {
                (Some(p), Some(r)) => crate::sync::read::resolve(c, p, r).ok().map(|(t, _)| (t.id, t.number)),
                _ => None,
            };
            c.insert_transaction(&TransactionRow {
                id: 0,
                at: crate::util::now_ms(),
                partner,
                request_id: info.request_id,
                method: info.method,
                path: info.path,
                payload_sha256: info.payload_sha256,
                result: result.to_string(),
                status: i32::from(status),
                error_codes,
                ticket_id: ticket.as_ref().map(|t| t.0),
                ticket_number: ticket.map(|t| t.1),
            })
            .map_err(crate::store::StoreError::from)
        })
        .await;
    if let Err(e) = outcome {
        tracing::error!(error = %e, "could not write the transaction log row");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(super::json_depth(br#"{"a": [1, {"b": "[[[{{{"}]}"#), 3);
        assert_eq!(super::json_depth(br#"{"a": "\"{"}"#), 1);
        assert_eq!(super::json_depth(b"[[[[[]]]]]"), 5);
    }
}
