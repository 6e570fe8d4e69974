//! The audit trail (every request, partners' and operators') and the authentication events,
//! filtered and paged newest first.

use super::{number, page_size, param, Params};
use crate::api::AppState;
use crate::console::layout::{badge, csrf, page, pager, query, select, when, Nav};
use crate::console::{audit, form, ConsoleError, Viewer};
use crate::store::audit::TransactionFilter;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use maud::html;

pub async fn transactions(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let partner = param(&q, "partner");
    let ticket = param(&q, "ticket");
    let result = param(&q, "result");
    if let Some(r) = &result {
        if !["accepted", "rejected", "replayed", "dry_run"].contains(&r.as_str()) {
            return Err(ConsoleError::BadRequest("result is accepted, rejected, replayed or dry_run".into()));
        }
    }
    let limit = page_size(&state, number(&q, "limit")?);
    let filter = TransactionFilter {
        partner: partner.clone(),
        ticket_number: ticket.clone(),
        result: result.clone(),
        before_id: number(&q, "before")?,
        limit,
    };
    let rows = state.db.read(move |c| c.query_transactions(&filter).map_err(StoreError::from)).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten().map(|b| {
        query(&[
            ("partner", partner.clone()),
            ("ticket", ticket.clone()),
            ("result", result.clone()),
            ("before", Some(b.to_string())),
        ])
    });
    let results: Vec<(String, String)> = ["", "accepted", "rejected", "replayed", "dry_run"]
        .iter()
        .map(|r| (r.to_string(), if r.is_empty() { "any result".to_string() } else { r.to_string() }))
        .collect();
    let body = html! {
        form.filters method="get" action="/console/audit" {
            div { label for="partner" { "Partner or operator:<id>" } input type="text" id="partner" name="partner" value=(partner.clone().unwrap_or_default()); }
            div { label for="ticket" { "Hub ticket number" } input type="text" id="ticket" name="ticket" value=(ticket.clone().unwrap_or_default()); }
            div { (select("result", "Result", &results, result.as_deref())) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
        div.table-wrap { table {
            thead { tr { th.num { "Id" } th { "At" } th { "Who" } th { "Request" } th { "Result" } th { "Codes" } th { "Ticket" } th { "Request id" } } }
            tbody {
                @for r in &rows {
                    tr {
                        td.num { (r.id) }
                        td { (when(r.at)) }
                        td { (r.partner.clone().unwrap_or_default()) }
                        td { code { (r.method) " " (r.path) } }
                        td { (badge(&r.result)) " " (r.status) }
                        td { (r.error_codes) }
                        td { @if let Some(t) = &r.ticket_number { a href=(format!("/console/tickets/{t}")) { (t) } } }
                        td { code { (r.request_id) } }
                    }
                }
            }
        } }
        (pager("/console/audit", next))
    };
    Ok(page(&viewer, Nav::Audit, "Audit trail", body))
}

pub async fn auth_events(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let client_id = param(&q, "client_id");
    let outcome = param(&q, "outcome");
    let limit = page_size(&state, number(&q, "limit")?);
    let before = number(&q, "before")?;
    let (c2, o2) = (client_id.clone(), outcome.clone());
    let rows = state
        .db
        .read(move |c| c.list_auth_events(c2.as_deref(), o2.as_deref(), before, limit).map_err(StoreError::from))
        .await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten().map(|b| {
        query(&[("client_id", client_id.clone()), ("outcome", outcome.clone()), ("before", Some(b.to_string()))])
    });
    let outcomes: Vec<(String, String)> = ["", "success", "failure", "refused", "rejected", "cleared"]
        .iter()
        .map(|r| (r.to_string(), if r.is_empty() { "any outcome".to_string() } else { r.to_string() }))
        .collect();
    let body = html! {
        details.card {
            summary { "Clear a lockout" }
            form.filters method="post" action="/console/lockouts/clear" {
                (csrf(&viewer))
                div { label for="clear_client_id" { "Client id" } input type="text" id="clear_client_id" name="client_id"; }
                div { label for="clear_source" { "Source address" } input type="text" id="clear_source" name="source"; }
                div { button type="submit" class="secondary" { "Clear: earlier failures stop counting" } }
            }
        }
        form.filters method="get" action="/console/auth-events" {
            div { label for="client_id" { "Client id" } input type="text" id="client_id" name="client_id" value=(client_id.clone().unwrap_or_default()); }
            div { (select("outcome", "Outcome", &outcomes, outcome.as_deref())) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
        div.table-wrap { table {
            thead { tr { th.num { "Id" } th { "At" } th { "Client id" } th { "Source" } th { "Outcome" } th { "Reason" } } }
            tbody {
                @for r in &rows {
                    tr {
                        td.num { (r.id) }
                        td { (when(r.at)) }
                        td { (r.client_id.clone().unwrap_or_default()) }
                        td { (r.source) }
                        td { (badge(&r.outcome)) }
                        td { (r.reason) }
                    }
                }
            }
        } }
        (pager("/console/auth-events", next))
    };
    Ok(page(&viewer, Nav::AuthEvents, "Authentication events", body))
}

/// Clears a lockout now, as `ebond admin lockout clear` does: failures so far stop counting
/// (itself an authentication event, by the operator).
pub async fn clear_lockout(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    viewer: Viewer,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    audit::audited(&state, &req, Some(&viewer), 303, async {
        let fields = form::action(&req, &viewer, &body)?;
        let clear = crate::api::admin::LockoutClear {
            client_id: fields.get("client_id").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            source: fields.get("source").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        };
        if clear.client_id.is_none() && clear.source.is_none() {
            return Err(ConsoleError::BadRequest("name the locked-out client id, the source address, or both".into()));
        }
        let (who, now) = (viewer.label(), crate::util::now_ms());
        let location = format!("/console/auth-events{}", query(&[("client_id", clear.client_id.clone())]));
        state.db.write(move |c| crate::api::admin::clear_lockout(c, &clear, &who, now)).await?;
        tracing::info!(operator = %viewer.label(), "lockout cleared in the console");
        Ok(HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, location)).finish())
    })
    .await
}
