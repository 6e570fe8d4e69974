//! `POST /api/ebond/v1/events`: signed event callbacks (e.g. ENOVIA webhooks). The Standard
//! Webhooks signature identifies the partner (the one whose `webhook_secret` verifies it); the
//! timestamp must be within tolerance; a `webhook-id` is accepted once per partner. The event
//! then goes through the same contract validation, rules and transaction as the ticket
//! endpoints: it creates the ticket when the partner's id is new, else updates it.

use super::audit::{request_facts, Reference};
use super::caller::check_partner_transport;
use super::context::record_partner;
use super::extract::Body;
use super::problem::{ApiError, Problem};
use super::tickets::TicketWriteResponse;
use super::AppState;
use crate::auth::AuthError;
use crate::contract::inbound::Op;
use crate::contract::Contract;
use crate::domain::ids::TicketReference;
use crate::store::StoreError;
use crate::sync::write::{apply, WriteCommand, WriteOp};
use crate::sync::SyncError;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::Value;
use std::sync::Arc;

#[utoipa::path(
    post, path = "/api/ebond/v1/events", tag = "tickets",
    request_body(content = crate::api::tickets::TicketCreate, content_type = "application/json",
                 description = "The partner's payload, in its contract's vocabulary"),
    params(
        ("webhook-id" = String, Header, description = "Unique per event; accepted once"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds; at most 5 minutes off"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated"),
    ),
    responses(
        (status = 201, description = "Ticket created", body = TicketWriteResponse),
        (status = 200, description = "Ticket updated", body = TicketWriteResponse),
        (status = 401, description = "Missing, stale or invalid signature", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This webhook-id was already accepted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Contract or workflow violation", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn receive(req: HttpRequest, state: web::Data<AppState>, body: Body) -> Result<HttpResponse, ApiError> {
    // The signature is over the bytes as sent, and it is what authenticates the caller.
    let body = body.bytes().await?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (Some(id), Some(ts), Some(sig)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return Err(
            AuthError::Signature("webhook-id, webhook-timestamp and webhook-signature are required".into()).into()
        );
    };
    if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::Signature("webhook-id must be 1 to 256 visible ASCII characters".into()).into());
    }
    let ts: i64 =
        ts.trim().parse().map_err(|_| AuthError::Signature("webhook-timestamp is not Unix seconds".into()))?;
    let skew = chrono::Utc::now().timestamp().abs_diff(ts);
    if skew > state.settings.security.webhook_tolerance_secs.unsigned_abs() {
        return Err(AuthError::Signature(format!(
            "webhook-timestamp is {skew} s away from now; at most {} s is accepted",
            state.settings.security.webhook_tolerance_secs
        ))
        .into());
    }
    let contract = signer(&state, &id, ts, &body, &sig).await?;
    record_partner(&req, &contract.id);
    check_partner_transport(&state, &req, &contract)?;
    let json = crate::api::json::parse(&body, state.settings.security.max_json_depth)?;
    // The partner's own id decides between create and update.
    // An id that is no ticket id at all (a control character in it) is left to the contract's
    // validation below, which names the field.
    let pid = contract
        .field_for(crate::domain::fields::PARTNER_TICKET_ID)
        .and_then(|f| f.pointer.get(&json))
        .and_then(Value::as_str)
        .and_then(|p| TicketReference::parse(p).ok());
    let exists = match pid.clone() {
        Some(p) => {
            let me = contract.id.clone();
            state.db.read(move |c| c.xref_by_partner_id(&me, &p).map_err(StoreError::from)).await?.is_some()
        }
        None => false,
    };
    let (op, mapped) = match (exists, pid) {
        (true, Some(p)) => {
            req.extensions_mut().insert(Reference(p.to_string()));
            (WriteOp::Update { reference: p }, contract.map_inbound(&json, Op::Update)?)
        }
        _ => (WriteOp::Create, contract.map_inbound(&json, Op::Create)?),
    };
    let registry = state.registry();
    let audit = request_facts(&req);
    let outcome = state
        .db
        .write(move |c| {
            let now = crate::util::now_ms();
            if !c.remember_webhook(&contract.id, &id, now)? {
                return Err(SyncError::Replayed { webhook_id: id.clone() });
            }
            let cmd = WriteCommand {
                registry: &registry,
                contract: &contract,
                op,
                mapped,
                if_match: None,
                idempotency: None,
                audit,
                now,
                from_record: false,
                dry_run: false,
            };
            apply(c, cmd)
        })
        .await?;
    Ok(super::tickets::write_response(&state, outcome))
}

/// The partner whose webhook secret verifies the signature (constant-time comparison).
async fn signer(state: &AppState, id: &str, ts: i64, body: &[u8], header: &str) -> Result<Arc<Contract>, ApiError> {
    let offered: Vec<&str> = header.split_whitespace().filter_map(|s| s.strip_prefix("v1,")).collect();
    // A secret the database could not hand over may be the one that verifies: then the answer
    // is "retry later", never a permanent-looking 401.
    let mut store_failed = None;
    for contract in state.registry().partners() {
        let Some(secret_ref) = &contract.webhook_secret else { continue };
        if store_failed.is_some() && matches!(secret_ref, crate::contract::SecretRef::Db(_)) {
            continue; // the same database would keep this one waiting too
        }
        let secret = match state.secrets.resolve(&contract.id, secret_ref).await {
            Ok(s) => s,
            Err(crate::secrets::SecretError::Store(e)) if e.is_transient() => {
                tracing::warn!(partner = %contract.id, error = %e, "webhook secret unreadable: database unavailable");
                store_failed = Some(e);
                continue;
            }
            Err(e) => {
                tracing::error!(partner = %contract.id, error = %e, "webhook secret unavailable");
                continue;
            }
        };
        let expected = match crate::webhooks::sign(secret.expose(), id, ts, body) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(partner = %contract.id, error = %e, "webhook secret is unusable: it must be whsec_ followed by base64");
                continue;
            }
        };
        let expected = expected.trim_start_matches("v1,");
        if offered.iter().any(|o| crate::util::constant_time_eq(o.as_bytes(), expected.as_bytes())) {
            return Ok(contract.clone());
        }
    }
    if let Some(e) = store_failed {
        return Err(e.into());
    }
    Err(AuthError::Signature("the signature does not verify with any partner's webhook secret".into()).into())
}
