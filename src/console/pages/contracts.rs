//! The contracts in force (every version, file and digest, and what each gateway process
//! enforces), what `ebond contracts check` finds in them, and a live reload.

use crate::api::AppState;
use crate::console::layout::{badge, button, page, page_with, Nav};
use crate::console::{audit, form, ConsoleError, Viewer};
use crate::contract::check::Level;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

async fn body(state: &web::Data<AppState>, viewer: &Viewer, notice: Option<Markup>) -> Result<Markup, ConsoleError> {
    let registry = state.registry();
    let (db, heartbeat) = (state.db.clone(), state.settings.database.heartbeat());
    let processes = web::block(move || crate::store::listener::contracts_roll(&db, heartbeat))
        .await
        .map_err(|e| crate::api::problem::ApiError::Internal(e.to_string()))??;
    // The same checks as `ebond contracts check`, with `db:` secrets looked up here.
    let (s, r) = (state.clone(), registry.clone());
    let findings = web::block(move || {
        let lookup = |partner: &str, name: &str| {
            Some(
                s.secrets
                    .resolve_blocking(partner, &crate::contract::SecretRef::Db(name.to_string()))
                    .map(|v| v.expose().to_string())
                    .map_err(|e| e.to_string()),
            )
        };
        crate::contract::check::check(&r, &lookup)
    })
    .await
    .map_err(|e| crate::api::problem::ApiError::Internal(e.to_string()))?;
    // Each shadow with how many of its partner's requests it would have treated differently.
    let shadows: Vec<(String, String, String)> =
        registry.shadows().map(|c| (c.id.to_string(), c.version.clone(), c.file_sha256.clone())).collect();
    let asked = shadows.clone();
    let differing: Vec<i64> = state
        .db
        .read(move |c| {
            asked
                .iter()
                .map(|(p, _, sha)| Ok(c.shadow_counts(p, sha)?.iter().map(|(_, n)| n).sum()))
                .collect::<Result<Vec<i64>, crate::store::StoreError>>()
        })
        .await?;
    Ok(html! {
        @if let Some(n) = notice { (n) }
        div.card {
            dl.facts {
                dt { "Folder" } dd { code { (state.contracts.dir().display()) } }
                dt { "Digest" } dd { code { (registry.sha256) } }
            }
            div.row { (button(viewer, "/console/contracts/reload", "Reload the folder", "")) span.muted { "Every gateway process on the database loads it too." } }
        }
        h2 { "Loaded" }
        div.table-wrap { table {
            thead { tr { th { "Partner" } th { "Version" } th { "File" } th { "SHA-256" } } }
            tbody { @for c in registry.all_versions() { tr {
                td { a href=(format!("/console/partners/{}", c.id)) { (c.id) } }
                td { (c.version) @if c.marked_default { " (default)" } }
                td { code { (c.file.display()) } }
                td { code { (c.file_sha256) } }
            } } }
        } }
        h2 { "Shadow contracts" }
        @if shadows.is_empty() { p.muted { "None loaded (a next version goes in as <partner>.shadow.toml)." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Partner" } th { "Live version" } th { "Shadow version" } th.num { "Requests it would treat differently" } th { "Actions" } } }
                tbody { @for ((p, version, _), n) in shadows.iter().zip(&differing) { tr data-shadow=(p) {
                    td { a href=(format!("/console/partners/{p}")) { (p) } }
                    td { (registry.get(p).map(|c| c.version.clone()).unwrap_or_default()) }
                    td { (version) }
                    td.num { (n) }
                    td {
                        (button(viewer, &format!("/console/contracts/{p}/shadow/promote"), "Promote", ""))
                        " "
                        (button(viewer, &format!("/console/contracts/{p}/shadow/drop"), "Drop", "danger"))
                    }
                } } }
            } }
        }
        h2 { "Check" }
        @if findings.is_empty() { p { (badge("ok")) " No errors or warnings." } } @else {
            ul { @for f in &findings { li {
                (badge(if f.level == Level::Error { "error" } else { "warning" })) " " code { (f.file.display()) } ": " (f.message)
            } } }
        }
        h2 { "Gateway processes" }
        div.table-wrap { table {
            thead { tr { th { "Process" } th { "Reload heard" } th { "Digest enforced" } } }
            tbody { @for p in &processes { tr {
                td { code { (p.id) } " " span.muted { (p.kind) } }
                td { (p.contracts_heard) }
                td { code { (p.contracts_sha256) } @if p.contracts_sha256 == registry.sha256 { " " (badge("in step")) } }
            } } }
        } }
    })
}

pub async fn view(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, ConsoleError> {
    let b = body(&state, &viewer, None).await?;
    Ok(page(&viewer, Nav::Contracts, "Contracts", b))
}

pub async fn reload(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    form_body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let outcome = audit::audited(&state, &req, Some(&viewer), 200, async {
        form::action(&req, &viewer, &form_body)?;
        Ok(crate::api::admin::contracts::reload_everywhere(&state, std::time::Duration::from_secs(5)).await?)
    })
    .await;
    let (status, notice) = match outcome {
        Ok(o) => (
            StatusCode::OK,
            html! { p.notice role="status" {
                @if o.changed { "Reloaded: now " code { (o.sha256) } "." } @else { "Reloaded: the folder holds what was in force." }
                @if !o.in_step { " Not every process confirmed within 5 s." }
            } },
        ),
        Err(ConsoleError::Api(crate::api::problem::ApiError::ContractsRefused(errors))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            html! {
                p.error role="alert" { "The folder has errors; the contracts in force stay." }
                ul { @for e in &errors { li { (e.to_string()) } } }
            },
        ),
        Err(e) => return Err(e),
    };
    let b = body(&state, &viewer, Some(notice)).await?;
    Ok(page_with(status, &viewer, Nav::Contracts, "Contracts", b))
}

async fn settle_shadow(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    partner: String,
    form_body: web::Bytes,
    promote: bool,
) -> Result<HttpResponse, ConsoleError> {
    let outcome = audit::audited(&state, &req, Some(&viewer), 200, async {
        form::action(&req, &viewer, &form_body)?;
        Ok(crate::api::shadow::settle_shadow(&state, partner, promote).await?)
    })
    .await?;
    tracing::info!(partner = %outcome.partner, action = %outcome.action, operator = %viewer.label(), "shadow contract settled in the console");
    let notice = html! { p.notice role="status" data-shadow-outcome=(outcome.action) {
        (outcome.partner) "'s shadow contract was " (outcome.action) "; version " (outcome.contract_version) " is in force"
        @if !outcome.reload.in_step { " (not every process confirmed within 5 s)" } "."
    } };
    let b = body(&state, &viewer, Some(notice)).await?;
    Ok(page(&viewer, Nav::Contracts, "Contracts", b))
}

pub async fn promote_shadow(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    form_body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    settle_shadow(state, req, viewer, path.into_inner(), form_body, true).await
}

pub async fn drop_shadow(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<String>,
    form_body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    settle_shadow(state, req, viewer, path.into_inner(), form_body, false).await
}
