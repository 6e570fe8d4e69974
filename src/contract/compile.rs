//! Raw files → compiled contracts, collecting every error with its file, line and column.

use super::pointer::Pointer;
use super::raw::{self, RawContract, RawField, RawWorkflow};
use super::workflow::{StateDef, Workflow, DEFAULT_PRIORITY_MATRIX};
use super::*;
use crate::domain::events::StateCategory;
use crate::domain::fields::{self, CanonicalType};
use std::ops::Range;
use toml::Spanned;

/// Turns byte spans into `file:line:column` errors.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ContractError>,
}

impl<'a> Locator<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Locator { file, text, errors: Vec::new() }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        self.errors.push(ContractError { file: self.file.to_path_buf(), line, column, message: message.into() });
    }

    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.error(spanned.span(), message)
    }

    /// Parses the whole file into `T`; a syntax or shape error is reported with its location.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        match toml::from_str::<T>(self.text) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let message = e.message().trim().to_string();
                self.error(span, message);
                None
            }
        }
    }
}

pub(super) fn load_dir(dir: &Path) -> Result<Registry, Vec<ContractError>> {
    let mut errors = Vec::new();
    let dir_error = |message: String| ContractError { file: dir.to_path_buf(), line: 0, column: 0, message };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return Err(vec![dir_error(format!("cannot read contracts folder: {e}"))]),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let workflow_path = dir.join("workflow.toml");
    if !files.contains(&workflow_path) {
        return Err(vec![dir_error(
            "workflow.toml is missing: it defines the canonical states and transitions".into(),
        )]);
    }
    let workflow = match read(&workflow_path).and_then(|text| compile_workflow(&workflow_path, &text)) {
        Ok(w) => w,
        Err(mut e) => {
            // Partner contracts cannot be checked against a broken workflow.
            errors.append(&mut e);
            return Err(errors);
        }
    };
    let mut partners: BTreeMap<String, Arc<Contract>> = BTreeMap::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files.iter().filter(|f| **f != workflow_path) {
        let text = match read(file) {
            Ok(t) => t,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        match compile_contract(file, &text, &workflow) {
            Ok((contract, id_span)) => {
                if let Some(first) = seen.get(&contract.id) {
                    let mut loc = Locator::new(file, &text);
                    loc.error(
                        id_span,
                        format!("duplicate partner id `{}`: already used by {}", contract.id, first.display()),
                    );
                    errors.append(&mut loc.errors);
                } else {
                    seen.insert(contract.id.clone(), file.clone());
                    partners.insert(contract.id.clone(), Arc::new(contract));
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(Registry { workflow, partners })
    } else {
        Err(errors)
    }
}

fn read(path: &Path) -> Result<String, Vec<ContractError>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![ContractError { file: path.to_path_buf(), line: 0, column: 0, message: format!("cannot read: {e}") }]
    })
}

fn compile_priority(loc: &mut Locator, raw: &raw::RawPriority) -> Option<[[i64; 3]; 3]> {
    let m = raw.matrix.get_ref();
    let ok = m.len() == 3 && m.iter().all(|row| row.len() == 3 && row.iter().all(|p| (1..=5).contains(p)));
    if !ok {
        loc.at(&raw.matrix, "priority matrix must be 3 rows (impact 1–3) of 3 priorities (urgency 1–3), each 1–5");
        return None;
    }
    Some([[m[0][0], m[0][1], m[0][2]], [m[1][0], m[1][1], m[1][2]], [m[2][0], m[2][1], m[2][2]]])
}

pub(super) fn compile_workflow(path: &Path, text: &str) -> Result<Workflow, Vec<ContractError>> {
    let mut loc = Locator::new(path, text);
    let Some(raw): Option<RawWorkflow> = loc.parse() else {
        return Err(loc.errors);
    };
    let mut states = Vec::new();
    for (name, state) in &raw.states {
        let category = match state.category.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("open") => StateCategory::Open,
            Some("resolved") => StateCategory::Resolved,
            Some("closed") => StateCategory::Closed,
            Some(other) => {
                if let Some(c) = &state.category {
                    loc.at(c, format!("state `{name}`: unknown category `{other}`; use open, resolved or closed"));
                }
                StateCategory::Open
            }
        };
        let mut requires = Vec::new();
        for r in &state.requires {
            if fields::field(r.get_ref()).is_none() && !r.get_ref().starts_with(fields::ATTRIBUTE_PREFIX) {
                loc.at(r, unknown_canonical(r.get_ref()));
            } else {
                requires.push(r.get_ref().clone());
            }
        }
        states.push(StateDef {
            label: state.label.clone().unwrap_or_else(|| name.clone()),
            name: name.clone(),
            category,
            requires,
        });
    }
    if states.is_empty() {
        loc.at(&raw.initial, "the workflow declares no [states.<name>] tables");
    }
    let known = |s: &str| states.iter().any(|d| d.name == s);
    let mut initial = Vec::new();
    for s in raw.initial.get_ref() {
        if known(s.get_ref()) {
            initial.push(s.get_ref().clone());
        } else {
            loc.at(s, unknown_state(s.get_ref(), &states));
        }
    }
    if raw.initial.get_ref().is_empty() {
        loc.at(&raw.initial, "`initial` must name at least one state");
    }
    let mut transitions = BTreeSet::new();
    for t in &raw.transitions {
        match parse_arrow(t.get_ref()) {
            Some((from, to)) if from != "*" && to != "*" => {
                let mut ok = true;
                for s in [from, to] {
                    if !known(s) {
                        loc.at(t, format!("transition `{}`: {}", t.get_ref(), unknown_state(s, &states)));
                        ok = false;
                    }
                }
                if ok {
                    transitions.insert((from.to_string(), to.to_string()));
                }
            }
            _ => loc.at(t, format!("transition `{}` must read `from -> to` with two state names", t.get_ref())),
        }
    }
    let priority_matrix =
        raw.priority.as_ref().and_then(|p| compile_priority(&mut loc, p)).unwrap_or(DEFAULT_PRIORITY_MATRIX);
    if loc.errors.is_empty() {
        Ok(Workflow { initial, states, transitions, priority_matrix })
    } else {
        Err(loc.errors)
    }
}

fn parse_arrow(s: &str) -> Option<(&str, &str)> {
    let (from, to) = s.split_once("->")?;
    let (from, to) = (from.trim(), to.trim());
    (!from.is_empty() && !to.is_empty()).then_some((from, to))
}

fn unknown_state(name: &str, states: &[StateDef]) -> String {
    let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
    format!("unknown state `{name}`; workflow states are: {}", names.join(", "))
}

fn unknown_canonical(name: &str) -> String {
    format!("unknown canonical field `{name}`; known: {}", fields::all_target_names().join(", "))
}

fn parse_target(name: &str) -> Option<Target> {
    if let Some(attr) = name.strip_prefix(fields::ATTRIBUTE_PREFIX) {
        let valid = !attr.is_empty() && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return valid.then(|| Target::Attribute(attr.to_string()));
    }
    Some(match name {
        fields::PARTNER_TICKET_ID => Target::PartnerTicketId,
        fields::WORK_NOTE => Target::WorkNote,
        fields::COMMENT => Target::Comment,
        other => Target::Field(fields::field(other)?),
    })
}

/// toml value → canonical JSON value (strings, integers, booleans only).
fn toml_to_json(v: &toml::Value) -> Option<Value> {
    match v {
        toml::Value::String(s) => Some(Value::String(s.clone())),
        toml::Value::Integer(i) => Some(Value::from(*i)),
        toml::Value::Boolean(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}

/// Is `v` a valid canonical value for `target`? Returns a reason when not.
pub(super) fn check_canonical(target: &Target, v: &Value, workflow: &Workflow) -> Result<(), String> {
    let Target::Field(f) = target else {
        return match (target, v) {
            (Target::Attribute(_), _) => Ok(()),
            (_, Value::String(_)) => Ok(()),
            _ => Err(format!("`{}` takes text", target.name())),
        };
    };
    match (f.ty, v) {
        (CanonicalType::String { max_len }, Value::String(s)) if s.chars().count() <= max_len => Ok(()),
        (CanonicalType::String { max_len }, _) => {
            Err(format!("`{}` takes text of at most {max_len} characters", f.name))
        }
        (CanonicalType::Integer { min, max }, Value::Number(n))
            if n.as_i64().is_some_and(|i| (min..=max).contains(&i)) =>
        {
            Ok(())
        }
        (CanonicalType::Integer { min, max }, _) => Err(format!("`{}` takes an integer from {min} to {max}", f.name)),
        (CanonicalType::State, Value::String(s)) if workflow.state(s).is_some() => Ok(()),
        (CanonicalType::State, _) => {
            Err(format!("`state` takes a workflow state: {}", workflow.state_names().join(", ")))
        }
        (CanonicalType::Enum(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        (CanonicalType::Enum(allowed), _) => Err(format!("`{}` takes one of: {}", f.name, allowed.join(", "))),
        (CanonicalType::Datetime, Value::String(s)) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
        (CanonicalType::Datetime, _) => Err(format!("`{}` takes an RFC 3339 timestamp", f.name)),
    }
}

/// Keys that hold secrets: their values must be references, never the secret itself.
fn check_secret_ref(loc: &mut Locator, key: &str, value: &Spanned<String>) -> Option<SecretRef> {
    if let Some(r) = SecretRef::parse(value.get_ref()) {
        return Some(r);
    }
    loc.at(
        value,
        format!(
            "`{key}` looks like a secret given in clear; secrets never sit in a contract: \
             write `env:VARIABLE`, `file:/path/to/secret` or `db:NAME` instead"
        ),
    );
    None
}

fn compile_contract(
    path: &Path,
    text: &str,
    workflow: &Workflow,
) -> Result<(Contract, Range<usize>), Vec<ContractError>> {
    let mut loc = Locator::new(path, text);
    let Some(raw): Option<RawContract> = loc.parse() else {
        return Err(loc.errors);
    };
    let id = raw.partner.id.get_ref().clone();
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !id_ok {
        loc.at(&raw.partner.id, "partner id must be 1–64 characters of a-z, 0-9, `-` or `_`");
    }
    let default_kind = match &raw.partner.default_kind {
        Some(k) if fields::KINDS.contains(&k.get_ref().as_str()) => k.get_ref().clone(),
        Some(k) => {
            loc.at(k, format!("unknown ticket kind `{}`; use one of: {}", k.get_ref(), fields::KINDS.join(", ")));
            String::new()
        }
        None => "incident".to_string(),
    };
    let token_ttl_secs = raw.auth.token_lifetime_secs.as_ref().and_then(|t| {
        if (60..=86_400).contains(t.get_ref()) {
            Some(*t.get_ref())
        } else {
            loc.at(t, "token_lifetime_secs must be between 60 and 86400");
            None
        }
    });
    let mut auth_methods = Vec::new();
    for m in &raw.auth.methods {
        match m.get_ref().as_str() {
            "client_credentials" => auth_methods.push(m.get_ref().clone()),
            other => loc.at(m, format!("unknown auth method `{other}`; supported: client_credentials")),
        }
    }
    if auth_methods.is_empty() {
        auth_methods.push("client_credentials".into());
    }
    let mut source_networks = Vec::new();
    for n in &raw.auth.source_networks {
        let text = n.get_ref();
        let parsed = text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => source_networks.push(net),
            Err(_) => {
                loc.at(n, format!("`{text}` is not a network; write a CIDR such as 203.0.113.0/24 or an address"))
            }
        }
    }
    let mut client_cert_sha256 = Vec::new();
    for f in &raw.auth.client_cert_sha256 {
        let hex: String = f.get_ref().chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            client_cert_sha256.push(hex);
        } else {
            loc.at(f, "client_cert_sha256 entries are SHA-256 fingerprints: 64 hex digits, colons allowed");
        }
    }
    if raw.auth.require_client_cert && client_cert_sha256.is_empty() {
        loc.at(
            &raw.partner.id,
            "require_client_cert = true needs at least one client_cert_sha256 fingerprint in [auth]",
        );
    }
    let inbound_rate_per_minute = match &raw.auth.rate_limit_per_minute {
        Some(r) if (1..=1_000_000).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            loc.at(r, "rate_limit_per_minute must be between 1 and 1000000");
            600
        }
        None => 600,
    };
    let webhook_secret = raw.auth.webhook_secret.as_ref().and_then(|s| check_secret_ref(&mut loc, "webhook_secret", s));
    let unknown_fields = match raw.inbound.unknown_fields.as_ref().map(|u| u.get_ref().as_str()) {
        None | Some("reject") => UnknownFields::Reject,
        Some("ignore") => UnknownFields::Ignore,
        Some(other) => {
            if let Some(u) = &raw.inbound.unknown_fields {
                loc.at(u, format!("unknown_fields must be `reject` or `ignore`, not `{other}`"));
            }
            UnknownFields::Reject
        }
    };

    let fields: Vec<FieldSpec> = raw.fields.iter().filter_map(|f| compile_field(&mut loc, f, workflow)).collect();
    let mut pointers: BTreeMap<&str, ()> = BTreeMap::new();
    for (f, rf) in fields.iter().zip(raw.fields.iter()) {
        if pointers.insert(f.pointer.as_str(), ()).is_some() {
            loc.at(&rf.pointer, format!("pointer `{}` is declared twice", f.pointer.as_str()));
        }
    }

    let access = compile_access(&mut loc, &raw.access, workflow);
    for (f, rf) in fields.iter().zip(raw.fields.iter()) {
        let t = f.target.name();
        if !access.write.contains(&t) && !access.read.contains(&t) {
            loc.at(&rf.canonical, format!("field `{}` maps to `{t}`, which this partner may neither write nor read; add it to [access] or drop the field", f.display));
        }
    }
    for w in raw.access.write.iter().chain(raw.access.read.iter()) {
        let t = w.get_ref();
        // Compared with the raw fields, so a field refused above does not cascade into this.
        let mapped =
            raw.fields.iter().any(|f| f.canonical.get_ref() == t) || raw.rules.iter().any(|r| r.target.get_ref() == t);
        if parse_target(t).is_some() && !mapped {
            loc.at(w, format!("`{t}` is listed in [access] but no [[fields]] entry or rule maps it"));
        }
    }

    let mut rules = Vec::new();
    for r in &raw.rules {
        if let Some(rule) = compile_rule(&mut loc, r, &fields, &access, workflow) {
            rules.push(rule);
        }
    }
    let priority_matrix = raw.priority.as_ref().and_then(|p| compile_priority(&mut loc, p));
    let outbound = raw.outbound.as_ref().map(|o| compile_outbound(&mut loc, o, workflow));
    if access.create && !fields.iter().any(|f| f.target == Target::PartnerTicketId && f.required_on_create) {
        loc.at(
            &raw.partner.id,
            "a partner that may create tickets needs a field mapped to `partner_ticket_id` with required_on_create = true",
        );
    }

    if !loc.errors.is_empty() {
        return Err(loc.errors);
    }
    let contract = Contract {
        id,
        name: raw.partner.name,
        version: raw.partner.contract_version,
        description: raw.partner.description,
        file: path.to_path_buf(),
        default_kind,
        token_ttl_secs,
        auth_methods,
        source_networks,
        client_cert_sha256,
        require_client_cert: raw.auth.require_client_cert,
        inbound_rate_per_minute,
        webhook_secret,
        unknown_fields,
        fields,
        rules,
        priority_matrix,
        access,
        outbound,
    };
    Ok((contract, raw.partner.id.span()))
}

fn compile_field(loc: &mut Locator, f: &RawField, workflow: &Workflow) -> Option<FieldSpec> {
    let errors_before = loc.errors.len();
    let pointer = match Pointer::parse(f.pointer.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            loc.at(&f.pointer, e);
            None
        }
    };
    let target = parse_target(f.canonical.get_ref());
    if target.is_none() {
        loc.at(&f.canonical, unknown_canonical(f.canonical.get_ref()));
    }
    let ty = match f.ty.get_ref().as_str() {
        "string" => Some(FieldType::String),
        "text" => Some(FieldType::Text),
        "integer" => Some(FieldType::Integer),
        "enum" => Some(FieldType::Enum),
        "datetime" => Some(FieldType::Datetime),
        "boolean" => Some(FieldType::Boolean),
        other => {
            loc.at(&f.ty, format!("unknown type `{other}`; use string, text, integer, enum, datetime or boolean"));
            None
        }
    };
    let (Some(pointer), Some(target), Some(ty)) = (pointer, target, ty) else {
        return None;
    };

    // Which partner types can feed which canonical field.
    let compatible = match (&target, ty) {
        (Target::Attribute(_), _) => true,
        (Target::PartnerTicketId, FieldType::String) => true,
        (Target::WorkNote | Target::Comment, FieldType::String | FieldType::Text) => true,
        (Target::Field(cf), t) => matches!(
            (cf.ty, t),
            (CanonicalType::String { .. }, FieldType::String | FieldType::Text | FieldType::Enum)
                | (CanonicalType::Integer { .. }, FieldType::Integer | FieldType::Enum)
                | (CanonicalType::State | CanonicalType::Enum(_), FieldType::Enum)
                | (CanonicalType::Datetime, FieldType::Datetime)
        ),
        _ => false,
    };
    if !compatible {
        loc.at(&f.ty, format!("type `{}` cannot carry canonical `{}`", ty.as_str(), target.name()));
    }

    let mut values = Vec::new();
    match (&f.values, ty) {
        (Some(map), FieldType::Enum) => {
            if map.get_ref().is_empty() {
                loc.at(map, "an enum field needs at least one value in `values`");
            }
            for (partner_value, canonical) in map.get_ref() {
                match toml_to_json(canonical) {
                    Some(cv) => match check_canonical(&target, &cv, workflow) {
                        Ok(()) => values.push((partner_value.clone(), cv)),
                        Err(why) => loc.at(map, format!("bad value map: `{partner_value}` → {canonical}: {why}")),
                    },
                    None => loc
                        .at(map, format!("bad value map: `{partner_value}` must map to a string, integer or boolean")),
                }
            }
        }
        (None, FieldType::Enum) => {
            loc.at(&f.ty, "an enum field needs a `values` table (partner value = canonical value)")
        }
        (Some(map), _) => loc.at(map, "`values` only applies to fields of type `enum`"),
        (None, _) => {}
    }

    // Reverse map: explicit outbound_values first, else the single partner value of each
    // canonical value; several partner values for one canonical value must be disambiguated.
    let mut outbound_values: Vec<(Value, String)> = Vec::new();
    if let Some(ov) = &f.outbound_values {
        for (canonical, partner) in ov.get_ref() {
            let partner = partner.as_str().map(str::to_string).unwrap_or_else(|| partner.to_string());
            if !values.iter().any(|(p, _)| *p == partner) {
                loc.at(ov, format!("outbound_values: `{partner}` is not one of this field's values"));
                continue;
            }
            let cv = values.iter().find(|(p, _)| *p == partner).map(|(_, c)| c.clone()).unwrap_or_default();
            let canonical_matches = match &cv {
                Value::String(s) => s == canonical,
                other => {
                    other.as_i64().is_some_and(|n| canonical.parse::<i64>() == Ok(n))
                        || other.as_bool().is_some_and(|b| canonical.parse::<bool>() == Ok(b))
                }
            };
            if !canonical_matches {
                loc.at(ov, format!("outbound_values: `{partner}` maps to {cv}, not `{canonical}`"));
                continue;
            }
            outbound_values.push((cv, partner));
        }
    }
    for (partner_value, cv) in &values {
        if outbound_values.iter().any(|(c, _)| c == cv) {
            continue;
        }
        let all: Vec<&str> = values.iter().filter(|(_, c)| c == cv).map(|(p, _)| p.as_str()).collect();
        if all.len() > 1 {
            if all[0] == partner_value {
                let span = f.values.as_ref().map(|v| v.span()).unwrap_or_else(|| f.ty.span());
                loc.error(
                    span,
                    format!(
                        "bad value map: {} all map to {cv}; say which one ebond sends with outbound_values = {{ {} = \"{}\" }}",
                        all.join(", "),
                        cv.as_str().map(str::to_string).unwrap_or_else(|| cv.to_string()),
                        all[0]
                    ),
                );
            }
        } else {
            outbound_values.push((cv.clone(), partner_value.clone()));
        }
    }

    let (mut min_length, mut max_length, mut min, mut max) = (None, None, None, None);
    let usize_of = |loc: &mut Locator, v: &Option<Spanned<i64>>, name: &str| -> Option<usize> {
        let s = v.as_ref()?;
        match usize::try_from(*s.get_ref()) {
            Ok(u) => Some(u),
            Err(_) => {
                loc.at(s, format!("{name} must not be negative"));
                None
            }
        }
    };
    if matches!(ty, FieldType::String | FieldType::Text) {
        min_length = usize_of(loc, &f.min_length, "min_length");
        max_length = usize_of(loc, &f.max_length, "max_length");
    } else if let Some(s) = f.max_length.as_ref().or(f.min_length.as_ref()) {
        loc.at(s, "min_length / max_length only apply to string and text fields");
    }
    if ty == FieldType::Integer {
        min = f.min.as_ref().map(|m| *m.get_ref());
        max = f.max.as_ref().map(|m| *m.get_ref());
    } else if let Some(s) = f.min.as_ref().or(f.max.as_ref()) {
        loc.at(s, "min / max only apply to integer fields");
    }
    // Narrow to the canonical field's own limits, so the documented limits are the enforced ones.
    if let Target::Field(cf) = &target {
        match cf.ty {
            CanonicalType::String { max_len } if matches!(ty, FieldType::String | FieldType::Text) => {
                max_length = Some(max_length.map_or(max_len, |m| m.min(max_len)));
            }
            CanonicalType::Integer { min: cmin, max: cmax } if ty == FieldType::Integer => {
                min = Some(min.map_or(cmin, |m| m.max(cmin)));
                max = Some(max.map_or(cmax, |m| m.min(cmax)));
            }
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (min_length, max_length) {
        if a > b {
            loc.at(&f.pointer, format!("min_length {a} is larger than max_length {b}"));
        }
    }
    let pattern = f.pattern.as_ref().and_then(|p| match regex::Regex::new(p.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            loc.at(p, format!("pattern is not a valid regular expression: {e}"));
            None
        }
    });
    if let Some(fmt) = &f.format {
        if ty != FieldType::Datetime {
            loc.at(fmt, "`format` only applies to datetime fields");
        } else if chrono::format::StrftimeItems::new(fmt.get_ref()).any(|i| matches!(i, chrono::format::Item::Error)) {
            loc.at(fmt, "`format` is not a valid chrono strftime format");
        }
    }
    if f.required_on_create && matches!(target, Target::WorkNote | Target::Comment) {
        loc.at(&f.canonical, "journal entries cannot be required_on_create");
    }
    if loc.errors.len() > errors_before {
        return None;
    }
    Some(FieldSpec {
        display: pointer.display(),
        pointer,
        target,
        ty,
        description: f.description.clone(),
        min_length,
        max_length,
        min,
        max,
        pattern,
        format: f.format.as_ref().map(|f| f.get_ref().clone()),
        required_on_create: f.required_on_create,
        values,
        outbound_values,
    })
}

fn compile_access(loc: &mut Locator, a: &raw::RawAccess, workflow: &Workflow) -> Access {
    let mut names = |list: &Vec<Spanned<String>>| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in list {
            if parse_target(n.get_ref()).is_some() {
                out.insert(n.get_ref().clone());
            } else {
                loc.at(n, unknown_canonical(n.get_ref()));
            }
        }
        out
    };
    let write = names(&a.write);
    let read = names(&a.read);
    let mut transitions = Vec::new();
    for t in &a.transitions {
        let Some((from, to)) = parse_arrow(t.get_ref()) else {
            loc.at(t, format!("transition `{}` must read `from -> to` (`*` for any state)", t.get_ref()));
            continue;
        };
        let mut ok = true;
        for s in [from, to] {
            if s != "*" && workflow.state(s).is_none() {
                loc.at(t, format!("transition `{}`: {}", t.get_ref(), unknown_state(s, &workflow.states)));
                ok = false;
            }
        }
        if ok && from != "*" && to != "*" && workflow.check_transition(from, to).is_err() {
            loc.at(t, format!("transition `{}` is not in workflow.toml, so it could never be performed", t.get_ref()));
            ok = false;
        }
        if ok {
            let wild = |s: &str| (s != "*").then(|| s.to_string());
            transitions.push((wild(from), wild(to)));
        }
    }
    if !transitions.is_empty() && !write.contains("state") {
        if let Some(t) = a.transitions.first() {
            loc.at(t, "transitions are listed but `state` is not in [access] write");
        }
    }
    Access { create: a.create, write, read, transitions }
}

fn compile_rule(
    loc: &mut Locator,
    r: &raw::RawRule,
    fields: &[FieldSpec],
    access: &Access,
    workflow: &Workflow,
) -> Option<Rule> {
    let Some(target) = parse_target(r.target.get_ref()) else {
        loc.at(&r.target, unknown_canonical(r.target.get_ref()));
        return None;
    };
    if !access.write.contains(&target.name()) {
        loc.at(&r.target, format!("rule target `{}` must be in [access] write", target.name()));
    }
    let value = match toml_to_json(r.value.get_ref()) {
        Some(v) => match check_canonical(&target, &v, workflow) {
            Ok(()) => v,
            Err(why) => {
                loc.at(&r.value, format!("rule value: {why}"));
                return None;
            }
        },
        None => {
            loc.at(&r.value, "rule value must be a string, integer or boolean");
            return None;
        }
    };
    let mut when = Vec::new();
    if let Some(w) = &r.when {
        for (ptr, accepted) in w.get_ref() {
            let pointer = match Pointer::parse(ptr) {
                Ok(p) => p,
                Err(e) => {
                    loc.at(w, e);
                    continue;
                }
            };
            if !fields.iter().any(|f| f.pointer == pointer) {
                loc.at(w, format!("rule condition on `{ptr}`, which no [[fields]] entry declares"));
            }
            let list = match accepted {
                toml::Value::Array(a) => a.iter().filter_map(|v| toml_to_json(v).map(|j| plain(&j))).collect(),
                other => toml_to_json(other).map(|j| vec![plain(&j)]).unwrap_or_default(),
            };
            when.push((pointer, list));
        }
    }
    Some(Rule { target, value, when })
}

/// A JSON scalar as the text a partner sends (strings without quotes).
pub(super) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `500ms`, `30s`, `5m`, `1h`, `2d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

fn compile_outbound(loc: &mut Locator, o: &raw::RawOutbound, workflow: &Workflow) -> Outbound {
    let url = |loc: &mut Locator, u: &Option<Spanned<String>>| -> Option<String> {
        let u = u.as_ref()?;
        let v = u.get_ref();
        if !(v.starts_with("https://") || v.starts_with("http://")) {
            loc.at(u, "URL must start with https:// or http://");
        }
        Some(v.clone())
    };
    let create_url = url(loc, &o.create_url);
    let update_url = url(loc, &o.update_url);
    if let Some(u) = &o.update_url {
        if !u.get_ref().contains("{partner_ticket_id}") {
            loc.at(u, "update_url must contain `{partner_ticket_id}` where the partner's ticket id goes");
        }
    }
    let method = |loc: &mut Locator, m: &Option<Spanned<String>>, default: &str| -> String {
        match m {
            Some(m) if ["POST", "PUT", "PATCH"].contains(&m.get_ref().as_str()) => m.get_ref().clone(),
            Some(m) => {
                loc.at(m, "method must be POST, PUT or PATCH");
                default.into()
            }
            None => default.into(),
        }
    };
    let create_method = method(loc, &o.create_method, "POST");
    let update_method = method(loc, &o.update_method, "PATCH");
    let id_pointer = o.id_pointer.as_ref().and_then(|p| match Pointer::parse(p.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            loc.at(p, e);
            None
        }
    });
    let auth = match &o.auth {
        None => OutboundAuth::None,
        Some(a) => {
            let need = |loc: &mut Locator, v: &Option<Spanned<String>>, key: &str| -> Option<Spanned<String>> {
                if v.is_none() {
                    loc.at(&a.ty, format!("auth type `{}` needs `{key}`", a.ty.get_ref()));
                }
                v.clone()
            };
            match a.ty.get_ref().as_str() {
                "none" => OutboundAuth::None,
                "oauth2_client_credentials" => {
                    let token_url = need(loc, &a.token_url, "token_url");
                    let client_id = need(loc, &a.client_id, "client_id");
                    let secret = need(loc, &a.client_secret, "client_secret")
                        .and_then(|s| check_secret_ref(loc, "client_secret", &s));
                    match (token_url, client_id, secret) {
                        (Some(t), Some(c), Some(s)) => OutboundAuth::OAuth2ClientCredentials {
                            token_url: t.into_inner(),
                            client_id: c.into_inner(),
                            client_secret: s,
                            scope: a.scope.clone(),
                        },
                        _ => OutboundAuth::None,
                    }
                }
                "basic" => {
                    let user = need(loc, &a.username, "username");
                    let pw = need(loc, &a.password, "password").and_then(|s| check_secret_ref(loc, "password", &s));
                    match (user, pw) {
                        (Some(u), Some(p)) => OutboundAuth::Basic { username: u.into_inner(), password: p },
                        _ => OutboundAuth::None,
                    }
                }
                "api_key" => {
                    let header = need(loc, &a.header, "header");
                    let key = need(loc, &a.key, "key").and_then(|s| check_secret_ref(loc, "key", &s));
                    match (header, key) {
                        (Some(h), Some(k)) => OutboundAuth::ApiKey { header: h.into_inner(), key: k },
                        _ => OutboundAuth::None,
                    }
                }
                other => {
                    loc.at(
                        &a.ty,
                        format!("unknown auth type `{other}`; use oauth2_client_credentials, basic, api_key or none"),
                    );
                    OutboundAuth::None
                }
            }
        }
    };
    let signing_secret = o.signing_secret.as_ref().and_then(|s| check_secret_ref(loc, "signing_secret", s));
    let mut headers = Vec::new();
    if let Some(h) = &o.headers {
        for (k, v) in h.get_ref() {
            let lower = k.to_ascii_lowercase();
            if ["authorization", "x-api-key", "cookie"].contains(&lower.as_str())
                || lower.contains("secret")
                || lower.contains("token")
            {
                loc.at(
                    h,
                    format!("header `{k}` would carry a secret in clear; use [outbound.auth] with a secret reference"),
                );
            }
            match v.as_str() {
                Some(s) => headers.push((k.clone(), s.to_string())),
                None => loc.at(h, format!("header `{k}` must be a string")),
            }
        }
    }
    let retry_schedule = match &o.retry_schedule {
        None => {
            vec![Duration::from_secs(60), Duration::from_secs(300), Duration::from_secs(900), Duration::from_secs(3600)]
        }
        Some(list) => list
            .iter()
            .filter_map(|s| {
                let d = parse_duration(s.get_ref());
                if d.is_none() {
                    loc.at(s, format!("`{}` is not a duration; write e.g. 500ms, 30s, 5m, 1h", s.get_ref()));
                }
                d
            })
            .collect(),
    };
    let rate_limit_per_minute = match &o.rate_limit_per_minute {
        Some(r) if (1..=1_000_000).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            loc.at(r, "rate_limit_per_minute must be between 1 and 1000000");
            60
        }
        None => 60,
    };
    let alert_threshold = match &o.alert_threshold {
        Some(t) if (0.0..=1.0).contains(t.get_ref()) => *t.get_ref(),
        Some(t) => {
            loc.at(t, "alert_threshold is a failure rate between 0 and 1 (0.05 = 5 %)");
            0.05
        }
        None => 0.05,
    };
    let alert_window = match &o.alert_window {
        Some(w) => parse_duration(w.get_ref()).unwrap_or_else(|| {
            loc.at(w, "alert_window is not a duration; write e.g. 15m");
            Duration::from_secs(900)
        }),
        None => Duration::from_secs(900),
    };
    let mut subscriptions = Vec::new();
    for s in &o.subscriptions {
        let mut events = BTreeSet::new();
        for e in &s.events {
            if e.get_ref() == "*" {
                events.extend(crate::domain::events::Event::ALL);
            } else if let Some(ev) = crate::domain::events::Event::parse(e.get_ref()) {
                events.insert(ev);
            } else {
                let names: Vec<&str> = crate::domain::events::Event::ALL.iter().map(|e| e.as_str()).collect();
                loc.at(e, format!("unknown event `{}`; events are: {}, or `*`", e.get_ref(), names.join(", ")));
            }
        }
        let mut filter = Vec::new();
        if let Some(f) = &s.filter {
            for (field, accepted) in f.get_ref() {
                let Some(target) = parse_target(field).filter(|t| matches!(t, Target::Field(_) | Target::Attribute(_)))
                else {
                    loc.at(f, format!("filter: {}", unknown_canonical(field)));
                    continue;
                };
                let list: Vec<Value> = match accepted {
                    toml::Value::Array(a) => a.iter().filter_map(toml_to_json).collect(),
                    other => toml_to_json(other).into_iter().collect(),
                };
                for v in &list {
                    if let Err(why) = check_canonical(&target, v, workflow) {
                        loc.at(f, format!("filter on `{field}`: {why}"));
                    }
                }
                filter.push((field.clone(), list));
            }
        }
        subscriptions.push(Subscription { events, only_bonded: s.only_bonded, filter });
    }
    Outbound {
        create_url,
        update_url,
        create_method,
        update_method,
        id_pointer,
        auth,
        signing_secret,
        headers,
        retry_schedule,
        rate_limit_per_minute,
        alert_threshold,
        alert_window,
        subscriptions,
    }
}
