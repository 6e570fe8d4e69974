//! Operator actions on the outbox, shared by the CLI and the admin API: list, inspect and
//! replay dead letters; pause and resume a partner.

use crate::domain::payload::OutboxPayload;
use crate::store::models::{AttemptRow, OutboxRow};
use crate::store::outbox::OutboxFilter;
use crate::store::{Repos, StoreError};
use serde::Serialize;
use serde_json::Value;

/// An outbox row as operators see it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OutboxView {
    pub id: i64,
    pub partner: String,
    pub ticket: Option<String>,
    pub event: String,
    pub delivery_id: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: String,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_response: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub at: String,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub response_excerpt: Option<String>,
    pub worker: String,
}

/// A row with its payload and every attempt.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OutboxDetail {
    #[serde(flatten)]
    pub row: OutboxView,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Every attempt, oldest first (`attempts` above is the count since the last replay).
    pub history: Vec<AttemptView>,
}

pub fn view(row: &OutboxRow) -> OutboxView {
    let ticket = serde_json::from_str::<OutboxPayload>(&row.payload).ok().map(|p| p.ticket.number);
    OutboxView {
        id: row.id,
        partner: row.partner.clone(),
        ticket,
        event: row.event.clone(),
        delivery_id: row.delivery_id.clone(),
        status: row.status.clone(),
        attempts: row.attempts,
        next_attempt_at: crate::util::ms_to_rfc3339(row.next_attempt_at),
        last_status: row.last_status,
        last_error: row.last_error.clone(),
        last_response: row.last_response.clone(),
        created_at: crate::util::ms_to_rfc3339(row.created_at),
        delivered_at: row.delivered_at.map(crate::util::ms_to_rfc3339),
    }
}

pub fn attempt_view(a: &AttemptRow) -> AttemptView {
    AttemptView {
        attempt: a.attempt,
        at: crate::util::ms_to_rfc3339(a.started_at),
        duration_ms: a.duration_ms,
        http_status: a.http_status,
        outcome: a.outcome.clone(),
        error_class: a.error_class.clone(),
        response_excerpt: a.response_excerpt.clone(),
        worker: a.worker.clone(),
    }
}

pub fn list(c: &mut dyn Repos, filter: &OutboxFilter) -> Result<Vec<OutboxView>, StoreError> {
    let rows = c.list_outbox(filter)?;
    Ok(rows.iter().map(view).collect())
}

/// Rows of one ticket (by hub number), oldest first.
pub fn of_ticket(c: &mut dyn Repos, number: &str) -> Result<Option<Vec<OutboxDetail>>, StoreError> {
    let Some(ticket) = c.ticket_by_number(number)? else {
        return Ok(None);
    };
    let rows = c.outbox_of_ticket(ticket.id)?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(d) = show(c, r.id)? {
            out.push(d);
        }
    }
    Ok(Some(out))
}

pub fn show(c: &mut dyn Repos, id: i64) -> Result<Option<OutboxDetail>, StoreError> {
    let Some(row) = c.outbox_row(id)? else {
        return Ok(None);
    };
    let attempts = c.attempts_of(id)?;
    Ok(Some(OutboxDetail {
        row: view(&row),
        payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
        history: attempts.iter().map(attempt_view).collect(),
    }))
}

/// Replays one dead letter. `Ok(false)`: no dead letter with that id.
pub fn replay(c: &mut dyn Repos, id: i64) -> Result<bool, StoreError> {
    let now = crate::util::now_ms();
    Ok(c.replay(id, now)?)
}

/// Discards one dead letter: it is never delivered, and the rows after it flow again.
pub fn discard(c: &mut dyn Repos, id: i64) -> Result<bool, StoreError> {
    let now = crate::util::now_ms();
    Ok(c.discard(id, now)?)
}

/// Replays every dead letter of a partner; they go out in their original order.
pub fn replay_partner(c: &mut dyn Repos, partner: &str) -> Result<usize, StoreError> {
    let now = crate::util::now_ms();
    Ok(c.replay_partner(partner, now)?)
}

pub fn set_paused(c: &mut dyn Repos, partner: &str, paused: bool) -> Result<(), StoreError> {
    let now = crate::util::now_ms();
    Ok(c.set_paused(partner, paused, now)?)
}

pub fn paused(c: &mut dyn Repos) -> Result<Vec<String>, StoreError> {
    Ok(c.paused_partners()?)
}
