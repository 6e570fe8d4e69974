//! Raw files → compiled contracts, collecting every error with its file, line and column: the
//! folder walk and the helpers every section shares here, one file per section beside it.

use super::pointer::Pointer;
use super::raw::{self, RawContract, RawField, RawWorkflow};
use super::workflow::{StateDef, Workflow, DEFAULT_PRIORITY_MATRIX};
use super::*;
use crate::domain::events::StateCategory;
use crate::domain::fields::{self, CanonicalType};
use std::ops::Range;
use toml::Spanned;

mod access;
mod field;
mod outbound;
mod partner;
mod pull;
mod rules;
mod workflow;

use access::compile_access;
use field::compile_field;
use outbound::compile_outbound;
use partner::compile_contract;
use pull::compile_pull;
use rules::compile_rule;
pub(super) use workflow::compile_workflow;

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
    let mut digest: Vec<(PathBuf, String)> = Vec::new();
    let workflow = match read(&workflow_path).and_then(|text| {
        digest.push((workflow_path.clone(), crate::util::sha256_hex(text.as_bytes())));
        compile_workflow(&workflow_path, &text)
    }) {
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
        digest.push((file.clone(), crate::util::sha256_hex(text.as_bytes())));
        match compile_contract(file, &text, &workflow) {
            Ok((mut contract, id_span)) => {
                contract.file_sha256 = crate::util::sha256_hex(text.as_bytes());
                if let Some(first) = seen.get(contract.id.as_str()) {
                    let mut loc = Locator::new(file, &text);
                    loc.error(
                        id_span,
                        format!("duplicate partner id `{}`: already used by {}", contract.id, first.display()),
                    );
                    errors.append(&mut loc.errors);
                } else {
                    seen.insert(contract.id.to_string(), file.clone());
                    partners.insert(contract.id.to_string(), Arc::new(contract));
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        // File names (not paths: the same folder mounted elsewhere is the same contracts) and
        // their digests, one line each.
        let lines: String = digest
            .iter()
            .map(|(f, d)| format!("{}\t{d}\n", f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
            .collect();
        Ok(Registry { workflow, partners, sha256: crate::util::sha256_hex(lines.as_bytes()) })
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

fn parse_arrow(s: &str) -> Option<(&str, &str)> {
    let (from, to) = s.split_once("->")?;
    let (from, to) = (from.trim(), to.trim());
    (!from.is_empty() && !to.is_empty()).then_some((from, to))
}

fn unknown_state(name: &str, states: &[StateDef]) -> String {
    let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
    format!("unknown state `{name}`; workflow states are: {}", names.join(", "))
}

/// `queue`, `accept` or `reject`.
fn parse_on_conflict(loc: &mut Locator, v: &toml::Spanned<String>) -> Option<OnConflict> {
    match v.get_ref().as_str() {
        "queue" => Some(OnConflict::Queue),
        "accept" => Some(OnConflict::Accept),
        "reject" => Some(OnConflict::Reject),
        other => {
            loc.at(v, format!("on_conflict must be `queue`, `accept` or `reject`, not `{other}`"));
            None
        }
    }
}

fn unknown_canonical(name: &str) -> String {
    format!("unknown canonical field `{name}`; known: {}", fields::all_target_names().join(", "))
}

pub(super) fn parse_target(name: &str) -> Option<Target> {
    if let Some(attr) = name.strip_prefix(fields::ATTRIBUTE_PREFIX) {
        let valid = !attr.is_empty() && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return valid.then(|| Target::Attribute(attr.to_string()));
    }
    Some(match name {
        fields::PARTNER_TICKET_ID => Target::PartnerTicketId,
        fields::WORK_NOTE => Target::WorkNote,
        fields::COMMENT => Target::Comment,
        fields::VERSION => Target::Version,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A contracts folder: the example workflow plus one partner file.
    fn folder(partner: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
        std::fs::copy(root.join("workflow.toml"), dir.path().join("workflow.toml")).unwrap();
        std::fs::write(dir.path().join("p.toml"), partner).unwrap();
        dir
    }

    /// The minimal contract the black-box contract tests use too.
    const MINIMAL: &str = include_str!("../../../tests/fixtures/minimal_contract.toml");

    /// What the compiled contract holds (the black-box tests check the refusals).
    #[test]
    fn a_minimal_contract_compiles_to_what_it_says() {
        let dir = folder(MINIMAL);
        let registry = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
        let c = registry.get("p1").expect("p1 loaded");
        assert!(c.access.create, "create is on unless the contract says `create = false`");
        assert!(c.may_write("short_description") && c.may_write("partner_ticket_id"));
        assert!(!c.may_write("description") && !c.may_read("partner_ticket_id") && c.may_read("short_description"));
        assert_eq!(c.fields.len(), 2);
        assert_eq!(c.fields[0].display, "id");
        assert_eq!(c.default_kind, "incident");
    }

    #[test]
    fn pull_sections_are_checked() {
        let bad = format!(
            "{MINIMAL}\n[outbound]\nread_url = \"https://x.example/t\"\n[pull]\nlist_url = \"ftp://x.example/list\"\nupdated_pointer = \"updated\"\npaging = \"pages\"\nbatch_size = 5000\nsince_format = \"yyyy\"\n"
        );
        let dir = folder(&bad);
        let errors = load_dir(dir.path()).expect_err("refused");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        for expected in [
            "read_url must contain `{partner_ticket_id}`",
            "URL must start with https:// or http://",
            "needs `since_param`",
            "must start with `/`",
            "unknown paging `pages`",
            "batch_size must be between 1 and 1000",
            "`yyyy` is not a time format",
        ] {
            assert!(messages.iter().any(|m| m.contains(expected)), "{expected}: {messages:#?}");
        }
        let good = format!(
            "{MINIMAL}\n[pull]\nlist_url = \"https://x.example/list\"\nsince_param = \"since\"\nsince_format = \"unix_ms\"\nupdated_pointer = \"/updated\"\npaging = \"link\"\n"
        );
        let dir = folder(&good);
        let registry = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
        let pull = registry.get("p1").unwrap().pull.as_ref().unwrap();
        assert_eq!((pull.paging.clone(), pull.batch_size, pull.overlap), (Paging::Link, 100, Duration::from_secs(60)));
        assert_eq!(pull.since_format.format(1_500), "1500");
        assert_eq!(pull.updated_format.read(&serde_json::json!(1_500)), Some(1_500));
    }

    #[test]
    fn durations_and_arrows() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_arrow("new -> in_progress"), Some(("new", "in_progress")));
        assert_eq!(parse_arrow("new in_progress"), None);
    }
}
