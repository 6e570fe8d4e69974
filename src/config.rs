//! Settings: built-in defaults, then an optional `ebond.toml`, then `EBOND_*` environment
//! variables. Every subcommand loads settings the same way through [`Settings::load`].

use figment::providers::{Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// `sqlite://path`, a plain file path, or `postgres://…`. Empty: `<data_dir>/ebond.db`.
    /// A secret (it may hold a password): never printed.
    #[serde(serialize_with = "redacted")]
    pub database_url: SecretString,
    /// Where the SQLite database and other local state live.
    pub data_dir: PathBuf,
    /// Folder holding `workflow.toml` and one contract per partner.
    pub contracts_dir: PathBuf,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    pub limits: Limits,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub outbox: OutboxSettings,
    pub sync: SyncSettings,
    pub alerts: AlertSettings,
    pub tls: TlsSettings,
    pub security: SecuritySettings,
}

impl std::fmt::Debug for Settings {
    /// The database URL's password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("database_url", &redact_url_password(self.database_url.expose_secret()))
            .field("data_dir", &self.data_dir)
            .field("contracts_dir", &self.contracts_dir)
            .field("log_format", &self.log_format)
            .field("workers", &self.workers)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("database", &self.database)
            .field("outbox", &self.outbox)
            .field("sync", &self.sync)
            .field("alerts", &self.alerts)
            .field("tls", &self.tls)
            .field("security", &self.security)
            .finish()
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest page the ticket list and admin queries return.
    pub max_page_size: i64,
    /// Default page size when `limit` is not given.
    pub default_page_size: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// PBKDF2-HMAC-SHA256 iterations for client secrets (OWASP 2023: 600 000).
    pub pbkdf2_iterations: u32,
    /// Token lifetime when a contract does not set one.
    pub default_token_ttl_secs: i64,
    /// How long a Table-API facade login's HTTP Basic password, once proven against its slow
    /// hash, is taken from memory (0: hash every request).
    pub basic_cache_secs: u64,
    /// Lifetime of the facade's OAuth refresh tokens.
    pub refresh_token_ttl_secs: i64,
    /// How long a checked bearer token is taken from memory (0: ask the database on every
    /// request). A revocation still takes effect at once in every process.
    pub token_cache_secs: u64,
    /// A console session ends after this long without a request.
    pub console_idle_secs: i64,
    /// A console session ends this long after sign-in, however busy.
    pub console_absolute_secs: i64,
}

/// The outbox processor (delivery to partners).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Deliver from inside `ebond serve` (false: run `ebond worker` separately).
    pub in_process: bool,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How often to look for due rows when no write wakes the processor, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long a claimed row stays leased; a crashed worker's rows return after this.
    pub lease_secs: u64,
    pub connect_timeout_ms: u64,
    /// Whole-request timeout of one delivery.
    pub request_timeout_ms: u64,
    /// Consecutive failures that open a partner's circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker waits before one probe delivery, in milliseconds.
    pub breaker_cooldown_ms: u64,
    /// Longest `Retry-After` honoured, in seconds.
    pub retry_after_max_secs: u64,
    /// Delivered rows and their attempts are purged after this many days.
    pub retention_days: u64,
    pub retention_interval_secs: u64,
    /// How often the failure-rate alert is evaluated, in seconds.
    pub alert_interval_secs: u64,
    /// Attempts in the window below which no alert is raised.
    pub alert_min_attempts: i64,
    /// Bytes of a partner's response kept with each attempt.
    pub response_excerpt_bytes: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            in_process: true,
            concurrency: 16,
            poll_interval_ms: 500,
            lease_secs: 120,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            breaker_threshold: 5,
            breaker_cooldown_ms: 30_000,
            retry_after_max_secs: 3_600,
            retention_days: 30,
            retention_interval_secs: 3_600,
            alert_interval_secs: 30,
            alert_min_attempts: 10,
            response_excerpt_bytes: 2_048,
        }
    }
}

/// Reconciliation's reach: tickets still open (default), or every shared ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileScope {
    Open,
    All,
}

impl ReconcileScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileScope::Open => "open",
            ReconcileScope::All => "all",
        }
    }
}

/// Reading partners' systems: scheduled pull sync and reconciliation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Run each `[pull]` partner's pull on its contract's interval inside `serve` / `worker`.
    pub schedule: bool,
    /// Reconcile every partner with a `read_url` this often, in seconds (0: only on demand).
    pub reconcile_interval_secs: u64,
    /// Scheduled reconciliation reaches `open` tickets (default) or `all`.
    pub reconcile_scope: ReconcileScope,
    /// Most tickets one reconciliation run heals per partner; the rest are reported `capped`.
    pub heal_cap: u64,
    /// Partner reads in flight at once during reconciliation.
    pub read_concurrency: usize,
    /// How long a run's lease lasts without renewal (it is renewed after every page); a
    /// crashed process's job is free again after this, in seconds.
    pub lease_secs: u64,
    /// How often the scheduler looks for due jobs, in milliseconds.
    pub tick_ms: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            schedule: true,
            reconcile_interval_secs: 0,
            reconcile_scope: ReconcileScope::Open,
            heal_cap: 100,
            read_concurrency: 8,
            lease_secs: 60,
            tick_ms: 1_000,
        }
    }
}

/// HTTPS and mutual TLS (OpenSSL). Plain HTTP only when no certificate is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain (server certificate first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// `1.2` (default) or `1.3`.
    #[serde(deserialize_with = "text_or_number")]
    pub min_version: String,
    /// PEM bundle of CAs whose client certificates are accepted (enables mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Refuse the TLS handshake without a client certificate (otherwise per partner contract).
    pub require_client_cert: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: None,
            key_file: None,
            min_version: "1.2".into(),
            client_ca_file: None,
            require_client_cert: false,
        }
    }
}

/// Abuse controls and secrets at rest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    /// In the environment: comma-separated.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
    /// Failed authentications (per client id or per source address) within the window that
    /// lock the client out.
    pub lockout_threshold: i64,
    pub lockout_window_secs: i64,
    /// How long a lockout lasts after the last failure.
    pub lockout_secs: i64,
    /// Deepest JSON nesting accepted in a request body.
    pub max_json_depth: usize,
    /// Tolerance for signed inbound events' `webhook-timestamp`, in seconds.
    pub webhook_tolerance_secs: i64,
    /// Master key file for secrets stored in the database (created 0600 on first use).
    /// Empty: `<data_dir>/master.key`. `EBOND_MASTER_KEY` (base64, 32 bytes) takes precedence.
    pub master_key_file: Option<PathBuf>,
    /// `/metrics` answers only with an operator (admin) token (Prometheus: `authorization` with
    /// a bearer token, or its `oauth2` block against `/api/ebond/v1/oauth/token`).
    pub metrics_require_token: bool,
    /// The partner OpenAPI documents answer only with that partner's token or an operator's
    /// (without it anyone may list which partners are connected).
    pub documents_require_token: bool,
    /// Networks (CIDRs) from which `/metrics` and the OpenAPI documents answer; empty: any.
    /// In the environment: comma-separated.
    #[serde(deserialize_with = "list_or_commas")]
    pub ops_networks: Vec<String>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            trusted_proxies: Vec::new(),
            lockout_threshold: 10,
            lockout_window_secs: 900,
            lockout_secs: 900,
            max_json_depth: 32,
            webhook_tolerance_secs: 300,
            master_key_file: None,
            metrics_require_token: false,
            documents_require_token: false,
            ops_networks: Vec::new(),
        }
    }
}

/// Operational alerts: an optional webhook, signed with the Standard Webhooks scheme.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    pub webhook_url: Option<String>,
    /// Secret reference (`env:NAME` or `file:PATH`) holding a `whsec_…` signing secret.
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long SQLite waits for a lock before giving up, in milliseconds.
    pub busy_timeout_ms: u32,
    /// How long a request waits for a pooled connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Most writes committed together by a group-commit writer.
    pub max_batch: usize,
    /// PostgreSQL: group-commit writer threads, each on one connection committing batches of
    /// up to `max_batch` writes (a savepoint each). 0: each write is its own transaction on a
    /// pooled connection. Default 2 (see the README's Performance section for why).
    pub pg_writers: usize,
    /// `full` (default): an acknowledged write survives a power cut (SQLite
    /// `synchronous=FULL`, PostgreSQL `synchronous_commit=on`). `fast`: commits are not
    /// flushed to disk before the answer (SQLite `synchronous=NORMAL`, PostgreSQL
    /// `synchronous_commit=off`); a crash of the machine can lose the last moments of
    /// acknowledged writes, never corrupt the database.
    pub durability: Durability,
    /// How often each process reads the signals of the other processes sharing the database
    /// (a revocation, the outbox nudge), in milliseconds: no round trip on PostgreSQL, one small
    /// read on SQLite.
    pub signal_poll_ms: u64,
    /// How often each process tells the roll of live processes it is alive, in milliseconds.
    pub heartbeat_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".into(),
            database_url: SecretString::from(""),
            data_dir: PathBuf::from("./data"),
            contracts_dir: PathBuf::from("./contracts"),
            log_format: LogFormat::Text,
            workers: 0,
            limits: Limits::default(),
            auth: AuthSettings::default(),
            database: DatabaseSettings::default(),
            outbox: OutboxSettings::default(),
            sync: SyncSettings::default(),
            alerts: AlertSettings::default(),
            tls: TlsSettings::default(),
            security: SecuritySettings::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 256 * 1024, max_page_size: 500, default_page_size: 100 }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            pbkdf2_iterations: 600_000,
            default_token_ttl_secs: 3600,
            basic_cache_secs: 300,
            refresh_token_ttl_secs: 8 * 3600,
            token_cache_secs: 60,
            console_idle_secs: 30 * 60,
            console_absolute_secs: 12 * 3600,
        }
    }
}

impl DatabaseSettings {
    /// [`DatabaseSettings::signal_poll_ms`], at least 1 ms.
    pub fn signal_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.signal_poll_ms.max(1))
    }

    /// [`DatabaseSettings::heartbeat_ms`], at least 10 ms.
    pub fn heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.heartbeat_ms.max(10))
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            pool_size: 16,
            busy_timeout_ms: 5000,
            connect_timeout_ms: 10_000,
            max_batch: 256,
            pg_writers: 2,
            durability: Durability::Full,
            signal_poll_ms: 5,
            heartbeat_ms: 2000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: it does not exist")]
    Missing { path: PathBuf },
    #[error("environment variable {name} is not valid UTF-8")]
    NotUtf8 { name: String },
    /// A bad value or key, from the file or the environment; figment names the setting and
    /// where its value came from.
    #[error("{0}")]
    Invalid(Box<figment::Error>),
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Invalid(Box::new(e))
    }
}

/// Variable names of earlier releases, still read (the systematic name wins when both are set).
const RENAMED: [(&str, &str); 15] = [
    ("EBOND_MAX_BODY_BYTES", "limits.max_body_bytes"),
    ("EBOND_MAX_PAGE_SIZE", "limits.max_page_size"),
    ("EBOND_PBKDF2_ITERATIONS", "auth.pbkdf2_iterations"),
    ("EBOND_TOKEN_TTL_SECS", "auth.default_token_ttl_secs"),
    ("EBOND_DB_POOL_SIZE", "database.pool_size"),
    ("EBOND_DB_MAX_BATCH", "database.max_batch"),
    ("EBOND_DB_DURABILITY", "database.durability"),
    ("EBOND_OUTBOX_POLL_MS", "outbox.poll_interval_ms"),
    ("EBOND_RETENTION_DAYS", "outbox.retention_days"),
    ("EBOND_TRUSTED_PROXIES", "security.trusted_proxies"),
    ("EBOND_LOCKOUT_THRESHOLD", "security.lockout_threshold"),
    ("EBOND_LOCKOUT_SECS", "security.lockout_secs"),
    ("EBOND_MASTER_KEY_FILE", "security.master_key_file"),
    ("EBOND_ALERT_WEBHOOK_URL", "alerts.webhook_url"),
    ("EBOND_ALERT_WEBHOOK_SECRET", "alerts.webhook_secret"),
];

/// One `EBOND_*` variable as a figment provider, so that an error names the variable.
struct EnvVar {
    name: String,
    key: String,
    value: String,
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        // As text: the setting's type decides (figment's lossy extraction turns "16" into a
        // number and "false" into a boolean where the field wants one; a path stays "2026").
        let value = figment::value::Value::from(self.value.clone());
        let nested = figment::util::nest(&self.key, value).into_dict().unwrap_or_default();
        Ok(figment::Profile::Default.collect(nested))
    }
}

/// One setting: its key in `ebond.toml`, its environment variable and its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingInfo {
    pub key: String,
    pub env: String,
    pub default: String,
}

impl Settings {
    /// Defaults, then `config_file` (or `./ebond.toml` when it exists), then the environment:
    /// every setting `section.name` is `EBOND_SECTION_NAME` (top-level ones `EBOND_NAME`).
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        // `vars()` would panic on a variable that is not UTF-8; such an `EBOND_*` one is an error
        // (ignoring it could mean a default database), any other is none of ours.
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("EBOND_")).map(str::to_string) else { continue };
            match value.into_string() {
                Ok(value) => vars.push((name, value)),
                Err(_) => return Err(ConfigError::NotUtf8 { name }),
            }
        }
        Self::load_from(config_file, vars)
    }

    /// [`Settings::load`] with the environment given (tests).
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        match config_file {
            Some(path) if !path.exists() => return Err(ConfigError::Missing { path: path.to_path_buf() }),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("ebond.toml").exists() => figment = figment.merge(Toml::file_exact("ebond.toml")),
            None => {}
        }
        let by_env: std::collections::HashMap<String, String> =
            Self::describe().into_iter().map(|s| (s.env, s.key)).collect();
        let mut vars: Vec<(String, String)> = env.into_iter().collect();
        // Renamed variables first, so that the systematic name wins when both are set.
        vars.sort_by_key(|(name, _)| !RENAMED.iter().any(|(old, _)| old == name));
        for (name, value) in vars {
            let key = by_env
                .get(&name)
                .cloned()
                .or_else(|| RENAMED.iter().find(|(old, _)| *old == name).map(|(_, key)| key.to_string()));
            if let Some(key) = key {
                figment = figment.merge(EnvVar { name, key, value });
            }
        }
        Ok(figment.extract_lossy()?)
    }

    /// Every setting with its file key, environment variable and default, in declaration
    /// order (`ebond settings` prints them).
    pub fn describe() -> Vec<SettingInfo> {
        let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
        let mut out = Vec::new();
        let Some(top) = defaults.as_object() else { return out };
        for (name, value) in top {
            match value.as_object() {
                Some(section) => {
                    for (field, value) in section {
                        out.push(SettingInfo {
                            key: format!("{name}.{field}"),
                            env: format!("EBOND_{}_{}", name.to_ascii_uppercase(), field.to_ascii_uppercase()),
                            default: shown(value),
                        });
                    }
                }
                None => out.push(SettingInfo {
                    key: name.clone(),
                    env: format!("EBOND_{}", name.to_ascii_uppercase()),
                    default: shown(value),
                }),
            }
        }
        out
    }

    /// The database URL with the SQLite default filled in.
    pub fn effective_database_url(&self) -> String {
        let url = self.database_url.expose_secret();
        if url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("ebond.db").display())
        } else {
            url.to_string()
        }
    }
}

/// A default as a person reads it: `none` for an unset option, lists comma-separated.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) if s.is_empty() => "(empty)".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) if a.is_empty() => "(empty)".into(),
        serde_json::Value::Array(a) => a.iter().map(shown).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn redacted<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.expose_secret().is_empty() { "" } else { "***" })
}

/// A list in the file (`["a", "b"]`), or comma-separated text in the environment.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Form::deserialize(d)? {
        Form::List(v) => v,
        Form::Text(t) => t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    })
}

/// Text, or a number the environment parser took `1.3` for.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Number(f64),
    }
    Ok(match Form::deserialize(d)? {
        Form::Text(t) => t,
        Form::Number(n) => format!("{n:?}"),
    })
}

/// Whether an acknowledged commit is on disk (`full`, the default) or may be lost by a power
/// cut (`fast`, an explicit opt-in). See [`DatabaseSettings::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Full,
    Fast,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Durability::Full),
            "fast" => Ok(Durability::Fast),
            other => Err(format!("`{other}` is not a durability mode (full or fast)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_from(None, vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn env_overrides_defaults() {
        let s = with_env(&[
            ("EBOND_BIND", "0.0.0.0:9000"),
            ("EBOND_LOG_FORMAT", "json"),
            ("EBOND_LIMITS_MAX_BODY_BYTES", "1024"),
            ("EBOND_SECURITY_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
            ("EBOND_TLS_MIN_VERSION", "1.3"),
            ("EBOND_OUTBOX_IN_PROCESS", "false"),
            ("EBOND_SOMETHING_ELSE", "ignored: contracts' secret references live here too"),
            ("EBOND_DATA_DIR", "2026"),
        ])
        .unwrap();
        assert_eq!(s.data_dir, PathBuf::from("2026"), "text that looks like a number stays text for a path");
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.limits.max_body_bytes, 1024);
        assert_eq!(s.security.trusted_proxies, ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(s.tls.min_version, "1.3");
        assert!(!s.outbox.in_process);
        assert!(s.effective_database_url().ends_with("2026/ebond.db"));
    }

    #[test]
    fn every_setting_has_a_variable_and_renamed_ones_still_work() {
        let all = Settings::describe();
        assert!(all.len() > 40, "{}", all.len());
        let pool = all.iter().find(|s| s.key == "database.pool_size").unwrap();
        assert_eq!((pool.env.as_str(), pool.default.as_str()), ("EBOND_DATABASE_POOL_SIZE", "16"));
        for (old, key) in RENAMED {
            assert!(all.iter().any(|s| s.key == key), "{old} names a setting ({key})");
        }
        let s = with_env(&[("EBOND_DB_POOL_SIZE", "3"), ("EBOND_PBKDF2_ITERATIONS", "1000")]).unwrap();
        assert_eq!((s.database.pool_size, s.auth.pbkdf2_iterations), (3, 1000));
        let s = with_env(&[("EBOND_DB_POOL_SIZE", "3"), ("EBOND_DATABASE_POOL_SIZE", "7")]).unwrap();
        assert_eq!(s.database.pool_size, 7, "the systematic name wins");
    }

    #[test]
    fn debug_hides_the_database_password() {
        let s = with_env(&[("EBOND_DATABASE_URL", "postgres://ebond:s3cr3t@db/ebond")]).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("postgres://ebond:***@db/ebond"), "{shown}");
        assert!(Settings::describe().iter().all(|d| !d.default.contains("s3cr3t")));
    }

    #[test]
    fn durability_is_full_unless_asked_and_checked() {
        assert_eq!(Settings::default().database.durability, Durability::Full);
        let s = with_env(&[("EBOND_DATABASE_DURABILITY", "fast")]).unwrap();
        assert_eq!(s.database.durability, Durability::Fast);
        let err = with_env(&[("EBOND_DB_DURABILITY", "off")]).unwrap_err().to_string();
        assert!(err.contains("EBOND_DB_DURABILITY") && err.contains("full"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ebond.toml");
        std::fs::write(&file, "[database]\ndurability = \"fast\"\nmax_batch = 32\n").unwrap();
        let parsed = Settings::load_from(Some(&file), std::iter::empty()).unwrap();
        assert_eq!((parsed.database.durability, parsed.database.max_batch), (Durability::Fast, 32));
    }

    #[test]
    fn bad_values_and_keys_are_named() {
        let err = with_env(&[("EBOND_MAX_BODY_BYTES", "lots")]).unwrap_err().to_string();
        assert!(err.contains("EBOND_MAX_BODY_BYTES") && err.contains("max_body_bytes"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ebond.toml");
        std::fs::write(&file, "[outbox]\npoll_intervall_ms = 5\n").unwrap();
        let err = Settings::load_from(Some(&file), std::iter::empty()).unwrap_err().to_string();
        assert!(err.contains("poll_intervall_ms") && err.contains("ebond.toml"), "{err}");
        let err = Settings::load_from(Some(&dir.path().join("nope.toml")), std::iter::empty()).unwrap_err();
        assert!(err.to_string().contains("nope.toml"), "{err}");
        let err = with_env(&[("EBOND_SYNC_RECONCILE_SCOPE", "sometimes")]).unwrap_err().to_string();
        assert!(err.contains("EBOND_SYNC_RECONCILE_SCOPE") && err.contains("open"), "{err}");
        assert_eq!(
            with_env(&[("EBOND_SYNC_RECONCILE_SCOPE", "all")]).unwrap().sync.reconcile_scope,
            ReconcileScope::All
        );
    }
}
