//! The outbox payload: what fan-out writes into an outbox row and delivery reads back — one
//! type on both sides, stored as JSON.

use super::{JournalInput, Ticket};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One change of one ticket, for one partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxPayload {
    /// Unique per row: the partner dedupes on it (also the Standard Webhooks `webhook-id`).
    pub delivery_id: String,
    /// The headline event (the most significant of `events`).
    pub event: String,
    pub events: Vec<String>,
    pub origin: Origin,
    /// The ticket as it stood after the change.
    pub ticket: TicketSnapshot,
    /// Canonical fields that changed (empty on create), in name order.
    #[serde(default)]
    pub changes: BTreeMap<String, FieldChange>,
    /// Work notes and comments the change added: they travel once, with it.
    #[serde(default)]
    pub journal: Vec<JournalInput>,
}

/// Who made the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub partner: String,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub from: Value,
    pub to: Value,
}

/// A ticket's identity and every canonical value that is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSnapshot {
    pub number: String,
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub updated_by: String,
    #[serde(flatten)]
    pub values: Map<String, Value>,
}

impl TicketSnapshot {
    pub fn of(t: &Ticket) -> TicketSnapshot {
        TicketSnapshot {
            number: t.number.clone(),
            version: t.version,
            created_at: crate::util::ms_to_rfc3339(t.created_at),
            updated_at: crate::util::ms_to_rfc3339(t.updated_at),
            created_by: t.created_by.clone(),
            updated_by: t.updated_by.clone(),
            values: t.values.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// The snapshot as a canonical ticket, for rendering in a partner's vocabulary (no row id;
    /// times are not needed there).
    pub fn to_ticket(&self) -> Ticket {
        Ticket {
            id: 0,
            number: self.number.clone(),
            version: self.version,
            created_at: 0,
            updated_at: 0,
            created_by: self.created_by.clone(),
            updated_by: self.updated_by.clone(),
            values: self.values.clone(),
            stamps: Default::default(),
            open_conflicts: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JournalKind;

    #[test]
    fn round_trips_and_keeps_the_stored_shape() {
        let mut values = Map::new();
        values.insert("state".into(), "in_progress".into());
        values.insert("hold_reason".into(), Value::Null);
        let t = Ticket {
            id: 7,
            number: "EB0000007".into(),
            version: 3,
            created_at: 0,
            updated_at: 1_000,
            created_by: "enovia".into(),
            updated_by: "acme-msp".into(),
            values,
            stamps: Default::default(),
            open_conflicts: 0,
        };
        let p = OutboxPayload {
            delivery_id: "msg_1".into(),
            event: "state_changed".into(),
            events: vec!["state_changed".into()],
            origin: Origin { partner: "acme-msp".into(), request_id: "r1".into() },
            ticket: TicketSnapshot::of(&t),
            changes: [("state".to_string(), FieldChange { from: "new".into(), to: "in_progress".into() })].into(),
            journal: vec![JournalInput { kind: JournalKind::WorkNote, body: "on it".into(), entry_id: None }],
        };
        let text = serde_json::to_string(&p).unwrap();
        // Flat ticket members, unset values left out: what older rows hold too.
        assert!(text.contains(r#""ticket":{"number":"EB0000007","version":3,"#), "{text}");
        assert!(text.contains(r#""state":"in_progress"}"#) && !text.contains("hold_reason"), "{text}");
        let back: OutboxPayload = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.ticket.to_ticket().values.get("state"), Some(&Value::from("in_progress")));
    }
}
