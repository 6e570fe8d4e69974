//! `/admin/contracts`: the contracts in force in every process on the database, and a live
//! reload of the contracts folder.

use crate::api::extract::Operator;
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::contract::live::PartnerChange;
use crate::store::listener;
use crate::store::signals::ContractsHeard;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// One loaded contract file.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadedContract {
    pub partner: String,
    pub contract_version: String,
    pub file: String,
    pub file_sha256: String,
}

/// What this process enforces and what every live process on the database enforces.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContractsView {
    /// The folder this process loads.
    pub dir: String,
    /// Digest over every file loaded (the same in two processes means the same contracts).
    pub sha256: String,
    pub partners: Vec<LoadedContract>,
    /// Each live process (`serve`, `worker`) with the reload it last acted on and the digest
    /// it enforces.
    pub processes: Vec<ContractsHeard>,
}

/// A reload that took effect here.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadOutcome {
    /// `false` when the folder held exactly what was in force.
    pub changed: bool,
    pub sha256: String,
    pub previous_sha256: String,
    /// Every partner of the old or the new folder, with what became of it.
    pub partners: Vec<PartnerChange>,
    /// The reload's number: every process on the roll acts on it.
    pub generation: i64,
    /// Each live process after the wait: its digest equal to `sha256` means it enforces the
    /// same contracts (another host's folder may differ).
    pub processes: Vec<ContractsHeard>,
    /// Every live process acted on the reload within the wait and enforces `sha256`.
    pub in_step: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReloadQuery {
    /// Seconds to wait for every other process to act on the reload (default 5, at most 60;
    /// 0 answers at once).
    pub wait: Option<u64>,
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/contracts", tag = "admin",
    responses(
        (status = 200, description = "The contracts in force", body = ContractsView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn show(state: web::Data<AppState>, _: Operator) -> Result<HttpResponse, ApiError> {
    let registry = state.registry();
    let (db, heartbeat) = (state.db.clone(), state.settings.database.heartbeat());
    let processes = web::block(move || listener::contracts_roll(&db, heartbeat))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(ContractsView {
        dir: state.contracts.dir().display().to_string(),
        sha256: registry.sha256.clone(),
        partners: registry
            .partners()
            .map(|c| LoadedContract {
                partner: c.id.to_string(),
                contract_version: c.version.clone(),
                file: c.file.display().to_string(),
                file_sha256: c.file_sha256.clone(),
            })
            .collect(),
        processes,
    }))
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/contracts/reload", tag = "admin", operation_id = "contracts_reload",
    params(ReloadQuery),
    responses(
        (status = 200, description = "The folder was loaded and is in force here; every other process was told", body = ReloadOutcome),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The folder has errors (each in `errors`); the contracts in force stay", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable: the reload took effect here but could not reach the other processes", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn reload(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<crate::api::extract::Query<ReloadQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let crate::api::extract::Query(q) = query?;
    let wait = Duration::from_secs(q.wait.unwrap_or(5).min(60));
    Ok(HttpResponse::Ok().json(reload_everywhere(&state, wait).await?))
}

/// Reloads this process's folder, tells every other process on the database, and waits up to
/// `wait` for them: what a reload request, a promotion and a drop do.
pub async fn reload_everywhere(state: &web::Data<AppState>, wait: Duration) -> Result<ReloadOutcome, ApiError> {
    let s = state.clone().into_inner();
    let done = web::block(move || crate::app::reload_contracts(&s.settings, &s.contracts, "reload request"))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::ContractsRefused)?;
    // Every other process loads its own folder when it hears this (this one again too, which
    // finds nothing new).
    let generation = state.db.write(|c| c.raise_contracts().map_err(StoreError::from)).await?;
    let (db, heartbeat) = (state.db.clone(), state.settings.database.heartbeat());
    let processes = web::block(move || listener::await_contracts(&db, generation, heartbeat, wait))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let sha256 = done.current.sha256.clone();
    let in_step = processes.iter().all(|p| p.contracts_heard >= generation && p.contracts_sha256 == sha256);
    Ok(ReloadOutcome {
        changed: !done.unchanged(),
        previous_sha256: done.previous_sha256.clone(),
        partners: done.partners,
        sha256,
        generation,
        processes,
        in_step,
    })
}
