//! Shadow mode: a partner's request is also mapped with the shadow contract
//! (`<partner>.shadow.toml`) when one is loaded; what it would do differently (refuse, accept,
//! map to other canonical values) is recorded, off the request's path, and listed at
//! `GET /admin/partners/{id}/shadow` until the shadow is promoted or dropped. Only the live
//! contract is enforced.

use super::extract::Operator;
use super::problem::{ApiError, Problem};
use super::AppState;
use crate::contract::inbound::{MapError, Mapped, Op};
use crate::contract::Contract;
use crate::store::shadow::ShadowDiff;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use utoipa::ToSchema;

/// Requests this process evaluated against each shadow (partner, shadow file digest).
#[derive(Default)]
pub struct ShadowCounters(Mutex<BTreeMap<(String, String), std::sync::Arc<AtomicU64>>>);

impl ShadowCounters {
    fn counter(&self, partner: &str, sha: &str) -> std::sync::Arc<AtomicU64> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((partner.to_string(), sha.to_string())).or_default().clone()
    }
}

/// What the shadow would have done differently with one request, if anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub kind: &'static str,
    pub detail: Value,
}

/// Compares the live contract's mapping of a payload with the shadow's (pure).
pub fn compare(live: &Result<Mapped, MapError>, shadow: &Result<Mapped, MapError>) -> Option<Difference> {
    let problem = |e: &MapError| serde_json::to_value(ApiError::from(e.clone()).problem()).unwrap_or(Value::Null);
    match (live, shadow) {
        (Ok(_), Err(e)) => Some(Difference { kind: "would_refuse", detail: json!({"shadow": problem(e)}) }),
        (Err(e), Ok(m)) => {
            Some(Difference { kind: "would_accept", detail: json!({"live": problem(e), "shadow_changes": m.changes}) })
        }
        (Err(a), Err(b)) => {
            let (pa, pb) = (problem(a), problem(b));
            (pa != pb).then(|| Difference { kind: "refuses_differently", detail: json!({"live": pa, "shadow": pb}) })
        }
        (Ok(a), Ok(b)) => {
            let keys: BTreeSet<&String> = a.changes.keys().chain(b.changes.keys()).collect();
            let mut fields = serde_json::Map::new();
            for k in keys {
                let (x, y) = (a.changes.get(k), b.changes.get(k));
                if x != y {
                    fields.insert(k.clone(), json!({"live": x, "shadow": y}));
                }
            }
            if a.partner_ticket_id != b.partner_ticket_id {
                fields.insert(
                    "partner_ticket_id".into(),
                    json!({"live": a.partner_ticket_id, "shadow": b.partner_ticket_id}),
                );
            }
            if a.journal != b.journal {
                fields.insert("journal".into(), json!({"live": a.journal, "shadow": b.journal}));
            }
            (!fields.is_empty()).then(|| Difference { kind: "maps_differently", detail: Value::Object(fields) })
        }
    }
}

/// Evaluates `payload` against `live`'s shadow, when one is loaded: counted here, a difference
/// recorded in the background (a failure to record is logged, never the request's).
/// A dry run is no live traffic: it is not evaluated.
pub fn evaluate(
    state: &AppState,
    req: &actix_web::HttpRequest,
    live: &Contract,
    payload: &Value,
    op: Op,
    live_result: &Result<Mapped, MapError>,
) {
    if super::tickets::dry_run_requested(req) {
        return;
    }
    let registry = state.registry();
    let Some(shadow) = registry.shadow(live.id.as_str()) else { return };
    let request_id = actix_web::HttpMessage::extensions(req)
        .get::<super::context::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let sha = shadow.file_sha256.clone();
    state.shadows.counter(live.id.as_str(), &sha).fetch_add(1, Ordering::Relaxed);
    let Some(diff) = compare(live_result, &shadow.map_inbound(payload, op)) else { return };
    let (db, partner) = (state.db.clone(), live.id.to_string());
    tokio::spawn(async move {
        let now = crate::util::now_ms();
        let detail = diff.detail.to_string();
        let written = db
            .write(move |c| {
                c.insert_shadow_diff(&partner, &sha, now, &request_id, diff.kind, &detail).map_err(StoreError::from)
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "a shadow contract's difference could not be recorded");
        }
    });
}

/// A shadow contract's record so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowReport {
    pub partner: String,
    pub live_version: String,
    pub shadow_version: String,
    pub shadow_file: String,
    pub shadow_sha256: String,
    /// Requests this process evaluated against the shadow since it was loaded.
    pub evaluated_here: u64,
    /// Requests (from every process) the shadow would have treated differently.
    pub differing: i64,
    /// Of those, how many of each kind: `would_refuse`, `would_accept`,
    /// `refuses_differently`, `maps_differently`.
    pub by_kind: BTreeMap<String, i64>,
    /// The newest differences, newest first.
    pub items: Vec<ShadowItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowItem {
    pub at: String,
    pub request_id: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: Value,
}

fn item(d: ShadowDiff) -> ShadowItem {
    ShadowItem {
        at: crate::util::ms_to_rfc3339(d.at),
        request_id: d.request_id,
        kind: d.kind,
        detail: serde_json::from_str(&d.detail).unwrap_or(Value::String(d.detail)),
    }
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/partners/{id}/shadow", tag = "admin",
    params(("id" = String, Path, description = "Partner id")),
    responses(
        (status = 200, description = "What the shadow contract would have done differently so far", body = ShadowReport),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner, or no shadow contract loaded for it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn report(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let registry = state.registry();
    let id = path.into_inner();
    let live = registry.get(&id).ok_or_else(|| ApiError::NotFound(format!("no partner `{id}` has a contract here")))?;
    let shadow = registry.shadow(&id).ok_or_else(|| {
        ApiError::NotFound(format!("no shadow contract is loaded for `{id}`: add {id}.shadow.toml and reload"))
    })?;
    let (partner, sha) = (id.clone(), shadow.file_sha256.clone());
    let (counts, diffs) = state
        .db
        .read(move |c| Ok::<_, StoreError>((c.shadow_counts(&partner, &sha)?, c.shadow_diffs(&partner, &sha, 100)?)))
        .await?;
    Ok(HttpResponse::Ok().json(ShadowReport {
        partner: id.clone(),
        live_version: live.version.clone(),
        shadow_version: shadow.version.clone(),
        shadow_file: shadow.file.display().to_string(),
        shadow_sha256: shadow.file_sha256.clone(),
        evaluated_here: state.shadows.counter(&id, &shadow.file_sha256).load(Ordering::Relaxed),
        differing: counts.iter().map(|(_, n)| n).sum(),
        by_kind: counts.into_iter().collect(),
        items: diffs.into_iter().map(item).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::inbound::FieldError;

    fn mapped(pairs: &[(&str, Value)]) -> Mapped {
        Mapped {
            changes: pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            journal: vec![],
            partner_ticket_id: None,
        }
    }

    #[test]
    fn differences_by_kind() {
        let ok = Ok(mapped(&[("urgency", json!(1))]));
        let other = Ok(mapped(&[("urgency", json!(2))]));
        let refused = Err(MapError::Invalid(vec![FieldError::new("title", "too_long", "too long")]));
        assert_eq!(compare(&ok, &ok.clone()), None);
        assert_eq!(compare(&ok, &refused).map(|d| d.kind), Some("would_refuse"));
        assert_eq!(compare(&refused, &ok).map(|d| d.kind), Some("would_accept"));
        assert_eq!(compare(&refused, &refused.clone()), None);
        let d = compare(&ok, &other).unwrap();
        assert_eq!(d.kind, "maps_differently");
        assert_eq!(d.detail["urgency"], json!({"live": 1, "shadow": 2}));
    }
}

/// What a promotion or a drop did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowOutcome {
    pub partner: String,
    /// `promoted` or `dropped`.
    pub action: String,
    /// The contract version now in force.
    pub contract_version: String,
    /// The reload that followed, as `POST /admin/contracts/reload` answers it.
    pub reload: super::admin::contracts::ReloadOutcome,
}

async fn settle(state: web::Data<AppState>, id: String, promote: bool) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(settle_shadow(&state, id, promote).await?))
}

/// Promotes (`true`) or drops `id`'s shadow contract, reloads every process and forgets the
/// shadow's differences: what the admin API and the console both do.
pub async fn settle_shadow(state: &web::Data<AppState>, id: String, promote: bool) -> Result<ShadowOutcome, ApiError> {
    let registry = state.registry();
    let moved = if promote {
        crate::contract::live::promote_shadow(&registry, &id)
    } else {
        crate::contract::live::drop_shadow(&registry, &id)
    };
    moved.map_err(|why| match registry.get(&id) {
        None => ApiError::NotFound(why),
        Some(_) if registry.shadow(&id).is_none() => ApiError::NotFound(why),
        Some(_) => ApiError::Internal(why),
    })?;
    let reload = super::admin::contracts::reload_everywhere(state, std::time::Duration::from_secs(5)).await?;
    let partner = id.clone();
    state.db.write(move |c| c.clear_shadow_diffs(&partner).map_err(StoreError::from)).await?;
    let version = state.registry().get(&id).map(|c| c.version.clone()).unwrap_or_default();
    Ok(ShadowOutcome {
        partner: id,
        action: if promote { "promoted" } else { "dropped" }.into(),
        contract_version: version,
        reload,
    })
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/partners/{id}/shadow/promote", tag = "admin", operation_id = "shadow_promote",
    params(("id" = String, Path, description = "Partner id")),
    responses(
        (status = 200, description = "The shadow is the live contract now (the old file kept as `.previous`), in every process", body = ShadowOutcome),
        (status = 404, description = "No such partner, or no shadow contract loaded for it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The folder no longer loads (each error in `errors`): the contracts in force stay", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn promote(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    settle(state, path.into_inner(), true).await
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/partners/{id}/shadow/drop", tag = "admin", operation_id = "shadow_drop",
    params(("id" = String, Path, description = "Partner id")),
    responses(
        (status = 200, description = "The shadow is gone (its file kept as `.dropped`), in every process", body = ShadowOutcome),
        (status = 404, description = "No such partner, or no shadow contract loaded for it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn drop(state: web::Data<AppState>, _: Operator, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    settle(state, path.into_inner(), false).await
}
