//! `/api/ebond/v1/admin/…`: operator endpoints (admin tokens only): the audit trail,
//! authentication events and loaded partners here; contracts in force and their reload in
//! [`contracts`]; delivery operations in [`delivery`], the
//! conflict queue in [`conflicts`], pull sync and reconciliation in [`sync`].

pub mod conflicts;
pub mod contracts;
pub mod delivery;
pub mod sync;

use crate::api::extract::{Operator, Query};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::store::audit::TransactionFilter;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// Partner id.
    pub partner: Option<String>,
    /// Hub ticket number.
    pub ticket: Option<String>,
    /// accepted, rejected or replayed.
    pub result: Option<String>,
    /// Only rows older than this id (for paging back).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// One audited request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionView {
    pub id: i64,
    pub at: String,
    pub partner: Option<String>,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub payload_sha256: String,
    pub result: String,
    pub status: i32,
    pub error_codes: Vec<String>,
    pub ticket: Option<String>,
}

pub fn transaction_view(r: crate::store::models::TransactionRow) -> TransactionView {
    TransactionView {
        id: r.id,
        at: crate::util::ms_to_rfc3339(r.at),
        partner: r.partner,
        request_id: r.request_id,
        method: r.method,
        path: r.path,
        payload_sha256: r.payload_sha256,
        result: r.result,
        status: r.status,
        error_codes: r.error_codes.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        ticket: r.ticket_number,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionPage {
    pub items: Vec<TransactionView>,
    /// Pass as `before` for older rows.
    pub next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/transactions", tag = "admin",
    params(TransactionQuery),
    responses(
        (status = 200, description = "Newest first", body = TransactionPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn transactions(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<TransactionQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    if let Some(r) = &q.result {
        if !["accepted", "rejected", "replayed"].contains(&r.as_str()) {
            return Err(ApiError::BadRequest {
                code: "bad-query",
                detail: "result must be accepted, rejected or replayed".into(),
            });
        }
    }
    let limit =
        q.limit.unwrap_or(state.settings.limits.default_page_size).clamp(1, state.settings.limits.max_page_size);
    let filter =
        TransactionFilter { partner: q.partner, ticket_number: q.ticket, result: q.result, before_id: q.before, limit };
    let rows = state.db.read(move |c| c.query_transactions(&filter).map_err(crate::store::StoreError::from)).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten();
    let items = rows.into_iter().map(transaction_view).collect();
    Ok(HttpResponse::Ok().json(TransactionPage { items, next_before }))
}

/// A loaded partner contract, in brief.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerSummary {
    pub id: String,
    pub name: String,
    pub contract_version: String,
    /// The contract's file and the SHA-256 of its text as loaded.
    pub file: String,
    pub file_sha256: String,
    /// Every live version of the partner's contract (callers pick one with
    /// `Ebond-Contract-Version`); `contract_version` is the default.
    pub versions: Vec<String>,
    pub may_create: bool,
    pub write: Vec<String>,
    pub read: Vec<String>,
    pub subscribes: bool,
}

pub fn summaries(state: &AppState) -> Vec<PartnerSummary> {
    let registry = state.registry();
    registry
        .partners()
        .map(|c| PartnerSummary {
            id: c.id.to_string(),
            name: c.name.clone(),
            contract_version: c.version.clone(),
            file: c.file.display().to_string(),
            file_sha256: c.file_sha256.clone(),
            versions: registry.versions(&c.id).map(|v| v.version.clone()).collect(),
            may_create: c.access.create,
            write: c.access.write.iter().cloned().collect(),
            read: c.access.read.iter().cloned().collect(),
            subscribes: c.outbound.as_ref().is_some_and(|o| !o.subscriptions.is_empty()),
        })
        .collect()
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/partners", tag = "admin",
    responses(
        (status = 200, description = "Loaded contracts", body = Vec<PartnerSummary>),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn partners(state: web::Data<AppState>, _: Operator) -> HttpResponse {
    HttpResponse::Ok().json(summaries(&state))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthEventQuery {
    pub client_id: Option<String>,
    /// success, failure, refused (locked out) or cleared (an operator cleared a lockout).
    pub outcome: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// One authentication attempt (never the secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthEventView {
    pub id: i64,
    pub at: String,
    pub client_id: Option<String>,
    pub source: String,
    pub outcome: String,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthEventPage {
    pub items: Vec<AuthEventView>,
    pub next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/auth-events", tag = "admin",
    params(AuthEventQuery),
    responses(
        (status = 200, description = "Authentication attempts, newest first", body = AuthEventPage),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn auth_events(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<AuthEventQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    let limit =
        q.limit.unwrap_or(state.settings.limits.default_page_size).clamp(1, state.settings.limits.max_page_size);
    let rows = state
        .db
        .read(move |c| {
            c.list_auth_events(q.client_id.as_deref(), q.outcome.as_deref(), q.before, limit)
                .map_err(crate::store::StoreError::from)
        })
        .await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten();
    let items = rows
        .into_iter()
        .map(|r| AuthEventView {
            id: r.id,
            at: crate::util::ms_to_rfc3339(r.at),
            client_id: r.client_id,
            source: r.source,
            outcome: r.outcome,
            reason: r.reason,
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuthEventPage { items, next_before }))
}

/// Which lockout to clear: a client id, a source address, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockoutClear {
    pub client_id: Option<String>,
    /// The address the failures came from, as `auth-events` shows it.
    pub source: Option<String>,
}

/// A lockout cleared: failures before `cleared_at` no longer count.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockoutCleared {
    pub client_id: Option<String>,
    pub source: Option<String>,
    pub cleared_at: String,
}

/// Records the clearing (an authentication event with outcome `cleared`, by `who`).
pub fn clear_lockout(
    c: &mut dyn crate::store::Repos,
    clear: &LockoutClear,
    who: &str,
    now: i64,
) -> Result<(), crate::store::StoreError> {
    let row = crate::store::models::AuthEventRow {
        id: 0,
        at: now,
        client_id: clear.client_id.clone(),
        // No real address is `-`: a clearing by client id alone leaves source lockouts be.
        source: clear.source.clone().unwrap_or_else(|| "-".into()),
        outcome: crate::store::auth_events::CLEARED.into(),
        reason: who.into(),
    };
    Ok(c.insert_auth_event(&row)?)
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/lockouts/clear", tag = "admin",
    request_body(content = LockoutClear, content_type = "application/json"),
    responses(
        (status = 200, description = "Failures so far no longer count towards a lockout", body = LockoutCleared),
        (status = 400, description = "Neither client_id nor source given, or a malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn lockout_clear(
    state: web::Data<AppState>,
    operator: Operator,
    body: crate::api::extract::Body,
) -> Result<HttpResponse, ApiError> {
    let clear: LockoutClear = serde_json::from_value(body.json().await?).map_err(conflicts::invalid_body)?;
    if clear.client_id.is_none() && clear.source.is_none() {
        return Err(ApiError::BadRequest {
            code: "bad-body",
            detail: "name the locked-out `client_id`, the `source` address, or both".into(),
        });
    }
    let now = crate::util::now_ms();
    let who = operator.label();
    let answer = LockoutCleared {
        client_id: clear.client_id.clone(),
        source: clear.source.clone(),
        cleared_at: crate::util::ms_to_rfc3339(now),
    };
    state.db.write(move |c| clear_lockout(c, &clear, &who, now)).await?;
    Ok(HttpResponse::Ok().json(answer))
}
