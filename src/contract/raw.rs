//! The contract and workflow files exactly as written (serde models). Spans are kept on every
//! value a semantic check can refuse, so errors point at the offending line and column.

use schemars::JsonSchema;
use serde::Deserialize;

pub type Table = toml::map::Map<String, toml::Value>;

/// A value and where it sits in the file (toml's `Spanned`); in the contract format's JSON
/// Schema it is the value alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Spanned<T>(toml::Spanned<T>);

impl<T> std::ops::Deref for Spanned<T> {
    type Target = toml::Spanned<T>;
    fn deref(&self) -> &toml::Spanned<T> {
        &self.0
    }
}

impl<T> Spanned<T> {
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    /// States a ticket may be created in.
    pub initial: Spanned<Vec<Spanned<String>>>,
    /// In file order.
    pub states: indexmap::IndexMap<String, RawState>,
    /// `"from -> to"` strings.
    pub transitions: Vec<Spanned<String>>,
    pub priority: Option<RawPriority>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    #[serde(default)]
    pub label: Option<String>,
    /// `open` (default), `resolved` or `closed`.
    #[serde(default)]
    #[schemars(extend("enum" = ["open", "resolved", "closed"]))]
    pub category: Option<Spanned<String>>,
    /// Canonical fields that must be set for a ticket to enter this state.
    #[serde(default)]
    pub requires: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPriority {
    /// `matrix[impact-1][urgency-1]` = priority.
    pub matrix: Spanned<Vec<Vec<i64>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContract {
    pub partner: RawPartner,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub inbound: RawInbound,
    #[serde(default)]
    pub fields: Vec<RawField>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    pub priority: Option<RawPriority>,
    pub access: RawAccess,
    pub outbound: Option<RawOutbound>,
    pub pull: Option<RawPull>,
    pub table_api: Option<RawTableApi>,
}

/// `[table_api]`: the partner may use the ServiceNow Table-API facade (`/api/now`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTableApi {
    pub enabled: Spanned<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    pub id: Spanned<String>,
    pub name: String,
    pub contract_version: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Kind of the tickets this partner creates.
    #[serde(default)]
    pub default_kind: Option<Spanned<String>>,
    /// With two major versions of this partner's contract live (two files, one id): this one
    /// answers callers that name no version, and the partner's pushes use it. Default: the
    /// lowest major version.
    #[serde(default)]
    pub default: Option<Spanned<bool>>,
    /// The date (YYYY-MM-DD) this version has been deprecated since: answers made with it carry
    /// `Deprecation` (RFC 9745).
    #[serde(default)]
    pub deprecated: Option<Spanned<String>>,
    /// The date (YYYY-MM-DD) this version stops being served: until then answers made with it
    /// carry `Sunset` (RFC 8594); from then on its requests are refused (403
    /// `contract-version-retired`).
    #[serde(default)]
    pub sunset: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    #[serde(default)]
    pub token_lifetime_secs: Option<Spanned<i64>>,
    /// CIDRs the partner may call from; empty: anywhere.
    #[serde(default)]
    pub source_networks: Vec<Spanned<String>>,
    /// SHA-256 fingerprints (hex, colons optional) of the partner's client certificates.
    #[serde(default)]
    pub client_cert_sha256: Vec<Spanned<String>>,
    /// Refuse this partner's requests made without a pinned client certificate.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Inbound requests per minute (token bucket); default 600.
    #[serde(default)]
    pub rate_limit_per_minute: Option<Spanned<i64>>,
    /// Secret reference for Standard Webhooks signed events the partner sends to /events.
    #[serde(default)]
    pub webhook_secret: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInbound {
    /// `reject` (default) or `ignore` payload members no field declares.
    #[serde(default)]
    #[schemars(extend("enum" = ["reject", "ignore"]))]
    pub unknown_fields: Option<Spanned<String>>,
    /// What a conflicting write does by default: `queue` (default), `accept` or `reject`.
    #[serde(default)]
    #[schemars(extend("enum" = ["queue", "accept", "reject"]))]
    pub on_conflict: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// JSON Pointer (RFC 6901) into the partner's payload.
    pub pointer: Spanned<String>,
    pub canonical: Spanned<String>,
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["string", "text", "integer", "enum", "datetime", "boolean"]))]
    pub ty: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub min_length: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_length: Option<Spanned<i64>>,
    #[serde(default)]
    pub min: Option<Spanned<i64>>,
    #[serde(default)]
    pub max: Option<Spanned<i64>>,
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// chrono format for `datetime` fields; RFC 3339 when absent.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    #[serde(default)]
    pub required_on_create: bool,
    /// Partner value → canonical value, for `enum` fields.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub values: Option<Spanned<Table>>,
    /// Canonical value → the partner value used outward, where `values` maps several partner
    /// values to one canonical value.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub outbound_values: Option<Spanned<Table>>,
    /// What a conflicting write of this field does: `queue`, `accept` or `reject` (default:
    /// the partner's `[inbound] on_conflict`).
    #[serde(default)]
    #[schemars(extend("enum" = ["queue", "accept", "reject"]))]
    pub on_conflict: Option<Spanned<String>>,
    /// Partner value → the label a person sees (`enum` fields): what the Table-API facade
    /// answers as `display_value`.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub display: Option<Spanned<Table>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub target: Spanned<String>,
    #[schemars(with = "serde_json::Value")]
    pub value: Spanned<toml::Value>,
    /// Partner field pointer → accepted partner values; all must match. Empty: always.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub when: Option<Spanned<Table>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    #[serde(default = "yes")]
    pub create: bool,
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    /// `"from -> to"` with canonical states; `*` stands for any state.
    #[serde(default)]
    pub transitions: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    #[serde(default)]
    pub create_url: Option<Spanned<String>>,
    #[serde(default)]
    pub update_url: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(extend("enum" = ["POST", "PUT", "PATCH"]))]
    pub create_method: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(extend("enum" = ["POST", "PUT", "PATCH"]))]
    pub update_method: Option<Spanned<String>>,
    /// GET of one ticket at the partner, with `{partner_ticket_id}` (reconciliation reads it).
    #[serde(default)]
    pub read_url: Option<Spanned<String>>,
    /// JSON Pointer to the record in a read's answer (an array there: its first element).
    #[serde(default)]
    pub read_pointer: Option<Spanned<String>>,
    /// JSON Pointer to the partner's ticket id in the create response.
    #[serde(default)]
    pub id_pointer: Option<Spanned<String>>,
    #[serde(default)]
    pub auth: Option<RawOutboundAuth>,
    /// Secret reference (`env:NAME`, `file:PATH`, `db:NAME`) for Standard Webhooks signing.
    #[serde(default)]
    pub signing_secret: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub headers: Option<Spanned<Table>>,
    /// Retry delays, e.g. `["1m", "5m", "15m", "1h"]`.
    #[serde(default)]
    pub retry_schedule: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub rate_limit_per_minute: Option<Spanned<i64>>,
    /// Failure rate (0–1) over `alert_window` that raises an alert.
    #[serde(default)]
    pub alert_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub alert_window: Option<Spanned<String>>,
    #[serde(default)]
    pub subscriptions: Vec<RawSubscription>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutboundAuth {
    /// `oauth2_client_credentials`, `basic`, `api_key` or `none`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["none", "oauth2_client_credentials", "basic", "api_key"]))]
    pub ty: Spanned<String>,
    #[serde(default)]
    pub token_url: Option<Spanned<String>>,
    #[serde(default)]
    pub client_id: Option<Spanned<String>>,
    #[serde(default)]
    pub client_secret: Option<Spanned<String>>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    #[serde(default)]
    pub password: Option<Spanned<String>>,
    #[serde(default)]
    pub header: Option<Spanned<String>>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSubscription {
    /// Event names, or `"*"` for all.
    pub events: Vec<Spanned<String>>,
    /// Only tickets this partner is already bonded to (has a cross-reference for).
    #[serde(default)]
    pub only_bonded: bool,
    /// Canonical field → accepted values; all must match.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub filter: Option<Spanned<Table>>,
}

/// `[pull]`: how to list the partner's records changed since a time (scheduled pull sync).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPull {
    /// The list endpoint; `{since}` in it is replaced by the window's start (URL-encoded).
    pub list_url: Spanned<String>,
    /// Query parameter carrying the window's start, when `list_url` has no `{since}`.
    #[serde(default)]
    pub since_param: Option<Spanned<String>>,
    /// `rfc3339` (default), `unix`, `unix_ms`, or a chrono format in UTC (`%Y-%m-%d %H:%M:%S`).
    #[serde(default)]
    pub since_format: Option<Spanned<String>>,
    /// JSON Pointer to a record's last-change time.
    pub updated_pointer: Spanned<String>,
    /// Format of that time (default: `since_format`).
    #[serde(default)]
    pub updated_format: Option<Spanned<String>>,
    /// JSON Pointer to the array of records in a page (default: the page is the array).
    #[serde(default)]
    pub records_pointer: Option<Spanned<String>>,
    /// `offset` (default), `cursor` or `link` (`Link: <…>; rel="next"`).
    #[serde(default)]
    #[schemars(extend("enum" = ["offset", "cursor", "link"]))]
    pub paging: Option<Spanned<String>>,
    #[serde(default)]
    pub offset_param: Option<String>,
    #[serde(default)]
    pub limit_param: Option<String>,
    /// `cursor` paging: where the next cursor is in a page, and the parameter it goes back in.
    #[serde(default)]
    pub cursor_pointer: Option<Spanned<String>>,
    #[serde(default)]
    pub cursor_param: Option<String>,
    /// Records per page, 1–1000 (default 100).
    #[serde(default)]
    pub batch_size: Option<Spanned<i64>>,
    /// Time between scheduled runs (default 5m).
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    /// How far before the last watermark each window starts (default 60s).
    #[serde(default)]
    pub overlap: Option<Spanned<String>>,
    /// How far back the first run reaches (default 1d; `"all"`: the partner's whole history).
    #[serde(default)]
    pub backfill: Option<Spanned<String>>,
}
