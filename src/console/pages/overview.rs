//! The overview: one row per partner — delivery health (breaker, backlog, oldest pending,
//! failure rate over the alert window, alert, pause), open conflicts, drift from the last
//! reconciliation, the last pull — and each partner's last 24 hours as a small chart.

use crate::api::AppState;
use crate::console::layout::{age, badge, count, page, when, Nav};
use crate::console::{chart, ConsoleError, Viewer};
use crate::store::console::HourCount;
use crate::store::models::SyncRunRow;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use maud::html;
use std::collections::HashMap;

/// One partner's row, as read.
struct Health {
    id: String,
    name: String,
    subscribes: bool,
    breaker_open_until: Option<i64>,
    paused: bool,
    backlog: i64,
    oldest_pending: Option<i64>,
    dead: i64,
    attempts: i64,
    failures: i64,
    window_secs: u64,
    alerting: bool,
    conflicts: i64,
    drift: Option<(i64, i64)>,
    last_pull: Option<SyncRunRow>,
    hours: Vec<HourCount>,
}

async fn page_data(state: &AppState) -> Result<Vec<Health>, StoreError> {
    let registry = state.registry();
    let now = crate::util::now_ms();
    let min_attempts = state.settings.outbox.alert_min_attempts;
    // Each partner with its alert window and threshold (none: it receives nothing).
    type Alerting = Option<(u64, f64)>;
    let partners: Vec<(String, String, Alerting)> = registry
        .partners()
        .map(|c| {
            let out = c.outbound.as_ref().map(|o| (o.alert_window.as_secs(), o.alert_threshold));
            (c.id.to_string(), c.name.clone(), out)
        })
        .collect();
    state
        .db
        .read(move |c| {
            let stats = c.outbox_stats()?;
            let controls: HashMap<String, (bool, Option<i64>)> =
                c.partner_controls()?.into_iter().map(|r| (r.partner, (r.paused, r.breaker_open_until))).collect();
            let conflicts: HashMap<String, i64> = c.open_conflict_counts()?.into_iter().collect();
            let reconciles = c.last_runs("reconcile", true)?;
            let run_ids: Vec<i64> = reconciles.iter().map(|r| r.id).collect();
            let mut drift_of_run: HashMap<i64, i64> = HashMap::new();
            for (run, _, n) in c.item_counts(&run_ids)? {
                *drift_of_run.entry(run).or_default() += n;
            }
            let pulls = c.last_runs("pull", true)?;
            let mut rows = Vec::new();
            for (id, name, out) in partners {
                let (paused, breaker_open_until) = controls.get(&id).cloned().unwrap_or((false, None));
                let of = |status: &str| stats.iter().find(|s| s.partner == id && s.status == status);
                let backlog =
                    of("pending").map(|s| s.count).unwrap_or(0) + of("in_flight").map(|s| s.count).unwrap_or(0);
                let oldest_pending = [of("pending"), of("in_flight")].into_iter().flatten().map(|s| s.oldest).min();
                let (window_secs, threshold) = out.unwrap_or((0, 1.0));
                let (attempts, failures) = match out {
                    Some(_) => c.attempts_since(&id, now - window_secs as i64 * 1000)?,
                    None => (0, 0),
                };
                let hours = match out {
                    Some(_) => c.hourly_attempts(&id, (now / 3_600_000 - 23) * 3_600_000)?,
                    None => Vec::new(),
                };
                let drift = reconciles
                    .iter()
                    .find(|r| r.partner == id)
                    .map(|r| (r.id, drift_of_run.get(&r.id).copied().unwrap_or(0)));
                rows.push(Health {
                    alerting: crate::ops::alerts::over_threshold(attempts, failures, threshold, min_attempts),
                    subscribes: out.is_some(),
                    breaker_open_until,
                    paused,
                    backlog,
                    oldest_pending,
                    dead: of("dead").map(|s| s.count).unwrap_or(0),
                    attempts,
                    failures,
                    window_secs,
                    conflicts: conflicts.get(&id).copied().unwrap_or(0),
                    drift,
                    last_pull: pulls.iter().find(|r| r.partner == id).cloned(),
                    hours,
                    id,
                    name,
                })
            }
            Ok(rows)
        })
        .await
}

pub async fn view(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, ConsoleError> {
    let rows = page_data(&state).await?;
    let now = crate::util::now_ms();
    let body = html! {
        div.table-wrap {
            table {
                caption.muted { "Delivery health per partner (failure rate over each partner's alert window)" }
                thead { tr {
                    th scope="col" { "Partner" } th scope="col" { "Breaker" } th scope="col" { "Delivery" }
                    th.num scope="col" { "Backlog" } th scope="col" { "Oldest pending" } th.num scope="col" { "Dead letters" }
                    th.num scope="col" { "Failure rate" } th scope="col" { "Alert" } th.num scope="col" { "Open conflicts" }
                    th.num scope="col" title="Items the last reconciliation found" { "Drift" } th scope="col" { "Last pull" }
                } }
                tbody {
                    @for h in &rows {
                        tr data-partner=(h.id) {
                            th scope="row" { a href=(format!("/console/partners/{}", h.id)) { (h.id) } br; span.muted { (h.name) } }
                            td { @match h.breaker_open_until {
                                Some(until) if until > now => { (badge("open")) " until " (when(until)) }
                                _ => { (badge("closed")) }
                            } }
                            td { @if !h.subscribes { span.muted { "no subscriptions" } } @else if h.paused { (badge("paused")) } @else { (badge("running")) } }
                            td.num { (count(h.backlog)) }
                            td { @match h.oldest_pending { Some(t) => { (age(now - t)) }, None => { span.muted { "—" } } } }
                            td.num { @if h.dead > 0 { a href=(format!("/console/dead-letters?partner={}", h.id)) { (count(h.dead)) } } @else { "0" } }
                            td.num data-failure-rate {
                                @if h.attempts > 0 { (format!("{:.0} %", 100.0 * h.failures as f64 / h.attempts as f64)) br; span.muted { (h.failures) " of " (h.attempts) " in " (age(h.window_secs as i64 * 1000)) } }
                                @else { span.muted { "no attempts" } }
                            }
                            td data-alert { @if h.alerting { (badge("failing")) } @else { (badge("ok")) } }
                            td.num { @if h.conflicts > 0 { a href=(format!("/console/conflicts?partner={}", h.id)) { (count(h.conflicts)) } } @else { "0" } }
                            td.num { @match h.drift { Some((run, n)) => { a href=(format!("/console/reconcile/runs/{run}")) { (count(n)) } }, None => { span.muted { "never run" } } } }
                            td { @match &h.last_pull { Some(r) => { (badge(&r.status)) " " (when(r.started_at)) }, None => { span.muted { "—" } } } }
                        }
                    }
                }
            }
        }
        h2 { "Deliveries and failures, last 24 hours" }
        div.grid {
            @for h in rows.iter().filter(|h| h.subscribes) {
                div.card {
                    h3 { a href=(format!("/console/partners/{}", h.id)) { (h.id) } }
                    (chart::deliveries(&h.id, &h.hours, now))
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Overview, "Overview", body))
}
