//! Dead letters: filtered by partner, event and age, newest first; one letter's payload and
//! every attempt; replay or discard one; replay or discard every letter a filter matches,
//! after a confirmation that says how many.

use super::{number, page_size, param, Params};
use crate::api::AppState;
use crate::console::layout::{age, badge, button, count, csrf, page, pager, query, select, when, when_text, Nav};
use crate::console::{audit, form, ConsoleError, Viewer};
use crate::store::console::DeadFilter;
use crate::store::models::OutboxRow;
use crate::store::StoreError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

/// Ages an operator can pick ("older than").
const AGES: [(&str, &str); 5] = [
    ("", "any age"),
    ("1h", "older than 1 h"),
    ("24h", "older than 24 h"),
    ("7d", "older than 7 d"),
    ("30d", "older than 30 d"),
];

/// The filter a page or a form names, checked.
fn filter_of(state: &AppState, get: impl Fn(&str) -> Option<String>) -> Result<DeadFilter, ConsoleError> {
    let partner = get("partner");
    if let Some(p) = &partner {
        if state.registry().get(p).is_none() {
            return Err(ConsoleError::BadRequest(format!("no partner `{p}` is loaded")));
        }
    }
    let event = get("event");
    if let Some(e) = &event {
        if crate::domain::events::Event::parse(e).is_none() {
            return Err(ConsoleError::BadRequest(format!("`{e}` is not an event")));
        }
    }
    let created_before = match get("older_than") {
        None => None,
        Some(a) => {
            let cutoff = crate::contract::parse_duration(&a)
                .and_then(|d| i64::try_from(d.as_millis()).ok())
                .and_then(|ms| crate::util::now_ms().checked_sub(ms));
            Some(cutoff.ok_or_else(|| ConsoleError::BadRequest(format!("`{a}` is not an age such as 1h or 7d")))?)
        }
    };
    Ok(DeadFilter { partner, event, created_before, max_id: None })
}

/// The filter a confirmation fixed: its partner and event, and the absolute cutoff and
/// highest id it counted (so the action touches what was confirmed, not what died since).
fn confirmed_filter(state: &AppState, fields: &form::Fields) -> Result<DeadFilter, ConsoleError> {
    let get = |k: &str| fields.get(k).map(str::to_string);
    let mut f = filter_of(state, |k| if k == "older_than" { None } else { get(k) })?;
    let number = |k: &str| {
        get(k)
            .map(|v| v.parse::<i64>().map_err(|_| ConsoleError::BadRequest(format!("`{k}` must be a number"))))
            .transpose()
    };
    f.created_before = number("created_before")?;
    f.max_id = Some(number("max_id")?.ok_or_else(|| {
        ConsoleError::BadRequest("confirm first: the form of /console/dead-letters/bulk says how many".into())
    })?);
    Ok(f)
}

/// The filter's own query pairs (for links and hidden fields).
fn pairs(get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, Option<String>)> {
    vec![("partner", get("partner")), ("event", get("event")), ("older_than", get("older_than"))]
}

/// Outbox rows as a table (recent deliveries, or dead letters with a link to each).
pub fn table(rows: &[OutboxRow], recent: bool) -> Markup {
    let now = crate::util::now_ms();
    html! {
        @if rows.is_empty() {
            p.muted { "None." }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th.num { "Id" } th { "Partner" } th { "Ticket" } th { "Event" } th { "Status" } th.num { "Attempts" }
                    th { "Last answer" } th { "Created" } @if !recent { th { "Age" } }
                } }
                tbody {
                    @for r in rows {
                        @let ticket = crate::outbox::admin::view(r).ticket;
                        tr data-outbox-id=(r.id) {
                            td.num { @if r.status == "dead" { a href=(format!("/console/dead-letters/{}", r.id)) { (r.id) } } @else { (r.id) } }
                            td { a href=(format!("/console/partners/{}", r.partner)) { (r.partner) } }
                            td { @if let Some(t) = &ticket { a href=(format!("/console/tickets/{t}")) { (t) } } }
                            td { (r.event) }
                            td { (badge(&r.status)) }
                            td.num { (r.attempts) }
                            td { @if let Some(s) = r.last_status { "HTTP " (s) " " } @if let Some(e) = &r.last_error { span.muted { (e) } } }
                            td { (when(r.created_at)) }
                            @if !recent { td { (age(now - r.created_at)) } }
                        }
                    }
                }
            } }
        }
    }
}

fn filters(q: &Params, state: &AppState) -> Markup {
    let partners = super::partner_options(state);
    let mut events: Vec<(String, String)> = vec![(String::new(), "every event".into())];
    events.extend(crate::domain::events::Event::ALL.iter().map(|e| (e.as_str().to_string(), e.as_str().to_string())));
    let ages: Vec<(String, String)> = AGES.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect();
    html! {
        form.filters method="get" action="/console/dead-letters" {
            div { (select("partner", "Partner", &partners, q.get("partner").map(String::as_str))) }
            div { (select("event", "Event", &events, q.get("event").map(String::as_str))) }
            div { (select("older_than", "Age", &ages, q.get("older_than").map(String::as_str))) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
    }
}

pub async fn list(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let get = |k: &str| param(&q, k);
    let f = filter_of(&state, get)?;
    let before = number(&q, "before")?;
    let limit = page_size(&state, number(&q, "limit")?);
    let f2 = f.clone();
    let (rows, total) =
        state.db.read(move |c| Ok::<_, StoreError>((c.dead_letters(&f2, before, limit)?, c.count_dead(&f2)?))).await?;
    let mut own = pairs(get);
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten().map(|b| {
        own.push(("before", Some(b.to_string())));
        query(&own)
    });
    let filter_query = query(&pairs(get));
    let bulk_link = |action: &str| {
        let sep = if filter_query.is_empty() { "?" } else { "&" };
        format!("/console/dead-letters/bulk{filter_query}{sep}action={action}")
    };
    let body = html! {
        (filters(&q, &state))
        p data-dead-total=(total) { strong { (count(total)) } " dead letter" (if total == 1 { "" } else { "s" }) " match." }
        @if total > 0 {
            div.row {
                a href=(bulk_link("replay")) { "Replay all " (count(total)) "…" }
                a href=(bulk_link("discard")) { "Discard all " (count(total)) "…" }
            }
        }
        (table(&rows, false))
        (pager("/console/dead-letters", next))
    };
    Ok(page(&viewer, Nav::DeadLetters, "Dead letters", body))
}

pub async fn show(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    q: Params,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    let d = state
        .db
        .read(move |c| crate::outbox::admin::show(c, id))
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no outbox row {id}")))?;
    let payload = serde_json::to_string_pretty(&d.payload).unwrap_or_default();
    let dead = d.row.status == "dead";
    let done = match param(&q, "done").as_deref() {
        Some("replayed") => Some("Replayed: it goes out again now, in its ticket's order."),
        Some("discarded") => Some("Discarded: it will never be delivered; its ticket's later changes flow again."),
        _ => None,
    };
    let body = html! {
        @if let Some(d) = done { p.notice role="status" { (d) } }
        div.card {
            dl.facts {
                dt { "Status" } dd data-status=(d.row.status) { (badge(&d.row.status)) }
                dt { "Partner" } dd { a href=(format!("/console/partners/{}", d.row.partner)) { (d.row.partner) } }
                dt { "Ticket" } dd { @if let Some(t) = &d.row.ticket { a href=(format!("/console/tickets/{t}")) { (t) } } }
                dt { "Event" } dd { (d.row.event) }
                dt { "webhook-id" } dd { code { (d.row.delivery_id) } }
                dt { "Created" } dd { (when_text(&d.row.created_at)) }
                dt { "Last answer" } dd {
                    @if let Some(s) = d.row.last_status { "HTTP " (s) " " }
                    (d.row.last_error.clone().unwrap_or_default())
                    @if let Some(r) = &d.row.last_response { " " code { (r) } }
                }
            }
            @if dead {
                div.row {
                    (button(&viewer, &format!("/console/dead-letters/{id}/replay"), "Replay", ""))
                    (button(&viewer, &format!("/console/dead-letters/{id}/discard"), "Discard", "danger"))
                }
            }
        }
        h2 { "Attempts" }
        div.table-wrap { table {
            thead { tr { th.num { "#" } th { "At" } th.num { "Duration" } th { "HTTP status" } th { "Outcome" } th { "Response excerpt" } th { "Worker" } } }
            tbody {
                @for a in &d.history {
                    tr {
                        td.num { (a.attempt) }
                        td { (when_text(&a.at)) }
                        td.num { (a.duration_ms) " ms" }
                        td { @if let Some(s) = a.http_status { (s) } @else { span.muted { "no answer" } } }
                        td { (badge(&a.outcome)) @if let Some(c) = &a.error_class { " " span.muted { (c) } } }
                        td { @if let Some(x) = &a.response_excerpt { code { (x) } } }
                        td { (a.worker) }
                    }
                }
            }
        } }
        h2 { "Payload" }
        pre { (payload) }
    };
    Ok(page(&viewer, Nav::DeadLetters, &format!("Dead letter {id}"), body))
}

async fn on_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    id: i64,
    body: web::Bytes,
    replay: bool,
) -> Result<HttpResponse, ConsoleError> {
    audit::audited(&state, &req, Some(&viewer), 303, async {
        form::action(&req, &viewer, &body)?;
        let action = if replay { crate::outbox::admin::replay } else { crate::outbox::admin::discard };
        if !state.db.write(move |c| action(c, id)).await? {
            return Err(ConsoleError::NotFound(format!("outbox row {id} is not a dead letter (any more)")));
        }
        tracing::info!(outbox_id = id, replay, operator = %viewer.label(), "dead letter handled in the console");
        state.wake_outbox();
        let done = if replay { "replayed" } else { "discarded" };
        Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/console/dead-letters/{id}?done={done}")))
            .finish())
    })
    .await
}

pub async fn replay(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    on_one(state, req, viewer, path.into_inner(), body, true).await
}

pub async fn discard(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    on_one(state, req, viewer, path.into_inner(), body, false).await
}

fn bulk_action(s: Option<String>) -> Result<bool, ConsoleError> {
    match s.as_deref() {
        Some("replay") => Ok(true),
        Some("discard") => Ok(false),
        _ => Err(ConsoleError::BadRequest("the action is replay or discard".into())),
    }
}

/// The confirmation: how many letters the filter matches, and the form that acts on them.
pub async fn confirm_bulk(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let get = |k: &str| param(&q, k);
    let replay = bulk_action(get("action"))?;
    let f = filter_of(&state, get)?;
    let cutoff = f.created_before;
    let (n, max_id) = state
        .db
        .read(move |c| {
            let newest = c.dead_letters(&f, None, 1)?.first().map(|r| r.id);
            Ok::<_, StoreError>((c.count_dead(&f)?, newest))
        })
        .await?;
    let verb = if replay { "Replay" } else { "Discard" };
    let body = html! {
        p.notice role="status" data-confirm-count=(n) {
            (verb) " " strong { (count(n)) } " dead letter" (if n == 1 { "" } else { "s" }) " matching: partner "
            (get("partner").unwrap_or_else(|| "any".into())) ", event " (get("event").unwrap_or_else(|| "any".into()))
            ", " (get("older_than").map(|a| format!("older than {a}")).unwrap_or_else(|| "any age".into())) "?"
        }
        @if replay { p { "Each goes out again in its original order, with its own webhook-id." } }
        @else { p { "Discarded letters are never delivered; the later changes of their tickets flow again." } }
        form method="post" action="/console/dead-letters/bulk" {
            (csrf(&viewer))
            input type="hidden" name="action" value=(if replay { "replay" } else { "discard" });
            @for (k, v) in [("partner", get("partner")), ("event", get("event"))] { @if let Some(v) = v { input type="hidden" name=(k) value=(v); } }
            @if let Some(t) = cutoff { input type="hidden" name="created_before" value=(t); }
            input type="hidden" name="max_id" value=(max_id.unwrap_or(0));
            button type="submit" class=(if replay { "" } else { "danger" }) disabled[n == 0] { (verb) " " (count(n)) }
            " "
            a href=(format!("/console/dead-letters{}", query(&pairs(get)))) { "Cancel" }
        }
    };
    Ok(page(&viewer, Nav::DeadLetters, &format!("{verb} dead letters?"), body))
}

pub async fn bulk(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let (n, replay) = audit::audited(&state, &req, Some(&viewer), 200, async {
        let fields = form::action(&req, &viewer, &body)?;
        let replay = bulk_action(fields.get("action").map(str::to_string))?;
        let f = confirmed_filter(&state, &fields)?;
        let now = crate::util::now_ms();
        // A transaction per chunk: the rest of the gateway writes between them.
        let (mut n, mut after) = (0usize, 0i64);
        loop {
            let f = f.clone();
            let (done, last) =
                state.db.write(move |c| c.settle_dead_chunk(&f, after, replay, now).map_err(StoreError::from)).await?;
            n += done;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        tracing::info!(count = n, replay, operator = %viewer.label(), "dead letters handled in bulk in the console");
        if n > 0 {
            state.wake_outbox();
        }
        Ok((n, replay))
    })
    .await?;
    let body = html! {
        p.notice role="status" data-done-count=(n) { (if replay { "Replayed " } else { "Discarded " }) (count(n as i64)) " dead letter" (if n == 1 { "" } else { "s" }) "." }
        p { a href="/console/dead-letters" { "Back to the dead letters" } }
    };
    Ok(page(&viewer, Nav::DeadLetters, "Done", body))
}
