//! Raw files → compiled contracts, collecting every error with its file, line and column: the
//! folder walk and the helpers every section shares here, one file per section beside it.

use super::pointer::Pointer;
use super::raw::Spanned;
use super::raw::{self, RawContract, RawField, RawWorkflow};
use super::workflow::{StateDef, Workflow, DEFAULT_PRIORITY_MATRIX};
use super::*;
use crate::domain::events::StateCategory;
use crate::domain::fields::{self, CanonicalType};
use std::ops::Range;

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
    /// Edits [`Locator::parse`] made to the text it parsed (a misspelt key renamed): at this
    /// offset of the edited text, offsets after it are this much larger than in the file.
    shifts: Vec<(usize, isize)>,
}

impl<'a> Locator<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Locator { file, text, errors: Vec::new(), shifts: Vec::new() }
    }

    /// `offset` of the parsed (possibly edited) text in the file as written.
    fn original(&self, offset: usize) -> usize {
        let delta: isize = self.shifts.iter().filter(|(at, _)| *at < offset).map(|(_, d)| d).sum();
        offset.saturating_add_signed(-delta)
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let start = self.original(span.start).min(self.text.len());
        self.error_at(start, message)
    }

    fn error_at(&mut self, start: usize, message: impl Into<String>) {
        let before = &self.text[..self.text.floor_char_boundary(start)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        self.errors.push(ContractError { file: self.file.to_path_buf(), line, column, message: message.into() });
    }

    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.error(spanned.span(), message)
    }

    /// Parses the whole file into `T`; a syntax or shape error is reported with its location.
    ///
    /// An unknown key is reported and the file parsed again without it, so that every unknown
    /// key is listed, and the file's other errors after them too: a near miss of a key the
    /// table takes (`required_on_creat`) is checked as that key, so the misspelling does not
    /// also show up as the key missing; any other unknown key is blanked out (offsets kept),
    /// and a required key then missing is reported with a hint that it may be that one.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        let mut text = self.text.to_string();
        let mut removed = 0;
        // Each round takes one unknown key out; a file has far fewer.
        for _ in 0..256 {
            match toml::from_str::<T>(&text) {
                Ok(v) => return Some(v),
                Err(e) => {
                    let span = e.span().unwrap_or(0..0);
                    let message = e.message().trim().to_string();
                    if message.starts_with("unknown field") {
                        if let Some(found) = find_item(&text, &span) {
                            let start = self.original(found.key.start);
                            let near = if found.key.is_empty() {
                                None
                            } else {
                                suggestion(&message, &text[found.key.clone()], &found.siblings)
                            };
                            match near {
                                Some(right) => {
                                    let wrong = &text[found.key.clone()];
                                    self.error_at(
                                        start,
                                        format!(
                                            "unknown field `{wrong}`: did you mean `{right}`? (checked as `{right}`)"
                                        ),
                                    );
                                    let delta = right.len() as isize - found.key.len() as isize;
                                    text.replace_range(found.key.clone(), &right);
                                    self.shifts.push((found.key.start, delta));
                                }
                                None => {
                                    self.error_at(start, message);
                                    blank(&mut text, &found.extent);
                                    removed += 1;
                                }
                            }
                            continue;
                        }
                    }
                    if removed > 0 && message.starts_with("missing field") {
                        // Most likely the unknown key above, misspelt past recognition.
                        self.error(span, format!("{message} (if an unknown key above is this one misspelt, fix that)"));
                    } else {
                        self.error(span, message);
                    }
                    return None;
                }
            }
        }
        None
    }
}

/// The key that serde names in "unknown field `x`, expected one of `a`, `b`" when it is a near
/// miss of one of those (at most two edits, or one in a short key) the table does not hold yet.
fn suggestion(message: &str, key: &str, siblings: &[String]) -> Option<String> {
    let expected = message.split_once("expected")?.1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !siblings.iter().any(|s| s == k))
        .map(|k| (strsim::damerau_levenshtein(key, k), k))
        .filter(|(d, k)| *d <= if k.len() > 5 { 2 } else { 1 })
        .min()
        .map(|(_, k)| k.to_string())
}

/// An unknown key as the file holds it: the key's own range, everything the item covers, and
/// the other keys of its table.
struct FoundItem {
    key: Range<usize>,
    extent: Vec<Range<usize>>,
    siblings: Vec<String>,
}

/// The item whose key serde's error points at (`error`: the key's range, or the header's).
fn find_item(text: &str, error: &Range<usize>) -> Option<FoundItem> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    find_in_table(doc.as_table(), error)
}

fn find_in_table(table: &toml_edit::Table, error: &Range<usize>) -> Option<FoundItem> {
    for (name, item) in table.iter() {
        let k = table.key(name)?;
        if let Some(key) = k.span().filter(|s| same_key(s, error)) {
            let mut extent = Vec::new();
            extent_of(item, &mut extent);
            let end = extent.iter().map(|r| r.end).max().unwrap_or(key.end).max(key.end);
            extent.push(key.start..end);
            // A dotted or quoted key's text is not the bare name: only a bare key is renamed.
            let key = if text_of(table, name) == name { key } else { key.start..key.start };
            let siblings = table.iter().map(|(n, _)| n.to_string()).collect();
            return Some(FoundItem { key, extent, siblings });
        }
        if let Some(found) = find_in_item(item, error) {
            return Some(found);
        }
    }
    None
}

fn text_of(table: &toml_edit::Table, name: &str) -> String {
    table.key(name).map(|k| k.display_repr().to_string()).unwrap_or_default()
}

fn find_in_item(item: &toml_edit::Item, error: &Range<usize>) -> Option<FoundItem> {
    match item {
        toml_edit::Item::Table(t) => find_in_table(t, error),
        toml_edit::Item::ArrayOfTables(a) => a.iter().find_map(|t| find_in_table(t, error)),
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
            for (name, v) in t.iter() {
                let k = t.key(name)?;
                if let Some(key) = k.span().filter(|s| same_key(s, error)) {
                    let end = v.span().map_or(key.end, |s| s.end);
                    let siblings = t.iter().map(|(n, _)| n.to_string()).collect();
                    let extent = std::iter::once(key.start..end).collect();
                    return Some(FoundItem { key: key.clone(), extent, siblings });
                }
            }
            None
        }
        _ => None,
    }
}

/// The error's span is the key's, or (a table header) the brackets around it.
fn same_key(key: &Range<usize>, error: &Range<usize>) -> bool {
    key == error || (error.start <= key.start && key.end <= error.end && error.len() <= key.len() + 4)
}

/// Every range an item covers (a table: its header and each of its items).
fn extent_of(item: &toml_edit::Item, out: &mut Vec<Range<usize>>) {
    match item {
        toml_edit::Item::Value(v) => out.extend(v.span()),
        toml_edit::Item::Table(t) => {
            out.extend(t.span());
            for (name, child) in t.iter() {
                if let Some(ks) = t.key(name).and_then(|k| k.span()) {
                    out.push(ks);
                }
                extent_of(child, out);
            }
        }
        toml_edit::Item::ArrayOfTables(a) => {
            for t in a.iter() {
                extent_of(&toml_edit::Item::Table(t.clone()), out);
            }
        }
        toml_edit::Item::None => {}
    }
}

/// Replaces the ranges with spaces (line breaks kept), so every other offset stays valid.
fn blank(text: &mut String, ranges: &[Range<usize>]) {
    let mut bytes = std::mem::take(text).into_bytes();
    let len = bytes.len();
    for r in ranges {
        for b in bytes.iter_mut().take(r.end.min(len)).skip(r.start) {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Only whole items were blanked, each starting and ending on a character boundary; a
    // replaced multi-byte character becomes spaces.
    *text = String::from_utf8_lossy(&bytes).into_owned();
}

pub(super) fn load_dir(dir: &Path) -> Result<Registry, Vec<ContractError>> {
    load(dir, None)
}

/// `<partner>.shadow.toml`: the next version of a live partner's contract, evaluated beside it.
pub(super) fn is_shadow(file: &Path) -> bool {
    file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".shadow.toml"))
}

/// One contract file, checked against the `workflow.toml` beside it.
pub(super) fn load_file(file: &Path) -> Result<Registry, Vec<ContractError>> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    load(dir, Some(file))
}

/// The folder's workflow and its partner files (or only `only`).
fn load(dir: &Path, only: Option<&Path>) -> Result<Registry, Vec<ContractError>> {
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
    let mut shadow_files: Vec<(PathBuf, String, Range<usize>, Contract)> = Vec::new();
    // (id, major) → the file that holds it: two major versions of one partner may be live.
    let mut seen: BTreeMap<(String, u64), PathBuf> = BTreeMap::new();
    let mut versions: BTreeMap<String, BTreeMap<u64, Arc<Contract>>> = BTreeMap::new();
    let mut defaults: BTreeMap<String, Vec<(PathBuf, String, Range<usize>)>> = BTreeMap::new();
    if let Some(only) = only {
        if only.file_name() == workflow_path.file_name() {
            // The workflow alone: it loaded.
            files.retain(|f| *f == workflow_path);
        } else {
            files = vec![workflow_path.clone(), dir.join(only.file_name().unwrap_or_default())];
        }
    }
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
                if is_shadow(file) {
                    // Checked against the live contracts once all are read.
                    shadow_files.push((file.clone(), text.clone(), id_span, contract));
                } else if let Some(first) = seen.get(&(contract.id.to_string(), contract.major)) {
                    let mut loc = Locator::new(file, &text);
                    loc.error(
                        id_span,
                        format!(
                            "duplicate partner id `{}`: {} holds contract version {}.x of it already (two files of one partner must differ in their major version)",
                            contract.id,
                            first.display(),
                            contract.major
                        ),
                    );
                    errors.append(&mut loc.errors);
                } else {
                    seen.insert((contract.id.to_string(), contract.major), file.clone());
                    if contract.marked_default {
                        defaults.entry(contract.id.to_string()).or_default().push((
                            file.clone(),
                            text.clone(),
                            id_span,
                        ));
                    }
                    versions.entry(contract.id.to_string()).or_default().insert(contract.major, Arc::new(contract));
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    // The default of each partner: the one marked `default = true`, else the lowest major.
    for (id, marked) in &defaults {
        if marked.len() > 1 {
            for (file, text, span) in marked {
                let mut loc = Locator::new(file, text);
                loc.error(span.clone(), format!("more than one version of `{id}` says `default = true`: keep one"));
                errors.append(&mut loc.errors);
            }
        }
    }
    for (id, by_major) in &versions {
        let default = by_major.values().find(|c| c.marked_default).or_else(|| by_major.values().next());
        if let Some(c) = default {
            partners.insert(id.clone(), c.clone());
        }
    }
    let mut shadows: BTreeMap<String, Arc<Contract>> = BTreeMap::new();
    for (file, text, id_span, contract) in shadow_files {
        let mut loc = Locator::new(&file, &text);
        if !partners.contains_key(contract.id.as_str()) {
            loc.error(
                id_span,
                format!(
                    "a shadow contract for `{}`, but no live contract has that id: a shadow is the next version of a live partner's contract (name the file after the live one's id)",
                    contract.id
                ),
            );
        } else if shadows.contains_key(contract.id.as_str()) {
            loc.error(id_span, format!("a second shadow contract for `{}`: keep one", contract.id));
        } else {
            shadows.insert(contract.id.to_string(), Arc::new(contract));
        }
        errors.append(&mut loc.errors);
    }
    if errors.is_empty() {
        // File names (not paths: the same folder mounted elsewhere is the same contracts) and
        // their digests, one line each.
        let lines: String = digest
            .iter()
            .map(|(f, d)| format!("{}\t{d}\n", f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
            .collect();
        Ok(Registry { workflow, partners, shadows, versions, sha256: crate::util::sha256_hex(lines.as_bytes()) })
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
fn parse_on_conflict(loc: &mut Locator, v: &Spanned<String>) -> Option<OnConflict> {
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
        // A count too large for its unit is no duration (and never a panic).
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
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

    /// Misspelt keys and unknown tables are each listed, and the file's other errors after
    /// them too; the required key a misspelling hides is not reported on top.
    #[test]
    fn every_unknown_key_and_the_errors_after_them_are_listed() {
        let text = MINIMAL
            .replace("name = \"P1\"", "nmae = \"P1\"\nname = \"P1\"")
            .replace("type = \"string\"\nrequired_on_create = true", "type = \"string\"\nrequired_on_creat = true")
            .replace("read = [\"short_description\"]", "read = [\"short_description\", \"no_such_field\"]")
            + "\n[partner_typo]\nx = [\n  1,\n  2,\n]\n";
        let dir = folder(&text);
        let errors = load_dir(dir.path()).expect_err("refused");
        let messages: Vec<String> = errors.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect();
        let has = |s: &str| messages.iter().any(|m| m.contains(s));
        assert!(has("unknown field `nmae`"), "{messages:#?}");
        assert!(has("unknown field `required_on_creat`"), "{messages:#?}");
        assert!(has("unknown field `partner_typo`"), "{messages:#?}");
        assert!(has("no_such_field"), "the semantic error after them: {messages:#?}");
        assert!(has("unknown field `required_on_creat`") && has("did you mean `required_on_create`"), "{messages:#?}");
        assert_eq!(messages.len(), 4, "no follow-up of the misspelling: {messages:#?}");
        let nmae = errors.iter().find(|e| e.message.contains("nmae")).unwrap();
        assert_eq!((nmae.line, nmae.column), (4, 1), "{messages:#?}");

        // A misspelt required key: the misspelling, not also the missing key.
        let dir = folder(&MINIMAL.replace("contract_version", "contract_versoin"));
        let errors = load_dir(dir.path()).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].message.contains("unknown field `contract_versoin`"), "{errors:#?}");
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
