//! Data contracts: one TOML file per partner plus `workflow.toml`, compiled once at load.
//!
//! [`load_dir`] reads and checks every file and returns a [`Registry`] or every error found,
//! each with file, line and column. The compiled forms are used by [`inbound`] (validate and
//! map a partner payload to a canonical command) and [`render`] (canonical → partner view).

pub mod check;
mod compile;
pub mod document;
pub use compile::parse_duration;
pub mod inbound;
pub mod live;
pub mod pointer;
mod raw;
pub mod render;
pub mod workflow;

use crate::domain::events::Event;
use crate::domain::fields::CanonicalField;
use pointer::Pointer;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use workflow::Workflow;

/// A refused contract: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
}

/// Every loaded contract and the workflow they share.
#[derive(Debug)]
pub struct Registry {
    pub workflow: Workflow,
    partners: BTreeMap<String, Arc<Contract>>,
    /// Shadow contracts (`<partner>.shadow.toml`): the next version of a live partner's,
    /// evaluated on its live traffic but not enforced.
    shadows: BTreeMap<String, Arc<Contract>>,
    /// Every live major version of each partner's contract (most have one; `partners` holds
    /// the default of each).
    versions: BTreeMap<String, BTreeMap<u64, Arc<Contract>>>,
    /// SHA-256 over every file loaded (names and contents): two processes with the same
    /// digest enforce the same contracts.
    pub sha256: String,
}

impl Registry {
    pub fn get(&self, partner: &str) -> Option<&Arc<Contract>> {
        self.partners.get(partner)
    }

    pub fn partners(&self) -> impl Iterator<Item = &Arc<Contract>> {
        self.partners.values()
    }

    /// `partner`'s contract of major version `major`, when that version is live.
    pub fn version(&self, partner: &str, major: u64) -> Option<&Arc<Contract>> {
        self.versions.get(partner).and_then(|v| v.get(&major))
    }

    /// Every live version of `partner`'s contract, lowest major first.
    pub fn versions(&self, partner: &str) -> impl Iterator<Item = &Arc<Contract>> {
        self.versions.get(partner).into_iter().flat_map(|v| v.values())
    }

    /// Every live contract, each version of each partner.
    pub fn all_versions(&self) -> impl Iterator<Item = &Arc<Contract>> {
        self.versions.values().flat_map(|v| v.values())
    }

    /// Every shadow contract loaded.
    pub fn shadows(&self) -> impl Iterator<Item = &Arc<Contract>> {
        self.shadows.values()
    }

    /// The shadow contract of `partner`, when one is loaded.
    pub fn shadow(&self, partner: &str) -> Option<&Arc<Contract>> {
        self.shadows.get(partner)
    }
}

/// Is `value` a valid canonical value of `field` (`null` clears it)? The reason when not: what
/// an operator's custom value at conflict resolution is checked with.
pub fn check_value(workflow: &Workflow, field: &str, value: &Value) -> Result<(), String> {
    let target = compile::parse_target(field).ok_or_else(|| format!("`{field}` is not a canonical field"))?;
    if value.is_null() {
        return match field {
            "state" | "kind" => Err(format!("`{field}` cannot be cleared")),
            _ => Ok(()),
        };
    }
    compile::check_canonical(&target, value, workflow)
}

/// Loads `workflow.toml` and every other `*.toml` in `dir` (sorted by name).
pub fn load_dir(dir: &Path) -> Result<Registry, Vec<ContractError>> {
    compile::load_dir(dir)
}

/// The JSON Schemas of the two file formats, `contract.schema.json` and
/// `workflow.schema.json`: what editors with TOML schema support (Taplo, Even Better TOML)
/// complete and check keys with, made from the same serde models the loader reads.
pub fn schemas() -> Vec<(&'static str, Value)> {
    // Draft 7, which the TOML language servers read.
    let generator = || schemars::generate::SchemaSettings::draft07().into_generator();
    let finish = |schema: schemars::Schema, title: &str, about: &str| {
        let mut v = schema.to_value();
        no_null(&mut v);
        v["title"] = Value::String(title.into());
        v["description"] = Value::String(about.into());
        v
    };
    vec![
        (
            "contract.schema.json",
            finish(
                generator().into_root_schema_for::<raw::RawContract>(),
                "ebond partner contract",
                "One partner's data contract (contracts/<partner>.toml). Checked by `ebond contracts check`.",
            ),
        ),
        (
            "workflow.schema.json",
            finish(
                generator().into_root_schema_for::<raw::RawWorkflow>(),
                "ebond workflow",
                "The canonical states and transitions every contract maps onto (contracts/workflow.toml).",
            ),
        ),
    ]
}

/// TOML has no null: an optional key is absent, so the schema never offers `null`.
fn no_null(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(any)) = m.get_mut("anyOf") {
                any.retain(|s| s.get("type") != Some(&Value::String("null".into())));
                if any.len() == 1 {
                    let only = any.remove(0);
                    m.remove("anyOf");
                    if let Value::Object(o) = only {
                        m.extend(o);
                    }
                }
            }
            if let Some(Value::Array(types)) = m.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let t = types.remove(0);
                    m.insert("type".into(), t);
                }
            }
            if m.get("default") == Some(&Value::Null) {
                m.remove("default");
            }
            m.values_mut().for_each(no_null);
        }
        Value::Array(a) => a.iter_mut().for_each(no_null),
        _ => {}
    }
}

/// Each schema file under `dir` whose text differs from [`schemas`] (or is missing).
pub fn stale_schemas(dir: &Path) -> Vec<String> {
    schemas()
        .into_iter()
        .filter(|(name, v)| {
            let want = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
            std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(want.as_str())
        })
        .map(|(name, _)| dir.join(name).display().to_string())
        .collect()
}

/// Writes [`schemas`] under `dir`; returns the paths written.
pub fn write_schemas(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (name, v) in schemas() {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")?;
        out.push(path.display().to_string());
    }
    Ok(out)
}

/// The major number a caller names a contract version by: `2`, `v2`, `2.1` and `2.1.0` are 2.
pub fn parse_major(text: &str) -> Option<u64> {
    text.trim().trim_start_matches(['v', 'V']).split('.').next().and_then(|m| m.parse().ok())
}

/// Loads one partner file with the `workflow.toml` of its folder.
pub fn load_file(file: &Path) -> Result<Registry, Vec<ContractError>> {
    compile::load_file(file)
}

/// One partner's compiled contract.
#[derive(Debug)]
pub struct Contract {
    pub id: crate::domain::ids::PartnerId,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub file: PathBuf,
    pub default_kind: String,
    pub token_ttl_secs: Option<i64>,
    pub auth_methods: Vec<String>,
    /// Where the partner may call from; empty: anywhere.
    pub source_networks: Vec<ipnet::IpNet>,
    /// Pinned client certificate fingerprints (lower-case hex SHA-256, no colons).
    pub client_cert_sha256: Vec<String>,
    pub require_client_cert: bool,
    pub inbound_rate_per_minute: u32,
    pub webhook_secret: Option<SecretRef>,
    pub unknown_fields: UnknownFields,
    /// What a conflicting write does when its field says nothing.
    pub on_conflict: OnConflict,
    pub fields: Vec<FieldSpec>,
    pub rules: Vec<Rule>,
    pub priority_matrix: Option<[[i64; 3]; 3]>,
    pub access: Access,
    pub outbound: Option<Outbound>,
    /// How the partner's changed records are listed (scheduled pull sync).
    pub pull: Option<Pull>,
    /// `Some` when the partner may use the ServiceNow Table-API facade (`/api/now`).
    pub table_api: Option<TableApi>,
    /// SHA-256 of the file's text, as loaded.
    pub file_sha256: String,
    /// The major number of `version` (what a caller names in `Ebond-Contract-Version`).
    pub major: u64,
    /// Deprecated since (Unix seconds, midnight UTC of the date).
    pub deprecated: Option<i64>,
    /// Served until (Unix seconds, midnight UTC of the date).
    pub sunset: Option<i64>,
    /// `[partner] default = true` was written.
    pub marked_default: bool,
}

/// `[table_api]`: the partner reads and writes through the ServiceNow Table-API facade. Its
/// fields are top-level members (the facade's flat field names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableApi {}

impl Contract {
    pub fn may_write(&self, target: &str) -> bool {
        self.access.write.contains(target)
    }

    pub fn may_read(&self, target: &str) -> bool {
        self.access.read.contains(target)
    }

    /// The partner's name for a canonical target (first field mapped to it), for messages.
    pub fn partner_name_of(&self, target: &str) -> String {
        self.fields
            .iter()
            .find(|f| f.target.name() == target)
            .map(|f| f.display.clone())
            .unwrap_or_else(|| target.to_string())
    }

    /// The field that carries a canonical target (first declared wins).
    pub fn field_for(&self, target: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.target.name() == target)
    }

    /// What a conflicting write of canonical `target` does for this partner.
    pub fn on_conflict_for(&self, target: &str) -> OnConflict {
        self.field_for(target).and_then(|f| f.on_conflict).unwrap_or(self.on_conflict)
    }

    /// May a request from `ip` act for this partner?
    pub fn source_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.source_networks.is_empty() || self.source_networks.iter().any(|n| n.contains(&ip))
    }

    /// May this partner move a ticket from `from` to `to`?
    pub fn may_transition(&self, from: &str, to: &str) -> bool {
        self.access
            .transitions
            .iter()
            .any(|(f, t)| f.as_deref().is_none_or(|f| f == from) && t.as_deref().is_none_or(|t| t == to))
    }
}

/// What happens to a write that sets a field another party changed after the version the
/// writing partner last saw (see `sync::conflicts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Hold the field in a conflict record for people to resolve (the rest is applied).
    Queue,
    /// Last write wins; the overwritten value is recorded.
    Accept,
    /// Refuse the whole write with 409 and the current value.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields {
    Reject,
    Ignore,
}

/// What a partner may do with canonical fields and states.
#[derive(Debug)]
pub struct Access {
    pub create: bool,
    pub write: BTreeSet<String>,
    pub read: BTreeSet<String>,
    /// `(from, to)`; `None` is the `*` wildcard.
    pub transitions: Vec<(Option<String>, Option<String>)>,
}

/// Where a partner field lands.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Field(&'static CanonicalField),
    Attribute(String),
    PartnerTicketId,
    WorkNote,
    Comment,
    /// The ticket's version (read-only): what a partner may send back in `If-Match`.
    Version,
}

impl Target {
    pub fn name(&self) -> String {
        match self {
            Target::Field(f) => f.name.to_string(),
            Target::Attribute(a) => format!("{}{a}", crate::domain::fields::ATTRIBUTE_PREFIX),
            Target::PartnerTicketId => crate::domain::fields::PARTNER_TICKET_ID.into(),
            Target::WorkNote => crate::domain::fields::WORK_NOTE.into(),
            Target::Comment => crate::domain::fields::COMMENT.into(),
            Target::Version => crate::domain::fields::VERSION.into(),
        }
    }
}

/// A partner field's wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Text,
    Integer,
    Enum,
    Datetime,
    Boolean,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Enum => "enum",
            FieldType::Datetime => "datetime",
            FieldType::Boolean => "boolean",
        }
    }
}

/// One partner field: where it is, what it maps to, and the limits enforced on it (already
/// narrowed to the canonical field's own limits).
#[derive(Debug)]
pub struct FieldSpec {
    pub pointer: Pointer,
    pub display: String,
    pub target: Target,
    pub ty: FieldType,
    pub description: Option<String>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub pattern: Option<regex::Regex>,
    pub format: Option<String>,
    pub required_on_create: bool,
    /// Partner value → canonical value (enum fields), in file order.
    pub values: Vec<(String, Value)>,
    /// Canonical value → partner value, for reads and outbound.
    pub outbound_values: Vec<(Value, String)>,
    /// This field's own `on_conflict`, when it has one.
    pub on_conflict: Option<OnConflict>,
    /// Partner value → the label a person sees (enum fields; `display` in the contract).
    pub labels: Vec<(String, String)>,
}

impl FieldSpec {
    /// The label of a partner value (the value itself when the contract gives none).
    pub fn label_of<'a>(&'a self, partner_value: &'a str) -> &'a str {
        self.labels.iter().find(|(v, _)| v == partner_value).map(|(_, l)| l.as_str()).unwrap_or(partner_value)
    }
}

/// A derived target: `value` when every `when` condition holds (first matching rule wins).
#[derive(Debug)]
pub struct Rule {
    pub target: Target,
    pub value: Value,
    pub when: Vec<(Pointer, Vec<String>)>,
}

/// Where a secret comes from; the value itself never sits in a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Db(String),
}

impl SecretRef {
    /// `env:NAME`, `file:PATH` or `db:NAME`; anything else is not a reference.
    pub fn parse(s: &str) -> Option<SecretRef> {
        let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_string());
        if let Some(n) = s.strip_prefix("env:") {
            nonempty(n).map(SecretRef::Env)
        } else if let Some(p) = s.strip_prefix("file:") {
            nonempty(p).map(|p| SecretRef::File(PathBuf::from(p)))
        } else if let Some(n) = s.strip_prefix("db:") {
            nonempty(n).map(SecretRef::Db)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutboundAuth {
    None,
    OAuth2ClientCredentials { token_url: String, client_id: String, client_secret: SecretRef, scope: Option<String> },
    Basic { username: String, password: SecretRef },
    ApiKey { header: String, key: SecretRef },
}

/// How ebond pushes changes to this partner (delivery itself is the outbox processor's job).
#[derive(Debug)]
pub struct Outbound {
    pub create_url: Option<String>,
    pub update_url: Option<String>,
    pub create_method: String,
    pub update_method: String,
    /// One ticket at the partner (`{partner_ticket_id}` in it): what reconciliation reads.
    pub read_url: Option<String>,
    /// Where the record is in a read's answer (`None`: the answer is the record).
    pub read_pointer: Option<Pointer>,
    pub id_pointer: Option<Pointer>,
    pub auth: OutboundAuth,
    pub signing_secret: Option<SecretRef>,
    pub headers: Vec<(String, String)>,
    pub retry_schedule: Vec<Duration>,
    pub rate_limit_per_minute: u32,
    pub alert_threshold: f64,
    pub alert_window: Duration,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug)]
pub struct Subscription {
    pub events: BTreeSet<Event>,
    pub only_bonded: bool,
    /// Canonical field → accepted canonical values; all must hold.
    pub filter: Vec<(String, Vec<Value>)>,
}

impl Subscription {
    /// Does the ticket (its canonical values) pass this subscription's filter?
    pub fn filter_matches(&self, values: &serde_json::Map<String, Value>) -> bool {
        self.filter.iter().all(|(field, accepted)| {
            let v = values.get(field).unwrap_or(&Value::Null);
            accepted.iter().any(|a| a == v)
        })
    }
}

/// `[pull]`: listing the partner's records changed since a time.
#[derive(Debug)]
pub struct Pull {
    pub list_url: String,
    /// `None`: `list_url` carries `{since}` itself.
    pub since_param: Option<String>,
    pub since_format: TimeFormat,
    pub updated_pointer: Pointer,
    pub updated_format: TimeFormat,
    /// `None`: each page is the array of records.
    pub records_pointer: Option<Pointer>,
    pub paging: Paging,
    pub limit_param: String,
    pub batch_size: u32,
    pub interval: Duration,
    pub overlap: Duration,
    /// How far back the first run reaches (`None`: everything the partner has).
    pub backfill: Option<Duration>,
}

/// How the pages of a list continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Paging {
    Offset {
        param: String,
    },
    /// The next page's cursor sits at `pointer` in a page; it goes back as `param`.
    Cursor {
        pointer: Pointer,
        param: String,
    },
    /// `Link: <url>; rel="next"` (RFC 8288).
    Link,
}

/// How a partner writes a point in time on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    Rfc3339,
    UnixSecs,
    UnixMillis,
    /// A chrono format, in UTC.
    Pattern(String),
}

impl TimeFormat {
    pub fn parse(s: &str) -> TimeFormat {
        match s {
            "rfc3339" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::UnixSecs,
            "unix_ms" => TimeFormat::UnixMillis,
            other => TimeFormat::Pattern(other.to_string()),
        }
    }

    /// Milliseconds since the epoch as the partner writes them.
    pub fn format(&self, ms: i64) -> String {
        let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            TimeFormat::Rfc3339 => dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            TimeFormat::UnixSecs => (ms.div_euclid(1000)).to_string(),
            TimeFormat::UnixMillis => ms.to_string(),
            TimeFormat::Pattern(p) => dt.format(p).to_string(),
        }
    }

    /// A partner's time (a string, or a number for the unix formats) as milliseconds.
    pub fn read(&self, v: &Value) -> Option<i64> {
        match (self, v) {
            (TimeFormat::UnixSecs, Value::Number(n)) => n.as_i64().map(|s| s * 1000),
            (TimeFormat::UnixMillis, Value::Number(n)) => n.as_i64(),
            (TimeFormat::UnixSecs, Value::String(s)) => s.parse::<i64>().ok().map(|s| s * 1000),
            (TimeFormat::UnixMillis, Value::String(s)) => s.parse().ok(),
            (TimeFormat::Rfc3339, Value::String(s)) => inbound::parse_datetime(s, None).map(|d| d.timestamp_millis()),
            (TimeFormat::Pattern(p), Value::String(s)) => {
                inbound::parse_datetime(s, Some(p)).map(|d| d.timestamp_millis())
            }
            _ => None,
        }
    }
}
