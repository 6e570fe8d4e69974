//! Partner payload → canonical command: types, limits, patterns, enum maps, required fields,
//! unknown members, write ownership and conditional rules. Every problem in a payload is
//! reported at once, named as the partner names the field.

use super::compile::plain;
use super::pointer::undeclared_members;
use super::{Contract, FieldSpec, FieldType, Target, UnknownFields};
use crate::domain::{Changeset, JournalInput, JournalKind};
use serde::Serialize;
use serde_json::Value;

/// Whether the payload creates a ticket or updates one (required fields apply on create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
}

/// One problem with one field of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field as the partner names it (the key, or a JSON Pointer when nested).
    pub field: String,
    /// Stable machine-readable code: required, type, enum, min_length, max_length, range,
    /// pattern, datetime, unknown_field, ….
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), code: code.into(), message: message.into() }
    }
}

/// Why a payload was refused before it reached the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// Contract violations (422).
    Invalid(Vec<FieldError>),
    /// Fields this partner may not write, by the partner's names (403).
    Forbidden(Vec<String>),
}

/// A payload in canonical terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub changes: Changeset,
    pub journal: Vec<JournalInput>,
    pub partner_ticket_id: Option<String>,
}

/// Where a payload comes from: the partner's request, or a record read from its system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Request,
    /// Read from the partner's system (pull sync, reconciliation): a whole record, not a
    /// change. Members the contract does not declare and fields the partner may only read are
    /// passed over instead of refused, an empty string is an empty field, and each journal
    /// entry gets an id from its text so a record read twice adds it once.
    Record,
}

impl Contract {
    pub fn map_inbound(&self, payload: &Value, op: Op) -> Result<Mapped, MapError> {
        self.map_payload(payload, op, Source::Request)
    }

    /// A record read from the partner's system, as the write of the fields the partner owns.
    pub fn map_record(&self, record: &Value, op: Op) -> Result<Mapped, MapError> {
        self.map_payload(record, op, Source::Record)
    }

    /// Every field of a record the partner reads or writes, in canonical values (what
    /// reconciliation compares), with the partner's ticket id and the fields that did not
    /// convert. Journal fields are not compared: they are appended, never overwritten.
    pub fn read_record(&self, record: &Value) -> (Option<String>, serde_json::Map<String, Value>, Vec<FieldError>) {
        let mut values = serde_json::Map::new();
        let mut errors = Vec::new();
        let mut pid = None;
        for spec in &self.fields {
            let name = spec.target.name();
            if !(self.may_read(&name) || self.may_write(&name)) {
                continue;
            }
            let Some(raw) = spec.pointer.get(record) else { continue };
            let raw = if raw.as_str() == Some("") { &Value::Null } else { raw };
            match (&spec.target, convert(spec, raw, Op::Update)) {
                (Target::WorkNote | Target::Comment | Target::Version, _) => {}
                (Target::PartnerTicketId, Ok(v)) => pid = v.and_then(|v| v.as_str().map(str::to_string)),
                (_, Ok(Some(v))) => {
                    values.entry(name).or_insert(v);
                }
                (_, Ok(None)) => {}
                (_, Err(e)) => errors.push(e),
            }
        }
        (pid, values, errors)
    }

    fn map_payload(&self, payload: &Value, op: Op, source: Source) -> Result<Mapped, MapError> {
        let mut errors = Vec::new();
        if !payload.is_object() {
            return Err(MapError::Invalid(vec![FieldError::new("", "type", "the request body must be a JSON object")]));
        }
        if self.unknown_fields == UnknownFields::Reject && source == Source::Request {
            let declared: Vec<_> = self.fields.iter().map(|f| &f.pointer).collect();
            for member in undeclared_members(payload, &declared) {
                let shown = super::pointer::Pointer::parse(&member).map(|p| p.display()).unwrap_or(member);
                errors.push(FieldError::new(
                    shown.clone(),
                    "unknown_field",
                    format!("`{shown}` is not a field of the {} contract", self.id),
                ));
            }
        }

        let mut mapped = Mapped::default();
        let mut forbidden = Vec::new();
        for spec in &self.fields {
            let raw = spec.pointer.get(payload);
            let Some(raw) = raw else {
                if op == Op::Create && spec.required_on_create && !mapped_already(&mapped, &spec.target) {
                    errors.push(FieldError::new(
                        &spec.display,
                        "required",
                        format!("`{}` is required when creating a ticket", spec.display),
                    ));
                }
                continue;
            };
            if !self.may_write(&spec.target.name()) {
                if source == Source::Request {
                    forbidden.push(spec.display.clone());
                }
                continue;
            }
            let raw = match source {
                Source::Record if raw.as_str() == Some("") => &Value::Null,
                _ => raw,
            };
            if mapped_already(&mapped, &spec.target) {
                continue; // an earlier field already carried this target
            }
            match convert(spec, raw, op) {
                Ok(None) => {}
                Ok(Some(value)) => match &spec.target {
                    Target::PartnerTicketId => match value.as_str().map(crate::domain::ids::TicketReference::parse) {
                        // It must be usable in a path later: no control characters, ≤ 255.
                        Some(Err(why)) => errors.push(FieldError::new(&spec.display, "pattern", why)),
                        Some(Ok(id)) => mapped.partner_ticket_id = Some(id.to_string()),
                        None => {}
                    },
                    Target::WorkNote | Target::Comment => {
                        if let Some(body) = value.as_str() {
                            let kind = if spec.target == Target::WorkNote {
                                JournalKind::WorkNote
                            } else {
                                JournalKind::Comment
                            };
                            let entry_id = (source == Source::Record)
                                .then(|| format!("sha256:{}", &crate::util::sha256_hex(body.as_bytes())[..32]));
                            mapped.journal.push(JournalInput { kind, body: body.to_string(), entry_id });
                        }
                    }
                    target => {
                        mapped.changes.insert(target.name(), value);
                    }
                },
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(MapError::Invalid(errors));
        }
        if !forbidden.is_empty() {
            return Err(MapError::Forbidden(forbidden));
        }
        self.apply_rules(payload, op, &mut mapped);
        Ok(mapped)
    }

    /// First matching rule per target, for targets the payload did not set directly. Rules
    /// with no conditions are defaults and apply on create only; conditional rules need every
    /// condition's field present in the payload.
    fn apply_rules(&self, payload: &Value, op: Op, mapped: &mut Mapped) {
        for rule in &self.rules {
            let name = rule.target.name();
            if mapped.changes.contains_key(&name) {
                continue;
            }
            let applies = if rule.when.is_empty() {
                op == Op::Create
            } else {
                rule.when.iter().all(|(ptr, accepted)| {
                    ptr.get(payload).is_some_and(|v| !v.is_null() && accepted.contains(&plain(v)))
                })
            };
            if applies {
                mapped.changes.insert(name, rule.value.clone());
            }
        }
    }
}

fn mapped_already(mapped: &Mapped, target: &Target) -> bool {
    match target {
        Target::PartnerTicketId => mapped.partner_ticket_id.is_some(),
        Target::WorkNote | Target::Comment | Target::Version => false,
        t => mapped.changes.contains_key(&t.name()),
    }
}

/// Checks one present value and converts it to its canonical form. `Ok(None)`: nothing to
/// apply (an explicit null for a journal entry).
fn convert(spec: &FieldSpec, raw: &Value, op: Op) -> Result<Option<Value>, FieldError> {
    let name = &spec.display;
    let err = |code: &str, msg: String| Err(FieldError::new(name, code, msg));
    if raw.is_null() {
        let clearable = matches!(&spec.target, Target::Field(f) if !matches!(f.name, "state" | "kind"))
            || matches!(spec.target, Target::Attribute(_));
        return match (&spec.target, op) {
            (Target::WorkNote | Target::Comment, _) => Ok(None),
            (_, Op::Create) if spec.required_on_create => {
                err("required", format!("`{name}` is required when creating a ticket"))
            }
            _ if clearable => Ok(Some(Value::Null)),
            _ => err("required", format!("`{name}` cannot be cleared")),
        };
    }
    match spec.ty {
        FieldType::String | FieldType::Text => {
            let Some(s) = raw.as_str() else {
                return err("type", format!("`{name}` must be a string, got {}", kind_of(raw)));
            };
            let len = s.chars().count();
            if let Some(min) = spec.min_length {
                if len < min {
                    return err("min_length", format!("`{name}` must be at least {min} characters, got {len}"));
                }
            }
            if let Some(max) = spec.max_length {
                if len > max {
                    return err("max_length", format!("`{name}` must be at most {max} characters, got {len}"));
                }
            }
            if let Some(re) = &spec.pattern {
                if !re.is_match(s) {
                    return err("pattern", format!("`{name}` must match the pattern {}", re.as_str()));
                }
            }
            if matches!(spec.target, Target::PartnerTicketId | Target::WorkNote | Target::Comment)
                && s.trim().is_empty()
            {
                return err("min_length", format!("`{name}` must not be empty"));
            }
            Ok(Some(Value::String(s.to_string())))
        }
        FieldType::Integer => {
            let Some(i) = raw.as_i64() else {
                return err("type", format!("`{name}` must be an integer, got {}", kind_of(raw)));
            };
            let (min, max) = (spec.min.unwrap_or(i64::MIN), spec.max.unwrap_or(i64::MAX));
            if i < min || i > max {
                return err("range", format!("`{name}` must be between {min} and {max}, got {i}"));
            }
            Ok(Some(Value::from(i)))
        }
        FieldType::Boolean => match raw.as_bool() {
            Some(b) => Ok(Some(Value::Bool(b))),
            None => err("type", format!("`{name}` must be true or false, got {}", kind_of(raw))),
        },
        FieldType::Enum => {
            let text = match raw {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_i64() => n.to_string(),
                other => return err("type", format!("`{name}` must be a string, got {}", kind_of(other))),
            };
            match spec.values.iter().find(|(p, _)| *p == text) {
                Some((_, canonical)) => Ok(Some(canonical.clone())),
                None => {
                    let allowed: Vec<&str> = spec.values.iter().map(|(p, _)| p.as_str()).collect();
                    err("enum", format!("`{name}` must be one of {}, got \"{text}\"", allowed.join(", ")))
                }
            }
        }
        FieldType::Datetime => {
            let Some(s) = raw.as_str() else {
                return err("type", format!("`{name}` must be a date-time string, got {}", kind_of(raw)));
            };
            match parse_datetime(s, spec.format.as_deref()) {
                Some(dt) => Ok(Some(Value::String(dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))),
                None => {
                    let expected = spec.format.as_deref().unwrap_or("RFC 3339, e.g. 2026-11-22T10:00:00Z");
                    err("datetime", format!("`{name}` must be a date-time in the format {expected}, got \"{s}\""))
                }
            }
        }
    }
}

/// Parses a partner date-time: with `format` as UTC wall-clock time, else RFC 3339.
pub fn parse_datetime(s: &str, format: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    match format {
        Some(f) => chrono::NaiveDateTime::parse_from_str(s, f).ok().map(|n| n.and_utc()),
        None => chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&chrono::Utc)),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract(id: &str) -> std::sync::Arc<crate::contract::Contract> {
        let registry =
            crate::contract::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")).unwrap();
        registry.get(id).cloned().unwrap()
    }

    #[test]
    fn nested_payloads_map_to_canonical_fields_with_rules() {
        let enovia = contract("enovia");
        let payload =
            json!({"data": {"name": "ISS-0000001", "title": "PLC down", "Priority": "urgent", "category": "Hardware"}});
        let m = enovia.map_inbound(&payload, Op::Create).unwrap();
        assert_eq!(m.partner_ticket_id.as_deref(), Some("ISS-0000001"));
        assert_eq!(m.changes.get("short_description"), Some(&json!("PLC down")));
        // The rule derives urgency 1 from urgent × Hardware.
        assert_eq!(m.changes.get("urgency"), Some(&json!(1)));
    }

    #[test]
    fn every_problem_is_reported_by_the_partner_name() {
        let enovia = contract("enovia");
        let payload = json!({"data": {"name": "X", "title": 5, "Priority": "asap"}});
        let Err(MapError::Invalid(errors)) = enovia.map_inbound(&payload, Op::Create) else { panic!("refused") };
        let mut fields: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        fields.sort();
        assert_eq!(fields, [("/data/Priority", "enum"), ("/data/name", "pattern"), ("/data/title", "type")]);
        let Err(MapError::Invalid(errors)) = enovia.map_inbound(&json!([1]), Op::Create) else { panic!("refused") };
        assert_eq!(errors[0].code, "type");
    }

    #[test]
    fn fields_the_partner_may_not_write_are_forbidden() {
        let acme = contract("acme-msp");
        let Err(e) = acme.map_inbound(&json!({"summary": "rename"}), Op::Update) else { panic!("refused") };
        assert!(matches!(e, MapError::Forbidden(_) | MapError::Invalid(_)), "{e:?}");
        let ok = acme.map_inbound(&json!({"status": "Work In Progress"}), Op::Update).unwrap();
        assert_eq!(ok.changes.get("state"), Some(&json!("in_progress")));
    }
}
