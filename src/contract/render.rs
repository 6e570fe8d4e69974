//! Canonical ticket → the partner's vocabulary: only the fields the contract lets the partner
//! read, under the partner's names (nested by JSON Pointer), with its own enum values and
//! date-time format.

use super::{Contract, FieldSpec, FieldType, Target};
use crate::domain::Ticket;
use serde_json::{Map, Value};

impl Contract {
    /// The partner's view of `ticket`. `partner_ticket_id` is the partner's own id, if bonded.
    pub fn render(&self, ticket: &Ticket, partner_ticket_id: Option<&str>) -> Value {
        let mut out = Value::Object(Map::new());
        let mut done = std::collections::BTreeSet::new();
        for spec in &self.fields {
            let target = spec.target.name();
            if !self.may_read(&target) || !done.insert(target.clone()) {
                continue;
            }
            let canonical = match &spec.target {
                Target::PartnerTicketId => partner_ticket_id.map(|s| Value::String(s.into())).unwrap_or(Value::Null),
                Target::WorkNote | Target::Comment => continue,
                Target::Version => {
                    let v = match spec.ty {
                        FieldType::String => Value::String(ticket.version.to_string()),
                        _ => Value::from(ticket.version),
                    };
                    spec.pointer.set(&mut out, v);
                    continue;
                }
                _ => ticket.get(&target).clone(),
            };
            if let Some(v) = self.outward(spec, &canonical) {
                spec.pointer.set(&mut out, v);
            }
        }
        out
    }

    /// The partner value for a canonical value, or `None` when it has no partner form.
    pub fn outward(&self, spec: &FieldSpec, canonical: &Value) -> Option<Value> {
        if canonical.is_null() {
            return Some(Value::Null);
        }
        match spec.ty {
            FieldType::Enum => {
                spec.outbound_values.iter().find(|(c, _)| c == canonical).map(|(_, p)| Value::String(p.clone()))
            }
            FieldType::Datetime => {
                let dt = chrono::DateTime::parse_from_rfc3339(canonical.as_str()?).ok()?.with_timezone(&chrono::Utc);
                Some(Value::String(match &spec.format {
                    Some(f) => dt.format(f).to_string(),
                    None => dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }))
            }
            _ => Some(canonical.clone()),
        }
    }

    /// A canonical state as the partner writes it, as text (what messages and documents show).
    pub fn state_text(&self, state: &str) -> String {
        match self.state_outward(state) {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The partner's value for a canonical state, for write responses.
    pub fn state_outward(&self, state: &str) -> Value {
        self.field_for("state")
            .and_then(|spec| self.outward(spec, &Value::String(state.into())))
            .unwrap_or_else(|| Value::String(state.into()))
    }
}
