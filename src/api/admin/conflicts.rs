//! `/api/ebond/v1/admin/conflicts`: the queue of conflicting writes held for people — list,
//! show (the three values in canonical and in each side's vocabulary), resolve one, resolve
//! many by filter (with a dry-run count first).

use crate::api::audit::{request_facts, Audited};
use crate::api::extract::{Body, Operator, Query};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::contract::Registry;
use crate::domain::ids::TicketNumber;
use crate::store::conflicts::{Conflict, ConflictFilter};
use crate::store::StoreError;
use crate::sync::conflicts::{
    self as sync_conflicts, stored, BulkOutcome, BulkResolution, Choice, ConflictStatus, Resolution, Resolved,
};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// open, resolved, superseded or overwritten.
    pub status: Option<String>,
    /// The partner whose write conflicted.
    pub partner: Option<String>,
    /// Hub ticket number.
    pub ticket: Option<String>,
    /// Only records with a larger id (paging forward).
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// A conflict record: one partner's write that met another party's change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConflictView {
    pub id: i64,
    pub ticket: String,
    /// The partner whose write conflicted.
    pub partner: String,
    /// The request id of that write (in the transaction log).
    pub request_id: String,
    /// open, resolved, superseded or overwritten.
    pub status: String,
    /// The ticket version the partner had last seen (read, or received in a push); its own
    /// writes are known to it besides.
    pub seen_version: i64,
    /// The ticket version when the write came.
    pub ticket_version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
    pub comment: Option<String>,
    pub fields: Vec<ConflictFieldView>,
}

/// One field of a conflict: the value the partner last saw (base), the one it proposed, and the
/// one another party had set — canonical, and in each side's vocabulary.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConflictFieldView {
    /// Canonical field.
    pub field: String,
    /// held (waits for a resolution) or overwritten (the partner's value was written).
    pub disposition: String,
    pub base: Value,
    pub proposed: Value,
    pub current: Value,
    /// Who set the current value (partner id or operator), at which version, when.
    pub current_by: String,
    pub current_version: i64,
    pub current_at: String,
    /// The value the resolution chose.
    pub chosen: Option<Value>,
    /// The same values in the vocabulary of each partner involved (the writer, and the partner
    /// that set the current value).
    pub sides: BTreeMap<String, SideValues>,
}

/// A field's values in one partner's vocabulary.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SideValues {
    /// That partner's name for the field.
    pub field: String,
    pub base: Value,
    pub proposed: Value,
    pub current: Value,
    pub chosen: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConflictPage {
    pub items: Vec<ConflictView>,
    /// Pass as `after` for the next page.
    pub next_after: Option<i64>,
}

/// A conflict record as operators see it.
pub fn view(registry: &Registry, (row, fields): Conflict) -> ConflictView {
    let fields = fields
        .into_iter()
        .map(|f| {
            let (base, proposed, current) = (stored(&f.base), stored(&f.proposed), stored(&f.current));
            let chosen = f.chosen.as_deref().map(stored);
            let sides = [row.partner.as_str(), f.current_by.as_str()]
                .into_iter()
                .filter_map(|p| registry.get(p))
                .map(|c| {
                    let out = |v: &Value| sync_conflicts::outward(c, &f.field, v);
                    let side = SideValues {
                        field: c.partner_name_of(&f.field),
                        base: out(&base),
                        proposed: out(&proposed),
                        current: out(&current),
                        chosen: chosen.as_ref().map(out),
                    };
                    (c.id.to_string(), side)
                })
                .collect();
            ConflictFieldView {
                field: f.field,
                disposition: f.disposition,
                base,
                proposed,
                current,
                current_by: f.current_by,
                current_version: f.current_version,
                current_at: crate::util::ms_to_rfc3339(f.current_at),
                chosen,
                sides,
            }
        })
        .collect();
    ConflictView {
        id: row.id,
        ticket: row.ticket_number,
        partner: row.partner,
        request_id: row.request_id,
        status: row.status,
        seen_version: row.seen_version,
        ticket_version: row.ticket_version,
        created_at: crate::util::ms_to_rfc3339(row.created_at),
        updated_at: crate::util::ms_to_rfc3339(row.updated_at),
        resolved_by: row.resolved_by,
        resolved_at: row.resolved_at.map(crate::util::ms_to_rfc3339),
        comment: row.resolution_comment,
        fields,
    }
}

fn bad_query(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest { code: "bad-query", detail: detail.into() }
}

/// A filter from query or body members, checked (status known, ticket number well formed).
pub fn filter(status: Option<&str>, partner: Option<String>, ticket: Option<&str>) -> Result<ConflictFilter, String> {
    if let Some(s) = status {
        ConflictStatus::parse(s)
            .ok_or_else(|| format!("status must be open, resolved, superseded or overwritten, not `{s}`"))?;
    }
    let ticket = ticket.map(|t| TicketNumber::parse(t).map(|n| n.to_string())).transpose()?;
    Ok(ConflictFilter { status: status.map(str::to_string), partner, ticket, after_id: None, limit: 0 })
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/conflicts", tag = "admin", operation_id = "conflicts_list", params(ConflictQuery),
    responses(
        (status = 200, description = "Conflict records, oldest first", body = ConflictPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<ConflictQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    let mut f = filter(q.status.as_deref(), q.partner, q.ticket.as_deref()).map_err(bad_query)?;
    f.limit = q.limit.unwrap_or(state.settings.limits.default_page_size).clamp(1, state.settings.limits.max_page_size);
    f.after_id = q.after;
    let limit = f.limit;
    let rows = state.db.read(move |c| c.list_conflicts(&f).map_err(StoreError::from)).await?;
    let next_after = (rows.len() as i64 == limit).then(|| rows.last().map(|(r, _)| r.id)).flatten();
    let items = rows.into_iter().map(|c| view(&state.registry(), c)).collect();
    Ok(HttpResponse::Ok().json(ConflictPage { items, next_after }))
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/conflicts/{id}", tag = "admin", operation_id = "conflicts_show",
    params(("id" = i64, Path, description = "Conflict id")),
    responses(
        (status = 200, description = "The record with base, proposed and current values", body = ConflictView),
        (status = 404, description = "No such conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn show(state: web::Data<AppState>, _: Operator, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    match state.db.read(move |c| c.conflict(id).map_err(StoreError::from)).await? {
        Some(c) => Ok(HttpResponse::Ok().json(view(&state.registry(), c))),
        None => Err(crate::sync::SyncError::ConflictNotFound { id }.into()),
    }
}

/// What to do with a held field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceName {
    KeepCurrent,
    TakePartner,
    /// The operator's own value, in `value` (canonical vocabulary).
    Custom,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldChoice {
    pub choice: ChoiceName,
    /// For `custom`: the canonical value (`null` clears the field).
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
}

/// A member that is present, even as `null` (absent stays `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An operator's resolution of one conflict.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// Canonical field → choice.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldChoice>,
    /// The choice for held fields `fields` does not name.
    pub choice: Option<ChoiceName>,
    pub comment: Option<String>,
}

/// Resolve every open conflict a filter matches.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkResolveRequest {
    pub partner: Option<String>,
    /// Hub ticket number.
    pub ticket: Option<String>,
    /// keep_current or take_partner, for every held field.
    pub choice: ChoiceName,
    pub comment: Option<String>,
    /// Only count what the filter matches.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a resolution.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResolveResponse {
    pub conflict: ConflictView,
    /// The ticket's version after the resolution.
    pub version: i64,
    /// Partners the resolution was pushed to.
    pub pushed_to: Vec<String>,
}

pub(super) fn invalid_body(e: serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        code: "bad-body",
        detail: format!("the request body does not fit the documented shape: {e}"),
    }
}

fn choice(name: ChoiceName, value: Option<Value>, field: &str) -> Result<Choice, ApiError> {
    Ok(match (name, value) {
        (ChoiceName::KeepCurrent, None) => Choice::KeepCurrent,
        (ChoiceName::TakePartner, None) => Choice::TakePartner,
        (ChoiceName::Custom, Some(v)) => Choice::Custom(v),
        (ChoiceName::Custom, None) => {
            return Err(crate::sync::SyncError::ConflictChoice {
                field: field.to_string(),
                reason: "a custom choice needs a `value`".into(),
            }
            .into())
        }
        (_, Some(_)) => {
            return Err(crate::sync::SyncError::ConflictChoice {
                field: field.to_string(),
                reason: "`value` goes only with the `custom` choice".into(),
            }
            .into())
        }
    })
}

/// The operational webhook hears of each resolution (and of records it superseded).
pub fn announce(state: &AppState, r: &Resolved) {
    let (row, _) = &r.conflict;
    state.alerts.notify(
        "conflict.resolved",
        serde_json::json!({"conflict": row.id, "ticket": row.ticket_number, "partner": row.partner,
                           "status": row.status, "resolved_by": row.resolved_by}),
    );
    for (id, partner) in &r.superseded {
        state.alerts.notify(
            "conflict.resolved",
            serde_json::json!({"conflict": id, "ticket": row.ticket_number, "partner": partner, "status": "superseded"}),
        );
    }
    if !r.fanned_out_to.is_empty() {
        state.wake_outbox();
    }
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/conflicts/{id}/resolve", tag = "admin", operation_id = "conflicts_resolve",
    params(("id" = i64, Path, description = "Conflict id")),
    request_body(content = ResolveRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Resolved: the chosen values are written and pushed to every partner", body = ResolveResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not open any more", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A choice is missing or invalid, or the workflow refuses the result", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resolve(
    req: HttpRequest,
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<i64>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let body: ResolveRequest = serde_json::from_value(body.json().await?).map_err(invalid_body)?;
    let mut choices = BTreeMap::new();
    for (field, c) in body.fields {
        let parsed = choice(c.choice, c.value, &field)?;
        choices.insert(field, parsed);
    }
    let default = body.choice.map(|c| choice(c, None, "choice")).transpose()?;
    let audit = request_facts(&req);
    let registry = state.registry();
    let label = operator.label();
    let resolved = state
        .db
        .write(move |c| {
            let r = Resolution {
                registry: &registry,
                id,
                choices,
                default,
                operator: label,
                comment: body.comment,
                audit,
                now: crate::util::now_ms(),
            };
            sync_conflicts::resolve(c, r)
        })
        .await?;
    tracing::info!(conflict = id, operator = %operator.label(), pushed_to = ?resolved.fanned_out_to, "conflict resolved");
    announce(&state, &resolved);
    let answer = ResolveResponse {
        version: resolved.version,
        pushed_to: resolved.fanned_out_to.clone(),
        conflict: view(&state.registry(), resolved.conflict),
    };
    // Its row was written in the resolution's transaction.
    let mut resp = HttpResponse::Ok().json(answer);
    resp.extensions_mut().insert(Audited);
    Ok(resp)
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/conflicts/resolve", tag = "admin", operation_id = "conflicts_resolve_many",
    request_body(content = BulkResolveRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "How many matched and were resolved; those refused stay open", body = BulkOutcome),
        (status = 400, description = "Malformed body or filter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resolve_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    operator: Operator,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let body: BulkResolveRequest = serde_json::from_value(body.json().await?).map_err(invalid_body)?;
    let choice = match body.choice {
        ChoiceName::KeepCurrent => Choice::KeepCurrent,
        ChoiceName::TakePartner => Choice::TakePartner,
        ChoiceName::Custom => {
            return Err(ApiError::BadRequest {
                code: "bad-body",
                detail: "a bulk resolution takes keep_current or take_partner; resolve one conflict for a custom value"
                    .into(),
            })
        }
    };
    let f = filter(None, body.partner, body.ticket.as_deref())
        .map_err(|d| ApiError::BadRequest { code: "bad-body", detail: d })?;
    let bulk = BulkResolution {
        filter: f,
        choice,
        operator: operator.label(),
        comment: body.comment,
        audit: request_facts(&req),
        dry_run: body.dry_run,
    };
    let out: BulkOutcome = sync_conflicts::resolve_matching(&state.db, state.registry(), bulk).await?;
    tracing::info!(
        matched = out.matched,
        resolved = out.resolved,
        refused = out.refused.len(),
        dry_run = out.dry_run,
        "conflicts resolved in bulk"
    );
    for r in &out.done {
        announce(&state, r);
    }
    // Each resolution's row was written in its own transaction; a dry run gets one here.
    let mut resp = HttpResponse::Ok().json(&out);
    if !out.dry_run {
        resp.extensions_mut().insert(Audited);
    }
    Ok(resp)
}
