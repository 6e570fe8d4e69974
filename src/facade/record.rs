//! Records in ServiceNow's shape: a ticket as the partner may read it, every value a string,
//! with the system fields and, on request, display values; and a record a client sends turned
//! into the partner's contract payload (strings typed as the contract types its fields).

use super::plan::readable_fields;
use super::{field_name, format_time, SYSTEM_FIELDS};
use crate::contract::{Contract, FieldSpec, FieldType, Target};
use crate::domain::Ticket;
use serde_json::{Map, Value};

/// `sysparm_display_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// `false` (default): values.
    Value,
    /// `true`: display values (an enum's label).
    Display,
    /// `all`: `{"display_value": …, "value": …}` for every field.
    All,
}

impl Display {
    /// Case-insensitive, as the clients send it (`True`, `all`, …).
    pub fn parse(v: Option<&str>) -> Result<Display, String> {
        match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("false") => Ok(Display::Value),
            Some("true") => Ok(Display::Display),
            Some("all") => Ok(Display::All),
            Some(other) => Err(format!("sysparm_display_value must be true, false or all, not `{other}`")),
        }
    }
}

/// A ticket's facade identity beside its canonical values.
pub struct Facts<'a> {
    pub ticket: &'a Ticket,
    pub sys_id: &'a str,
    pub partner_ticket_id: Option<&'a str>,
}

/// A JSON value as ServiceNow writes it: a string (`""` for nothing).
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The record of `facts` as `contract`'s partner may read it; `fields` (from
/// `sysparm_fields`) narrows and orders it (names it does not have are left out, as on
/// ServiceNow).
pub fn render(contract: &Contract, facts: &Facts, display: Display, fields: Option<&[String]>) -> Map<String, Value> {
    render_fields(contract, &readable_fields(contract), facts, display, fields)
}

/// [`render`] with the partner's readable fields already listed (once for a whole page).
pub fn render_fields(
    contract: &Contract,
    readable: &[&FieldSpec],
    facts: &Facts,
    display: Display,
    fields: Option<&[String]>,
) -> Map<String, Value> {
    let mut all: Vec<(String, String, String)> = Vec::with_capacity(readable.len() + SYSTEM_FIELDS.len());
    for spec in readable {
        let name = field_name(spec).to_string();
        // As `Contract::render` maps them; journal fields read as empty, as the Table API
        // answers them.
        let canonical = match &spec.target {
            Target::WorkNote | Target::Comment => Value::Null,
            Target::PartnerTicketId => facts.partner_ticket_id.map(|p| Value::String(p.into())).unwrap_or(Value::Null),
            Target::Version => Value::String(facts.ticket.version.to_string()),
            t => facts.ticket.get(&t.name()).clone(),
        };
        let value = match &spec.target {
            Target::Version => text(&canonical),
            _ => contract.outward(spec, &canonical).as_ref().map(text).unwrap_or_default(),
        };
        let shown = match spec.ty {
            FieldType::Enum if !value.is_empty() => spec.label_of(&value).to_string(),
            _ => value.clone(),
        };
        all.push((name, value, shown));
    }
    let t = facts.ticket;
    for (name, value) in [
        ("sys_id", facts.sys_id.to_string()),
        ("number", t.number.clone()),
        ("sys_created_on", format_time(t.created_at)),
        ("sys_updated_on", format_time(t.updated_at)),
        ("sys_mod_count", (t.version - 1).to_string()),
        ("sys_created_by", t.created_by.clone()),
        ("sys_updated_by", t.updated_by.clone()),
    ] {
        all.push((name.to_string(), value.clone(), value));
    }
    let wanted: Option<Vec<&str>> = fields
        .map(|f| f.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .filter(|f| !f.is_empty());
    let picked: Vec<&(String, String, String)> = match &wanted {
        None => all.iter().collect(),
        Some(names) => {
            let mut seen = std::collections::BTreeSet::new();
            names.iter().filter(|n| seen.insert(**n)).filter_map(|n| all.iter().find(|(k, _, _)| k == n)).collect()
        }
    };
    picked
        .into_iter()
        .map(|(name, value, shown)| {
            let v = match display {
                Display::Value => Value::String(value.clone()),
                Display::Display => Value::String(shown.clone()),
                Display::All => serde_json::json!({"display_value": shown, "value": value}),
            };
            (name.clone(), v)
        })
        .collect()
}

/// A record a client sends, as the partner's contract payload: system fields dropped (ebond
/// sets them; ServiceNow ignores them on write too), `{"value": …}` objects unwrapped, `""`
/// clearing a field, and strings typed as the contract types the field. Members the contract
/// does not declare are left for its validation to refuse.
pub fn payload(contract: &Contract, body: &Value) -> Result<Value, String> {
    let Value::Object(members) = body else {
        return Err("the body must be a JSON object of field names and values".into());
    };
    let mut out = Map::new();
    for (k, v) in members {
        if SYSTEM_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let v = match v {
            Value::Object(o) if o.contains_key("value") => o["value"].clone(),
            other => other.clone(),
        };
        let Some(spec) = contract.fields.iter().find(|f| field_name(f) == k) else {
            out.insert(k.clone(), v);
            continue;
        };
        let typed = match (spec.ty, v) {
            // An empty journal field adds no entry.
            (_, Value::String(s)) if s.is_empty() && matches!(spec.target, Target::WorkNote | Target::Comment) => {
                continue
            }
            (_, Value::String(s)) if s.is_empty() => Value::Null,
            (FieldType::Integer, Value::String(s)) => {
                s.trim().parse::<i64>().map(Value::from).unwrap_or(Value::String(s))
            }
            (FieldType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(s),
            },
            (FieldType::Enum | FieldType::String | FieldType::Text, Value::Number(n)) => Value::String(n.to_string()),
            (FieldType::Enum | FieldType::String | FieldType::Text, Value::Bool(b)) => Value::String(b.to_string()),
            (_, other) => other,
        };
        out.insert(k.clone(), typed);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract() -> std::sync::Arc<Contract> {
        crate::facade::example_contract()
    }

    fn ticket() -> Ticket {
        let values: Map<String, Value> = serde_json::from_value(json!({
            "kind": "incident", "state": "in_progress", "short_description": "Disk full", "impact": 2, "priority": 3
        }))
        .unwrap();
        Ticket {
            id: 7,
            number: "EB0000007".into(),
            version: 3,
            created_at: 1_767_261_600_000,
            updated_at: 1_767_261_661_500,
            created_by: "servicenow".into(),
            updated_by: "initech".into(),
            values,
            stamps: Default::default(),
            open_conflicts: 0,
        }
    }

    #[test]
    fn every_value_is_a_string_with_system_fields_and_labels() {
        let (c, t) = (contract(), ticket());
        let facts = Facts { ticket: &t, sys_id: "0123456789abcdef0123456789abcdef", partner_ticket_id: None };
        let r = render(&c, &facts, Display::Value, None);
        assert_eq!(r["state"], "2");
        assert_eq!(r["impact"], "2");
        assert_eq!(r["description"], "", "empty fields are empty strings");
        assert_eq!(r["work_notes"], "");
        assert_eq!(r["sys_mod_count"], "2");
        assert_eq!(r["sys_updated_on"], "2026-01-01 10:01:01");
        assert_eq!(r["number"], "EB0000007");
        let r = render(&c, &facts, Display::Display, None);
        assert_eq!(r["state"], "In Progress");
        let r = render(&c, &facts, Display::All, Some(&["state".into(), "nope".into(), "sys_id".into()]));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "state": {"display_value": "In Progress", "value": "2"},
                "sys_id": {"display_value": "0123456789abcdef0123456789abcdef", "value": "0123456789abcdef0123456789abcdef"}
            })
        );
    }

    #[test]
    fn client_records_become_contract_payloads() {
        let c = contract();
        let p = payload(
            &c,
            &json!({"sys_id": "x", "number": "INC1", "short_description": "a", "impact": 2, "description": "",
                     "state": {"value": "2", "display_value": "In Progress"}, "work_notes": "", "bogus": "b"}),
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"short_description": "a", "impact": "2", "description": null, "state": "2", "bogus": "b"})
        );
        assert!(payload(&c, &json!([1])).is_err());
        assert_eq!(Display::parse(Some("True")), Ok(Display::Display));
        assert_eq!(Display::parse(Some("ALL")), Ok(Display::All));
        assert!(Display::parse(Some("maybe")).is_err());
    }
}
