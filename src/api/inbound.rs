//! The steps every partner endpoint shares: authenticate, bound and parse the body, and audit
//! rejected requests (accepted writes are audited inside their own transaction).

use super::context::{record_partner, RequestId};
use super::problem::ApiError;
use super::AppState;
use crate::auth::{tokens, AuthError, Principal, Scope};
use crate::contract::Contract;
use crate::store::audit::AuditRepo;
use crate::store::models::TransactionRow;
use crate::sync::AuditInfo;
use crate::{with_conn, write_tx};
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use std::sync::Arc;

/// Authenticates the bearer token of `req`.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, ApiError> {
    let token = bearer_token(req)?;
    let principal = state
        .db
        .run(move |conn| with_conn!(conn, c => tokens::check(c, &token)))
        .await?;
    Ok(principal)
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?;
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MissingToken.into());
    }
    Ok(token.trim().to_string())
}

/// A partner token's contract; operator tokens are refused.
pub fn partner_of(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Arc<Contract>, ApiError> {
    if principal.scope != Scope::Tickets {
        return Err(ApiError::PartnerOnly);
    }
    let id = principal.partner.as_deref().ok_or(ApiError::PartnerOnly)?;
    let contract = state
        .registry
        .get(id)
        .cloned()
        .ok_or_else(|| AuthError::UnknownPartner(id.to_string()))?;
    record_partner(req, &contract.id);
    Ok(contract)
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
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            got: if ct.is_empty() {
                "(none)".into()
            } else {
                ct.to_string()
            },
        })
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest {
            code: "bad-body",
            detail: format!("could not read the body: {e}"),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_string(),
    })
}

pub fn audit_info(req: &HttpRequest, body: &[u8]) -> AuditInfo {
    AuditInfo {
        request_id: RequestId::of(req),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| req.path().to_string()),
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
        .run(move |conn| {
            write_tx!(conn, c => {
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
        })
        .await;
    if let Err(e) = outcome {
        tracing::error!(error = %e, "could not write the transaction log row");
    }
}
