//! Comparing a partner's copy of a ticket with the hub's: which fields differ, and which way
//! each one drifted (pure logic; the history it needs is read by `sync::conflicts::histories`).

use crate::contract::{Contract, Target};
use crate::domain::Ticket;
use crate::sync::conflicts::FieldHistory;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a partner's copy differs from the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The partner has no copy of a ticket shared with it.
    MissingAtPartner,
    /// The partner has a record the hub has no ticket for.
    MissingAtHub,
    /// The hub has a newer value the partner has not got: re-push.
    HubAhead,
    /// The partner changed a field it owns and the hub never heard: apply it as its write.
    PartnerAhead,
    /// Both sides changed the field since the partner last saw it: a conflict for people.
    BothChanged,
}

impl DriftKind {
    pub const ALL: [DriftKind; 5] = [
        DriftKind::MissingAtPartner,
        DriftKind::MissingAtHub,
        DriftKind::HubAhead,
        DriftKind::PartnerAhead,
        DriftKind::BothChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::MissingAtPartner => "missing_at_partner",
            DriftKind::MissingAtHub => "missing_at_hub",
            DriftKind::HubAhead => "hub_ahead",
            DriftKind::PartnerAhead => "partner_ahead",
            DriftKind::BothChanged => "both_changed",
        }
    }

    pub fn parse(s: &str) -> Option<DriftKind> {
        DriftKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One field that differs, in canonical values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldDrift {
    pub field: String,
    pub hub: Value,
    pub partner: Value,
    /// The value the partner last saw, when another party changed the field since (`null`: it
    /// saw the field empty).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub base: Option<Value>,
}

/// A member that is there, `null` included, is `Some` (absent is `None` by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The canonical fields compared for `contract`: those its partner reads or writes, except the
/// ticket id (the key), journal entries (appended, never overwritten) and the version.
pub fn compared_fields(contract: &Contract) -> Vec<String> {
    let mut out: Vec<String> = contract
        .fields
        .iter()
        .filter(|f| matches!(f.target, Target::Field(_) | Target::Attribute(_)))
        .map(|f| f.target.name())
        .filter(|n| contract.may_read(n) || contract.may_write(n))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Fields whose value differs, among those the partner's copy carries (a field it does not
/// return cannot be compared). An absent value and `null` are the same.
pub fn differing(contract: &Contract, hub: &Ticket, theirs: &Map<String, Value>) -> Vec<String> {
    compared_fields(contract).into_iter().filter(|f| theirs.get(f).is_some_and(|p| p != hub.get(f))).collect()
}

/// Which way one differing field drifted.
pub fn classify(contract: &Contract, field: &str, theirs: &Value, history: &FieldHistory) -> DriftKind {
    if !contract.may_write(field) {
        return DriftKind::HubAhead;
    }
    match &history.base {
        // Another party changed it since the partner saw it: is the partner still where it was?
        Some(base) if base == theirs => DriftKind::HubAhead,
        Some(_) => DriftKind::BothChanged,
        // The hub thinks the partner has its value; the partner still holds the one from before
        // the last change another party made: that push never landed.
        None if history.before_last.as_ref() == Some(theirs) => DriftKind::HubAhead,
        None => DriftKind::PartnerAhead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract(id: &str) -> std::sync::Arc<Contract> {
        let registry =
            crate::contract::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")).unwrap();
        registry.get(id).cloned().unwrap()
    }

    fn history(base: Option<Value>, before_last: Option<Value>) -> FieldHistory {
        FieldHistory { base, before_last }
    }

    #[test]
    fn each_direction_of_drift_is_told_apart() {
        let acme = contract("acme-msp");
        // Acme reads but does not write the short description: the hub is right.
        assert_eq!(classify(&acme, "short_description", &json!("old"), &history(None, None)), DriftKind::HubAhead);
        // Acme owns the state: a value nobody sent is Acme's own change.
        assert_eq!(classify(&acme, "state", &json!("on_hold"), &history(None, None)), DriftKind::PartnerAhead);
        // Another party moved it after Acme saw it, and Acme still shows what it saw.
        let moved = history(Some(json!("new")), Some(json!("new")));
        assert_eq!(classify(&acme, "state", &json!("new"), &moved), DriftKind::HubAhead);
        // … or Acme changed it too, to something else.
        assert_eq!(classify(&acme, "state", &json!("on_hold"), &moved), DriftKind::BothChanged);
        // Delivered (seen) but still the old value: the push was answered and not stored.
        let lost = history(None, Some(json!("new")));
        assert_eq!(classify(&acme, "state", &json!("new"), &lost), DriftKind::HubAhead);
    }

    #[test]
    fn only_fields_the_partner_returns_are_compared() {
        let snow = contract("servicenow");
        let mut values = Map::new();
        values.insert("short_description".into(), json!("Printer"));
        values.insert("state".into(), json!("new"));
        let hub = Ticket {
            id: 1,
            number: "EB0000001".into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
            created_by: "servicenow".into(),
            updated_by: "servicenow".into(),
            values,
            stamps: Default::default(),
            open_conflicts: 0,
        };
        let mut theirs = Map::new();
        theirs.insert("short_description".into(), json!("Printer on fire"));
        theirs.insert("state".into(), json!("new"));
        theirs.insert("urgency".into(), Value::Null);
        assert_eq!(differing(&snow, &hub, &theirs), ["short_description"]);
        assert!(!compared_fields(&snow).contains(&"partner_ticket_id".to_string()));
    }
}
