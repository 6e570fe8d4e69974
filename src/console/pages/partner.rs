//! One partner: its contract (version, file hash, endpoints, subscriptions, the data-contract
//! document), credentials (rotate, revoke), the delivery switch, recent deliveries, dead
//! letters, pull and reconciliation runs.

use crate::api::AppState;
use crate::console::layout::{badge, button, csrf, page, when, when_opt, Nav};
use crate::console::{audit, form, ConsoleError, Viewer};
use crate::contract::Contract;
use crate::store::console::DeadFilter;
use crate::store::models::{CredentialRow, OutboxRow, SyncRunRow};
use crate::store::StoreError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup, PreEscaped};
use std::sync::Arc;

struct Seen {
    credentials: Vec<CredentialRow>,
    paused: bool,
    recent: Vec<OutboxRow>,
    dead: Vec<OutboxRow>,
    dead_total: i64,
    pulls: Vec<SyncRunRow>,
    reconciles: Vec<SyncRunRow>,
}

fn contract_of(state: &AppState, id: &str) -> Result<Arc<Contract>, ConsoleError> {
    state.registry().get(id).cloned().ok_or_else(|| ConsoleError::NotFound(format!("no partner `{id}` is loaded")))
}

pub async fn view(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let contract = contract_of(&state, &path)?;
    let id = contract.id.to_string();
    let p = id.clone();
    let seen = state
        .db
        .read(move |c| {
            let filter = DeadFilter { partner: Some(p.clone()), ..Default::default() };
            Ok::<_, StoreError>(Seen {
                credentials: c.list_credentials()?.into_iter().filter(|r| r.partner.as_deref() == Some(&p)).collect(),
                paused: c.paused_partners()?.contains(&p),
                recent: c.recent_outbox(&p, 20)?,
                dead: c.dead_letters(&filter, None, 10)?,
                dead_total: c.count_dead(&filter)?,
                pulls: c.list_runs("pull", Some(&p), None, 10)?,
                reconciles: c.list_runs("reconcile", Some(&p), None, 10)?,
            })
        })
        .await?;
    let registry = state.registry();
    let versions: Vec<String> = registry.versions(&id).map(|v| v.version.clone()).collect();
    let now = crate::util::now_ms();
    let body = html! {
        div.grid {
            div.card {
                h2 { "Contract" }
                dl.facts {
                    dt { "Name" } dd { (contract.name) }
                    dt { "Version" } dd { (contract.version) @if versions.len() > 1 { " (live: " (versions.join(", ")) ")" } }
                    dt { "File" } dd { code { (contract.file.display()) } }
                    dt { "SHA-256" } dd { code { (contract.file_sha256) } }
                    dt { "May create" } dd { (if contract.access.create { "yes" } else { "no" }) }
                    dt { "Writes" } dd { (contract.access.write.iter().cloned().collect::<Vec<_>>().join(", ")) }
                }
                p { a href=(format!("/console/partners/{id}/contract")) { "The data-contract document" } }
            }
            div.card {
                h2 { "Delivery" }
                @match &contract.outbound {
                    None => p.muted { "This partner receives nothing (no [outbound] in its contract)." },
                    Some(out) => {
                        dl.facts {
                            dt { "Create" } dd { code { (out.create_method) " " (out.create_url.as_deref().unwrap_or("—")) } }
                            dt { "Update" } dd { code { (out.update_method) " " (out.update_url.as_deref().unwrap_or("—")) } }
                            dt { "Read" } dd { code { (out.read_url.as_deref().unwrap_or("—")) } }
                            dt { "Rate limit" } dd { (out.rate_limit_per_minute) " per minute" }
                            dt { "Alert" } dd { "above " (format!("{:.0} %", out.alert_threshold * 100.0)) " failed over " (crate::console::layout::age(out.alert_window.as_millis() as i64)) }
                        }
                        h3 { "Subscriptions" }
                        ul {
                            @for s in &out.subscriptions {
                                li {
                                    (s.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "))
                                    @if s.only_bonded { " · only tickets already bonded" }
                                    @for (field, values) in &s.filter { " · " code { (field) } " in " (values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")) }
                                }
                            }
                        }
                        div.row {
                            @if seen.paused {
                                (badge("paused")) (button(&viewer, &format!("/console/partners/{id}/resume"), "Resume deliveries", ""))
                            } @else {
                                (badge("running")) (button(&viewer, &format!("/console/partners/{id}/pause"), "Pause deliveries", "secondary"))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Credentials" }
        (credentials(&viewer, &id, &seen.credentials, now))
        h2 { "Recent deliveries" }
        (super::dead_letters::table(&seen.recent, true))
        h2 { "Dead letters" }
        p { (seen.dead_total) " in all. " a href=(format!("/console/dead-letters?partner={id}")) { "All of this partner's dead letters" } }
        (super::dead_letters::table(&seen.dead, false))
        h2 { "Pull runs" }
        @if contract.pull.is_some() {
            div.row { (button(&viewer, &format!("/console/partners/{id}/pull"), "Start a pull run", "secondary")) span.muted { "Reads what changed at the partner since the last run." } }
        }
        (super::reconcile::runs_table(&seen.pulls))
        h2 { "Reconciliation runs" }
        (super::reconcile::runs_table(&seen.reconciles))
    };
    Ok(page(&viewer, Nav::Overview, &format!("Partner {id}"), body))
}

fn credentials(viewer: &Viewer, partner: &str, rows: &[CredentialRow], now: i64) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Client id" } th { "Kind" } th { "Scope" } th { "Created" } th { "Revoked" } th { "Previous secret until" } th { "Actions" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { code { (r.client_id) } }
                        td { (r.kind) }
                        td { (r.scope) }
                        td { (when(r.created_at)) }
                        td { (when_opt(r.revoked_at)) }
                        td { (when_opt(r.previous_valid_until.filter(|u| *u > now))) }
                        td {
                            @if r.revoked_at.is_none() {
                                form.inline method="post" action=(format!("/console/partners/{partner}/credentials/rotate")) {
                                    (csrf(viewer))
                                    input type="hidden" name="client_id" value=(r.client_id);
                                    label for=(format!("overlap-{}", r.id)) { "Old secret valid for " }
                                    select id=(format!("overlap-{}", r.id)) name="overlap" {
                                        option value="24h" selected { "24 h" } option value="1h" { "1 h" } option value="0s" { "0 (now)" }
                                    }
                                    " "
                                    button type="submit" class="secondary" { "Rotate" }
                                }
                                " "
                                form.inline method="post" action=(format!("/console/partners/{partner}/credentials/revoke")) {
                                    (csrf(viewer))
                                    input type="hidden" name="client_id" value=(r.client_id);
                                    button type="submit" class="danger" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// The data-contract document, as the operator sees it.
pub async fn contract_document(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let contract = contract_of(&state, &path)?;
    let registry = state.registry();
    let fragment = crate::contract::document::html_fragment(
        &registry,
        &contract,
        state.settings.auth.default_token_ttl_secs,
        crate::contract::document::Audience::Operator,
    );
    let body = html! { div.card { (PreEscaped(fragment)) } };
    Ok(page(&viewer, Nav::Overview, &format!("Data contract of {}", contract.id), body))
}

fn back_to(partner: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/console/partners/{partner}"))).finish()
}

async fn set_paused(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    partner: String,
    body: web::Bytes,
    paused: bool,
) -> Result<HttpResponse, ConsoleError> {
    audit::audited(&state, &req, Some(&viewer), 303, async {
        form::action(&req, &viewer, &body)?;
        let id = contract_of(&state, &partner)?.id.to_string();
        let p = id.clone();
        state.db.write(move |c| crate::outbox::admin::set_paused(c, &p, paused)).await?;
        tracing::info!(partner = %id, paused, operator = %viewer.label(), "partner delivery switch changed in the console");
        state.wake_outbox();
        Ok(back_to(&id))
    })
    .await
}

pub async fn pause(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    set_paused(state, req, viewer, path.into_inner(), body, true).await
}

pub async fn resume(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    set_paused(state, req, viewer, path.into_inner(), body, false).await
}

pub async fn rotate(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let partner = path.into_inner();
    let issued = audit::audited(&state, &req, Some(&viewer), 200, async {
        let fields = form::action(&req, &viewer, &body)?;
        let id = contract_of(&state, &partner)?.id.to_string();
        let client_id = fields.require("client_id")?.to_string();
        let overlap = fields.get("overlap").unwrap_or("24h");
        // At most 30 days: an old secret that never stops working is no rotation.
        let overlap_secs = crate::contract::parse_duration(overlap)
            .filter(|d| d.as_secs() <= 30 * 86_400)
            .map(|d| d.as_secs() as i64)
            .ok_or_else(|| {
                ConsoleError::BadRequest(format!("`{overlap}` is not a duration up to 30d, such as 24h or 0s"))
            })?;
        let iterations = state.settings.auth.pbkdf2_iterations;
        let (p, cid) = (id.clone(), client_id.clone());
        let rotated = state
            .db
            .write(move |c| {
                crate::auth::tokens::rotate(c, &p, Some(&cid), overlap_secs, false, iterations)
                    .map_err(crate::api::problem::ApiError::from)
            })
            .await?;
        rotated.ok_or_else(|| ConsoleError::NotFound(format!("{id} has no live credential {client_id}")))
    })
    .await?;
    tracing::info!(partner = %partner, client_id = %issued.client_id, operator = %viewer.label(), "credential rotated in the console");
    let body = html! {
        p.notice role="status" { "The secret of " code { (issued.client_id) } " was rotated. Hand the new one to the partner now: it is kept only as a hash and is not shown again." }
        dl.facts {
            dt { "Client id" } dd { code { (issued.client_id) } }
            dt { "New client secret" } dd { code data-secret { (issued.client_secret) } }
        }
        p { a href=(format!("/console/partners/{partner}")) { "Back to " (partner) } }
    };
    Ok(page(&viewer, Nav::Overview, "Credential rotated", body))
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let partner = path.into_inner();
    audit::audited(&state, &req, Some(&viewer), 303, async {
        let fields = form::action(&req, &viewer, &body)?;
        let id = contract_of(&state, &partner)?.id.to_string();
        let client_id = fields.require("client_id")?.to_string();
        let now = crate::util::now_ms();
        let (p, cid) = (id.clone(), client_id.clone());
        // The revocation raises the signal every process's token cache listens to.
        let n = state.db.write(move |c| c.revoke(Some(&p), Some(&cid), now).map_err(StoreError::from)).await?;
        if n == 0 {
            return Err(ConsoleError::NotFound(format!("{id} has no live credential {client_id}")));
        }
        tracing::info!(partner = %id, client_id = %client_id, operator = %viewer.label(), "credential revoked in the console");
        Ok(back_to(&id))
    })
    .await
}

/// Starts a pull run now (as the scheduler would); it goes on in the background.
pub async fn start_pull(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let partner = path.into_inner();
    audit::audited(&state, &req, Some(&viewer), 303, async {
        form::action(&req, &viewer, &body)?;
        let id = contract_of(&state, &partner)?.id.to_string();
        let engine = state.sync.clone();
        let started = engine
            .begin_pull(&id, &format!("console:{}", viewer.label()))
            .await
            .map_err(crate::api::problem::ApiError::from)?;
        let run = started.run.id;
        tokio::spawn(async move {
            if let Err(e) = engine.complete_pull(started, |_| {}).await {
                tracing::warn!(run, error = %e, "pull run ended badly");
            }
        });
        tracing::info!(run, partner = %id, operator = %viewer.label(), "pull run started in the console");
        Ok(back_to(&id))
    })
    .await
}
