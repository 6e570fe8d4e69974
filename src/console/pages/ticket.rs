//! One ticket's whole story: found by hub number or any partner's id; inbound requests with
//! their result, field changes, journal entries, each partner's deliveries with attempts,
//! conflicts and reconciliation items on one time line; and what each partner holds (the last
//! version it saw) against the hub's current version.

use super::{param, Params};
use crate::api::AppState;
use crate::console::layout::{badge, page, when, Nav};
use crate::console::{ConsoleError, Viewer};
use crate::domain::ids::TicketNumber;
use crate::store::audit::TransactionFilter;
use crate::store::models::{AttemptRow, JournalRow, OutboxRow, ReconcileItemRow, TicketRow, TransactionRow, XrefRow};
use crate::store::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde_json::Value;

/// Most entries of each kind the story shows (a ticket rarely has more).
const MOST: i64 = 500;

fn search_form(q: &str) -> Markup {
    html! {
        form.filters method="get" action="/console/tickets" role="search" {
            div {
                label for="q" { "Hub number or any partner's ticket id" }
                input type="search" id="q" name="q" value=(q) required;
            }
            div { button type="submit" { "Find" } }
        }
    }
}

pub async fn find(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let Some(wanted) = param(&q, "q") else {
        return Ok(page(&viewer, Nav::Tickets, "Find a ticket", search_form("")));
    };
    let partners: Vec<String> = state.registry().partners().map(|c| c.id.to_string()).collect();
    let w = wanted.clone();
    let found: Vec<(String, String)> = state
        .db
        .read(move |c| {
            if let Ok(n) = TicketNumber::parse(&w) {
                if let Some(t) = c.ticket_by_number(n.as_str())? {
                    return Ok(vec![(t.number, "hub".to_string())]);
                }
            }
            // Each partner's id is unique only within that partner: one indexed lookup each.
            let mut out = Vec::new();
            for p in partners {
                if let Some(x) = c.xref_by_partner_id(&p, &w)? {
                    if let Some(t) = c.ticket_by_id(x.ticket_id)? {
                        out.push((t.number, p));
                    }
                }
            }
            Ok::<_, StoreError>(out)
        })
        .await?;
    match found.as_slice() {
        [(number, _)] => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/console/tickets/{number}")))
            .finish()),
        [] => Ok(crate::console::layout::page_with(
            StatusCode::NOT_FOUND,
            &viewer,
            Nav::Tickets,
            "Find a ticket",
            html! { (search_form(&wanted)) p.error role="alert" { "No ticket has the hub number or a partner's id " code { (wanted) } "." } },
        )),
        many => Ok(page(
            &viewer,
            Nav::Tickets,
            "Find a ticket",
            html! {
                (search_form(&wanted))
                p { "Several partners use " code { (wanted) } ":" }
                ul { @for (n, p) in many { li { a href=(format!("/console/tickets/{n}")) { (n) } " (" (p) "'s id)" } } }
            },
        )),
    }
}

struct Story {
    ticket: TicketRow,
    xrefs: Vec<XrefRow>,
    journal: Vec<JournalRow>,
    inbound: Vec<TransactionRow>,
    deliveries: Vec<(OutboxRow, Vec<AttemptRow>)>,
    conflicts: Vec<crate::store::conflicts::Conflict>,
    items: Vec<ReconcileItemRow>,
}

/// One entry of the time line.
struct Entry {
    at: i64,
    bad: bool,
    what: Markup,
}

fn brief(v: &Value) -> String {
    match v {
        Value::Null => "(empty)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn timeline(s: &Story) -> Vec<Entry> {
    let mut out = Vec::new();
    for t in &s.inbound {
        out.push(Entry {
            at: t.at,
            bad: t.result == "rejected",
            what: html! {
                span.what { "Inbound " (t.method) " " code { (t.path) } } " from " (t.partner.clone().unwrap_or_default()) " "
                (badge(&t.result)) " HTTP " (t.status)
                @if !t.error_codes.is_empty() { " " span.muted { (t.error_codes) } }
                " " span.muted { "request " (t.request_id) }
            },
        });
    }
    for j in &s.journal {
        let what = if j.kind == "field_change" {
            let changes: serde_json::Map<String, Value> = serde_json::from_str(&j.body).unwrap_or_default();
            html! {
                span.what { "Fields changed" } " by " (j.author_partner) @if let Some(v) = j.version { " → version " (v) }
                ul { @for (field, c) in &changes { li { code { (field) } ": " (brief(&c["from"])) " → " (brief(&c["to"])) } } }
            }
        } else {
            html! { span.what { (j.kind.replace('_', " ")) } " by " (j.author_partner) ": " (j.body) }
        };
        out.push(Entry { at: j.created_at, bad: false, what });
    }
    for (row, attempts) in &s.deliveries {
        out.push(Entry {
            at: row.created_at,
            bad: row.status == "dead",
            what: html! {
                span.what { "Delivery to " (row.partner) } " (" (row.event) ") " (badge(&row.status))
                " " @if row.status == "dead" { a href=(format!("/console/dead-letters/{}", row.id)) { "dead letter " (row.id) } }
                @if !attempts.is_empty() {
                    ul { @for a in attempts { li {
                        "attempt " (a.attempt) " " (when(a.started_at)) " — " (a.outcome)
                        @if let Some(st) = a.http_status { ", HTTP " (st) } ", " (a.duration_ms) " ms"
                        @if let Some(x) = &a.response_excerpt { " " code { (x.chars().take(120).collect::<String>()) } }
                    } } }
                }
            },
        });
    }
    for (c, fields) in &s.conflicts {
        out.push(Entry {
            at: c.created_at,
            bad: c.status == "open",
            what: html! {
                span.what { a href=(format!("/console/conflicts/{}", c.id)) { "Conflict " (c.id) } } " with " (c.partner) " on "
                (fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", ")) " " (badge(&c.status))
                @if let Some(by) = &c.resolved_by { " — resolved by " (by) }
            },
        });
    }
    for i in &s.items {
        out.push(Entry {
            at: i.at,
            bad: true,
            what: html! {
                span.what { a href=(format!("/console/reconcile/runs/{}", i.run_id)) { "Reconciliation" } } " with " (i.partner) ": "
                (i.kind) ", likely " (i.cause) ", " (i.action)
            },
        });
    }
    out.sort_by_key(|e| e.at);
    out
}

pub async fn story(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let number = TicketNumber::parse(&path.into_inner()).map_err(ConsoleError::NotFound)?;
    let n = number.to_string();
    let partners: Vec<String> = state.registry().partners().map(|c| c.id.to_string()).collect();
    let found = state
        .db
        .read(move |c| {
            let Some(ticket) = c.ticket_by_number(&n)? else { return Ok(None) };
            let xrefs = c.xrefs_of_ticket(ticket.id)?;
            let mut who: Vec<String> = partners;
            who.extend(xrefs.iter().map(|x| x.partner.clone()));
            who.sort();
            who.dedup();
            let rows = c.outbox_of_ticket_for(ticket.id, &who)?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let mut attempts: std::collections::HashMap<i64, Vec<AttemptRow>> = std::collections::HashMap::new();
            for a in c.attempts_of_many(&ids)? {
                attempts.entry(a.outbox_id).or_default().push(a);
            }
            let deliveries = rows
                .into_iter()
                .map(|r| {
                    let a = attempts.remove(&r.id).unwrap_or_default();
                    (r, a)
                })
                .collect();
            let filter = TransactionFilter { ticket_number: Some(n.clone()), limit: MOST, ..Default::default() };
            Ok::<_, StoreError>(Some(Story {
                journal: c.journal_of_ticket(ticket.id)?,
                inbound: c.query_transactions(&filter)?,
                conflicts: c.conflicts_of_ticket(ticket.id, false)?,
                items: c.reconcile_items_of_ticket(ticket.id, MOST)?,
                deliveries,
                xrefs,
                ticket,
            }))
        })
        .await?;
    let s = found.ok_or_else(|| ConsoleError::NotFound(format!("no ticket {number}")))?;
    let entries = timeline(&s);
    let t = &s.ticket;
    let body = html! {
        (search_form(""))
        div.card {
            dl.facts {
                dt { "Summary" } dd { (t.short_description.clone().unwrap_or_default()) }
                dt { "State" } dd { (t.state) }
                dt { "Priority" } dd { (t.priority.map(|p| p.to_string()).unwrap_or_default()) }
                dt { "Version" } dd data-version=(t.version) { (t.version) }
                dt { "Created" } dd { (when(t.created_at)) " by " (t.created_by) }
                dt { "Updated" } dd { (when(t.updated_at)) " by " (t.updated_by) }
                dt { "Open conflicts" } dd { (t.open_conflicts) }
            }
        }
        h2 { "What each partner holds" }
        table {
            thead { tr { th { "Partner" } th { "Its ticket id" } th { "Bond" } th.num { "Last version it saw" } th { "Against the hub's version " (t.version) } } }
            tbody {
                @for x in &s.xrefs {
                    tr data-partner=(x.partner) {
                        td { a href=(format!("/console/partners/{}", x.partner)) { (x.partner) } }
                        td { (x.partner_ticket_id.clone().unwrap_or_else(|| "(not yet bonded)".into())) }
                        td { @if x.active { (badge("active")) } @else { (badge("inactive")) } }
                        td.num { (x.seen_version) }
                        td { @if x.seen_version >= t.version { (badge("in step")) } @else { (badge("behind")) " by " (t.version - x.seen_version) } }
                    }
                }
            }
        }
        h2 { "Story" }
        ol.timeline {
            @for e in &entries {
                li class=(if e.bad { "bad" } else { "" }) { (when(e.at)) " — " (e.what) }
            }
        }
    };
    Ok(page(&viewer, Nav::Tickets, &format!("Ticket {number}"), body))
}
