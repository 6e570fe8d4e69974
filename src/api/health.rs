//! Liveness (`/healthz`), readiness (`/readyz`: database reachable, contracts loaded) and the
//! Prometheus scrape (`/metrics`).

use super::problem::Problem;
use super::AppState;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` with the reasons in `checks`.
    pub status: String,
    pub checks: Vec<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into(), checks: vec![] })
}

#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Database reachable and contracts loaded", body = Health),
        (status = 503, description = "Not ready", body = Health),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let ping = tokio::task::spawn_blocking(move || db.ping()).await;
    let mut checks = vec![format!("contracts: {} partners", state.registry().partners().count())];
    let ok = match ping {
        Ok(Ok(())) => {
            checks.push(format!("database: {} reachable", state.db.backend_name()));
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            checks.push("database: unreachable".into());
            false
        }
        Err(_) => false,
    };
    let body = Health { status: if ok { "ok" } else { "unavailable" }.into(), checks };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition (outbox gauges refreshed at each scrape).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
    (status = 401, description = "security.metrics_require_token is on and no operator token was sent", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "Not an operator token, or not from security.ops_networks", body = Problem, content_type = "application/problem+json"),
))]
pub async fn metrics(state: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    if let Err(refused) = super::ops_access::check(&state, &req, super::ops_access::Needs::Metrics).await {
        return actix_web::ResponseError::error_response(&refused);
    }
    let partners: Vec<String> = state.registry().partners().map(|c| c.id.to_string()).collect();
    let figures = state
        .db
        .read(|c| {
            let runs = c.last_runs("reconcile", false)?;
            let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
            let items: Vec<(String, String, i64)> = c
                .item_counts(&ids)?
                .into_iter()
                .filter_map(|(run, kind, n)| runs.iter().find(|r| r.id == run).map(|r| (r.partner.clone(), kind, n)))
                .collect();
            let last: Vec<(String, i64)> =
                runs.into_iter().map(|r| (r.partner, r.finished_at.unwrap_or(r.started_at))).collect();
            Ok::<_, StoreError>((c.outbox_stats()?, c.open_conflict_counts()?, last, items))
        })
        .await;
    match figures {
        Ok((stats, conflicts, last, items)) => {
            state.metrics.set_outbox(&partners, &stats, crate::util::now_ms());
            state.metrics.set_conflicts(&partners, &conflicts);
            state.metrics.set_reconcile(&last, &items);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: outbox and conflict figures unavailable"),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
