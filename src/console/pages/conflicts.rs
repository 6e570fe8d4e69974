//! Conflicts: the open queue; one conflict as a three-way card per field (the value both
//! sides last agreed on, the partner's, the current with who and when); resolve per field —
//! keep, take the partner's, or type a value — with a comment; the outcome names the partners
//! the resolution goes to.

use super::{number, page_size, param, Params};
use crate::api::admin::conflicts::{announce, view, ConflictFieldView, ConflictView};
use crate::api::AppState;
use crate::console::layout::{badge, count, csrf, page, pager, query, select, when, when_text, Nav};
use crate::console::{form, ConsoleError, Viewer};
use crate::store::conflicts::ConflictFilter;
use crate::store::StoreError;
use crate::sync::conflicts::{Choice, Resolution};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::BTreeMap;

fn shown(v: &Value) -> String {
    match v {
        Value::Null => "(empty)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn list(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let status = param(&q, "status").unwrap_or_else(|| "open".into());
    let partner = param(&q, "partner");
    let mut f = crate::api::admin::conflicts::filter(Some(&status), partner.clone(), param(&q, "ticket").as_deref())
        .map_err(ConsoleError::BadRequest)?;
    f.after_id = number(&q, "after")?;
    f.limit = page_size(&state, number(&q, "limit")?);
    let limit = f.limit;
    let counted = ConflictFilter { limit: 0, after_id: None, ..f.clone() };
    let (rows, open) = state
        .db
        .read(move |c| {
            let rows = c.list_conflicts(&f)?;
            let open: i64 = c
                .open_conflict_counts()?
                .into_iter()
                .filter(|(p, _)| counted.partner.as_ref().is_none_or(|x| x == p))
                .map(|(_, n)| n)
                .sum();
            Ok::<_, StoreError>((rows, open))
        })
        .await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|(r, _)| r.id)).flatten().map(|a| {
        query(&[("status", Some(status.clone())), ("partner", partner.clone()), ("after", Some(a.to_string()))])
    });
    let partners = super::partner_options(&state);
    let statuses: Vec<(String, String)> =
        ["open", "resolved", "superseded", "overwritten"].iter().map(|s| (s.to_string(), s.to_string())).collect();
    let body = html! {
        form.filters method="get" action="/console/conflicts" {
            div { (select("partner", "Partner", &partners, partner.as_deref())) }
            div { (select("status", "Status", &statuses, Some(status.as_str()))) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
        p { strong { (count(open)) } " open." }
        @if rows.is_empty() { p.muted { "No conflicts match." } } @else {
            div.table-wrap { table {
                thead { tr { th.num { "Id" } th { "Ticket" } th { "Partner" } th { "Fields" } th { "Status" } th { "Raised" } } }
                tbody {
                    @for (r, fields) in &rows {
                        tr data-conflict-id=(r.id) {
                            td.num { a href=(format!("/console/conflicts/{}", r.id)) { (r.id) } }
                            td { a href=(format!("/console/tickets/{}", r.ticket_number)) { (r.ticket_number) } }
                            td { (r.partner) }
                            td { (fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (badge(&r.status)) }
                            td { (when(r.created_at)) }
                        }
                    }
                }
            } }
        }
        (pager("/console/conflicts", next))
    };
    Ok(page(&viewer, Nav::Conflicts, "Conflicts", body))
}

fn field_card(c: &ConflictView, f: &ConflictFieldView, open: bool) -> Markup {
    let held = f.disposition == "held";
    let name = &f.field;
    let vocab = |pick: fn(&crate::api::admin::conflicts::SideValues) -> &Value| -> Markup {
        html! {
            @for (partner, side) in &f.sides {
                br; span.muted { (partner) " calls it " code { (side.field) } ": " (shown(pick(side))) }
            }
        }
    };
    html! {
        fieldset data-field=(name) {
            legend { code { (name) } " " (badge(&f.disposition)) }
            div.three-way {
                div { h4 { "Last agreed (what " (c.partner) " had seen)" } span data-base { (shown(&f.base)) } (vocab(|s| &s.base)) }
                div { h4 { (c.partner) "'s value" } span data-proposed { (shown(&f.proposed)) } (vocab(|s| &s.proposed)) }
                div { h4 { "Current" } span data-current { (shown(&f.current)) } (vocab(|s| &s.current))
                      br; span.muted { "set by " (f.current_by) " at version " (f.current_version) ", " (when_text(&f.current_at)) } }
            }
            @if let Some(chosen) = &f.chosen { p { "Chosen: " strong { (shown(chosen)) } } }
            @if open && held {
                div.choices role="radiogroup" aria-label=(format!("Resolution of {name}")) {
                    label { input type="radio" name=(format!("choice.{name}")) value="keep_current" checked; " Keep the current value" }
                    label { input type="radio" name=(format!("choice.{name}")) value="take_partner"; " Take " (c.partner) "'s value" }
                    label { input type="radio" name=(format!("choice.{name}")) value="custom"; " Use this value:" }
                    label.visually-hidden for=(format!("value-{name}")) { "Value for " (name) }
                    input type="text" id=(format!("value-{name}")) name=(format!("value.{name}")) placeholder="canonical value (JSON or text)";
                }
            }
        }
    }
}

pub async fn show(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    let c = state
        .db
        .read(move |c| c.conflict(id).map_err(StoreError::from))
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no conflict {id}")))?;
    let c = view(&state.registry(), c);
    Ok(page(&viewer, Nav::Conflicts, &format!("Conflict {id}"), card(&viewer, &c, None)))
}

fn card(viewer: &Viewer, c: &ConflictView, error: Option<&str>) -> Markup {
    let open = c.status == "open";
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.card {
            dl.facts {
                dt { "Ticket" } dd { a href=(format!("/console/tickets/{}", c.ticket)) { (c.ticket) } }
                dt { "Partner" } dd { (c.partner) " wrote at version " (c.ticket_version) " having seen version " (c.seen_version) }
                dt { "Status" } dd data-status=(c.status) { (badge(&c.status)) }
                dt { "Request" } dd { code { (c.request_id) } }
                @if let Some(by) = &c.resolved_by { dt { "Resolved by" } dd { (by) @if let Some(m) = &c.comment { " — " (m) } } }
            }
        }
        form method="post" action=(format!("/console/conflicts/{}/resolve", c.id)) {
            (csrf(viewer))
            @for f in &c.fields { (field_card(c, f, open)) }
            @if open {
                div.stack {
                    label for="comment" { "Comment (kept with the resolution)" }
                    textarea id="comment" name="comment" {}
                    div { button type="submit" { "Resolve" } }
                }
            }
        }
    }
}

/// A typed value: JSON when it parses as JSON, else the text itself.
fn typed(v: &str) -> Value {
    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()))
}

/// The per-field choices and the comment of a posted resolution.
fn choices_of(fields: &form::Fields) -> Result<(BTreeMap<String, Choice>, Option<String>), ConsoleError> {
    let mut choices = BTreeMap::new();
    for (field, choice) in fields.with_prefix("choice.") {
        let c = match choice {
            "keep_current" => Choice::KeepCurrent,
            "take_partner" => Choice::TakePartner,
            "custom" => Choice::Custom(typed(fields.get(&format!("value.{field}")).unwrap_or(""))),
            other => return Err(ConsoleError::BadRequest(format!("`{other}` is not a choice for {field}"))),
        };
        choices.insert(field.to_string(), c);
    }
    Ok((choices, fields.get("comment").map(str::to_string)))
}

pub async fn resolve(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    // A refusal before the resolution runs is audited here; the resolution audits itself.
    let (choices, comment) = match form::action(&req, &viewer, &body).and_then(|f| choices_of(&f)) {
        Ok(c) => c,
        Err(e) => {
            crate::console::audit::record(&state, &req, Some(&viewer), Err(&e), None).await;
            return Err(e);
        }
    };
    let audit = crate::api::audit::request_facts(&req);
    let registry = state.registry();
    let label = viewer.label();
    // The resolution writes its own transaction-log row, in its transaction.
    let resolved = state
        .db
        .write(move |c| {
            crate::sync::conflicts::resolve(
                c,
                Resolution {
                    registry: &registry,
                    id,
                    choices,
                    default: None,
                    operator: label,
                    comment,
                    audit,
                    now: crate::util::now_ms(),
                },
            )
        })
        .await;
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            let e = ConsoleError::Api(e.into());
            crate::console::audit::record(&state, &req, Some(&viewer), Err(&e), None).await;
            // Shown on the card again, with why.
            let again = state.db.read(move |c| c.conflict(id).map_err(StoreError::from)).await?;
            let Some(again) = again else { return Err(e) };
            let v = view(&state.registry(), again);
            return Ok(crate::console::layout::page_with(
                actix_web::ResponseError::status_code(&e),
                &viewer,
                Nav::Conflicts,
                &format!("Conflict {id}"),
                card(&viewer, &v, Some(&e.message())),
            ));
        }
    };
    tracing::info!(conflict = id, operator = %viewer.label(), pushed_to = ?resolved.fanned_out_to, "conflict resolved in the console");
    announce(&state, &resolved);
    let pushed = resolved.fanned_out_to.clone();
    let version = resolved.version;
    let v = view(&state.registry(), resolved.conflict);
    let body = html! {
        p.notice role="status" data-version=(version) {
            "Resolved: the ticket is at version " (version) ". "
            @if pushed.is_empty() { "No partner needs the change." }
            @else { "Sent to " span data-pushed-to=(pushed.join(",")) { (pushed.join(", ")) } "." }
        }
        (card(&viewer, &v, None))
    };
    Ok(page(&viewer, Nav::Conflicts, &format!("Conflict {id}"), body))
}
