//! Canonical outbox payload → the partner's HTTP request: its field names and values (the
//! contract's read map), journal entries at its work-note / comment fields, and the create or
//! update endpoint depending on whether the partner's ticket id is known.

use crate::contract::{Contract, Outbound, Target};
use crate::domain::payload::OutboxPayload;
use crate::domain::JournalKind;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct PartnerRequest {
    pub method: reqwest::Method,
    pub url: String,
    pub body: Vec<u8>,
    /// True when this is the first push (the create endpoint).
    pub creates: bool,
    /// The hub's ticket number (sent as `X-Ebond-Ticket`).
    pub ticket: String,
    /// The ticket version the push brings (sent as `X-Ebond-Version`: the partner may send it
    /// back in `If-Match`).
    pub version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the outbox payload is unreadable: {0}")]
    Payload(String),
    #[error("no partner ticket id yet and the contract has no create_url")]
    NoCreateEndpoint,
    #[error("the contract has no update_url")]
    NoUpdateEndpoint,
}

pub fn build(
    contract: &Contract,
    outbound: &Outbound,
    payload: &OutboxPayload,
    partner_ticket_id: Option<&str>,
) -> Result<PartnerRequest, BuildError> {
    let ticket = payload.ticket.to_ticket();
    let mut body = contract.render(&ticket, partner_ticket_id);
    // Journal entries travel once, with the change that added them.
    let mut notes: Map<String, Value> = Map::new();
    for entry in &payload.journal {
        let target = match entry.kind {
            JournalKind::WorkNote => Target::WorkNote,
            JournalKind::Comment => Target::Comment,
            JournalKind::FieldChange => continue,
        };
        // Journal entries reach only partners whose contract lets them read that kind.
        if !contract.may_read(&target.name()) {
            continue;
        }
        let Some(spec) = contract.fields.iter().find(|f| f.target == target) else { continue };
        let text = entry.body.as_str();
        let slot = notes.entry(spec.pointer.as_str().to_string()).or_insert(Value::String(String::new()));
        if let Value::String(s) = slot {
            if !s.is_empty() {
                s.push_str("\n\n");
            }
            s.push_str(text);
        }
    }
    for (ptr, text) in notes {
        if let Some(spec) = contract.fields.iter().find(|f| f.pointer.as_str() == ptr) {
            spec.pointer.set(&mut body, text);
        }
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| BuildError::Payload(e.to_string()))?;
    let method = |m: &str| reqwest::Method::from_bytes(m.as_bytes()).unwrap_or(reqwest::Method::POST);
    match partner_ticket_id {
        Some(pid) => {
            let template = outbound.update_url.as_deref().ok_or(BuildError::NoUpdateEndpoint)?;
            Ok(PartnerRequest {
                method: method(&outbound.update_method),
                url: template.replace("{partner_ticket_id}", &crate::util::encode_path_segment(pid)),
                body: bytes,
                creates: false,
                ticket: ticket.number,
                version: ticket.version,
            })
        }
        None => {
            let url = outbound.create_url.clone().ok_or(BuildError::NoCreateEndpoint)?;
            Ok(PartnerRequest {
                method: method(&outbound.create_method),
                url,
                body: bytes,
                creates: true,
                ticket: ticket.number,
                version: ticket.version,
            })
        }
    }
}

/// The partner's new ticket id from a create response, at the contract's `id_pointer`
/// (a string or a number).
pub fn created_id(outbound: &Outbound, response: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(response).ok()?;
    let v = outbound.id_pointer.as_ref()?.get(&doc)?;
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
