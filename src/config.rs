//! Settings: built-in defaults, then an optional `ebond.toml`, then `EBOND_*` environment
//! variables. Every subcommand loads settings the same way through [`Settings::load`].

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// `sqlite://path`, a plain file path, or `postgres://…`. Empty: `<data_dir>/ebond.db`.
    pub database_url: String,
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
    pub alerts: AlertSettings,
    pub tls: TlsSettings,
    pub security: SecuritySettings,
}

impl std::fmt::Debug for Settings {
    /// The database URL's password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("database_url", &redact_url_password(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("contracts_dir", &self.contracts_dir)
            .field("log_format", &self.log_format)
            .field("workers", &self.workers)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("database", &self.database)
            .field("outbox", &self.outbox)
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest page the ticket list and admin queries return.
    pub max_page_size: i64,
    /// Default page size when `limit` is not given.
    pub default_page_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// PBKDF2-HMAC-SHA256 iterations for client secrets (OWASP 2023: 600 000).
    pub pbkdf2_iterations: u32,
    /// Token lifetime when a contract does not set one.
    pub default_token_ttl_secs: i64,
}

/// The outbox processor (delivery to partners).
#[derive(Debug, Clone, Deserialize)]
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

/// HTTPS and mutual TLS (OpenSSL). Plain HTTP only when no certificate is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain (server certificate first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// `1.2` (default) or `1.3`.
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed; from anyone else it is ignored.
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
        }
    }
}

/// Operational alerts: an optional webhook, signed with the Standard Webhooks scheme.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    pub webhook_url: Option<String>,
    /// Secret reference (`env:NAME` or `file:PATH`) holding a `whsec_…` signing secret.
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long SQLite waits for a lock before giving up, in milliseconds.
    pub busy_timeout_ms: u32,
    /// How long a request waits for a pooled connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Most SQLite writes committed together by the group-commit writer.
    pub max_batch: usize,
    /// `full` (default): an acknowledged write survives a power cut (SQLite
    /// `synchronous=FULL`, PostgreSQL `synchronous_commit=on`). `fast`: commits are not
    /// flushed to disk before the answer (SQLite `synchronous=NORMAL`, PostgreSQL
    /// `synchronous_commit=off`); a crash of the machine can lose the last moments of
    /// acknowledged writes, never corrupt the database.
    pub durability: Durability,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".into(),
            database_url: String::new(),
            data_dir: PathBuf::from("./data"),
            contracts_dir: PathBuf::from("./contracts"),
            log_format: LogFormat::Text,
            workers: 0,
            limits: Limits::default(),
            auth: AuthSettings::default(),
            database: DatabaseSettings::default(),
            outbox: OutboxSettings::default(),
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
        AuthSettings { pbkdf2_iterations: 600_000, default_token_ttl_secs: 3600 }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            pool_size: 16,
            busy_timeout_ms: 5000,
            connect_timeout_ms: 10_000,
            max_batch: 256,
            durability: Durability::Full,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?}: {message}")]
    Env { name: &'static str, value: String, message: String },
}

impl Settings {
    /// Defaults, then `config_file` (or `./ebond.toml` when it exists), then the environment.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut settings = match config_file {
            Some(path) => Self::from_file(path)?,
            None if Path::new("ebond.toml").exists() => Self::from_file(Path::new("ebond.toml"))?,
            None => Settings::default(),
        };
        settings.apply_env(|name| std::env::var(name).ok())?;
        Ok(settings)
    }

    fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Applies `EBOND_*` overrides; `get` is the environment (injectable for tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env { name, value, message: e.to_string() })
        }
        if let Some(v) = get("EBOND_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("EBOND_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("EBOND_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("EBOND_CONTRACTS_DIR") {
            self.contracts_dir = v.into();
        }
        if let Some(v) = get("EBOND_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "EBOND_LOG_FORMAT",
                        value: v,
                        message: "expected `text` or `json`".into(),
                    })
                }
            };
        }
        if let Some(v) = get("EBOND_WORKERS") {
            self.workers = parse("EBOND_WORKERS", v)?;
        }
        if let Some(v) = get("EBOND_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = parse("EBOND_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = get("EBOND_MAX_PAGE_SIZE") {
            self.limits.max_page_size = parse("EBOND_MAX_PAGE_SIZE", v)?;
        }
        if let Some(v) = get("EBOND_PBKDF2_ITERATIONS") {
            self.auth.pbkdf2_iterations = parse("EBOND_PBKDF2_ITERATIONS", v)?;
        }
        if let Some(v) = get("EBOND_TOKEN_TTL_SECS") {
            self.auth.default_token_ttl_secs = parse("EBOND_TOKEN_TTL_SECS", v)?;
        }
        if let Some(v) = get("EBOND_DB_POOL_SIZE") {
            self.database.pool_size = parse("EBOND_DB_POOL_SIZE", v)?;
        }
        if let Some(v) = get("EBOND_DB_MAX_BATCH") {
            self.database.max_batch = parse("EBOND_DB_MAX_BATCH", v)?;
        }
        if let Some(v) = get("EBOND_DB_DURABILITY") {
            self.database.durability = parse("EBOND_DB_DURABILITY", v)?;
        }
        if let Some(v) = get("EBOND_OUTBOX_IN_PROCESS") {
            self.outbox.in_process = parse("EBOND_OUTBOX_IN_PROCESS", v)?;
        }
        if let Some(v) = get("EBOND_OUTBOX_CONCURRENCY") {
            self.outbox.concurrency = parse("EBOND_OUTBOX_CONCURRENCY", v)?;
        }
        if let Some(v) = get("EBOND_OUTBOX_POLL_MS") {
            self.outbox.poll_interval_ms = parse("EBOND_OUTBOX_POLL_MS", v)?;
        }
        if let Some(v) = get("EBOND_OUTBOX_LEASE_SECS") {
            self.outbox.lease_secs = parse("EBOND_OUTBOX_LEASE_SECS", v)?;
        }
        if let Some(v) = get("EBOND_OUTBOX_CONNECT_TIMEOUT_MS") {
            self.outbox.connect_timeout_ms = parse("EBOND_OUTBOX_CONNECT_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("EBOND_OUTBOX_REQUEST_TIMEOUT_MS") {
            self.outbox.request_timeout_ms = parse("EBOND_OUTBOX_REQUEST_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("EBOND_RETENTION_DAYS") {
            self.outbox.retention_days = parse("EBOND_RETENTION_DAYS", v)?;
        }
        if let Some(v) = get("EBOND_TLS_CERT_FILE") {
            self.tls.cert_file = Some(v.into());
        }
        if let Some(v) = get("EBOND_TLS_KEY_FILE") {
            self.tls.key_file = Some(v.into());
        }
        if let Some(v) = get("EBOND_TLS_MIN_VERSION") {
            self.tls.min_version = v;
        }
        if let Some(v) = get("EBOND_TLS_CLIENT_CA_FILE") {
            self.tls.client_ca_file = Some(v.into());
        }
        if let Some(v) = get("EBOND_TLS_REQUIRE_CLIENT_CERT") {
            self.tls.require_client_cert = parse("EBOND_TLS_REQUIRE_CLIENT_CERT", v)?;
        }
        if let Some(v) = get("EBOND_TRUSTED_PROXIES") {
            self.security.trusted_proxies =
                v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        }
        if let Some(v) = get("EBOND_LOCKOUT_THRESHOLD") {
            self.security.lockout_threshold = parse("EBOND_LOCKOUT_THRESHOLD", v)?;
        }
        if let Some(v) = get("EBOND_LOCKOUT_SECS") {
            self.security.lockout_secs = parse("EBOND_LOCKOUT_SECS", v)?;
        }
        if let Some(v) = get("EBOND_MASTER_KEY_FILE") {
            self.security.master_key_file = Some(v.into());
        }
        if let Some(v) = get("EBOND_ALERT_WEBHOOK_URL") {
            self.alerts.webhook_url = Some(v);
        }
        if let Some(v) = get("EBOND_ALERT_WEBHOOK_SECRET") {
            self.alerts.webhook_secret = Some(v);
        }
        Ok(())
    }

    /// The database URL with the SQLite default filled in.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("ebond.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// Whether an acknowledged commit is on disk (`full`, the default) or may be lost by a power
/// cut (`fast`, an explicit opt-in). See [`DatabaseSettings::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
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

    #[test]
    fn env_overrides_defaults() {
        let mut s = Settings::default();
        s.apply_env(|n| match n {
            "EBOND_BIND" => Some("0.0.0.0:9000".into()),
            "EBOND_LOG_FORMAT" => Some("json".into()),
            "EBOND_MAX_BODY_BYTES" => Some("1024".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.limits.max_body_bytes, 1024);
        assert!(s.effective_database_url().ends_with("data/ebond.db"));
    }

    #[test]
    fn debug_hides_the_database_password() {
        let s = Settings { database_url: "postgres://ebond:s3cr3t@db/ebond".into(), ..Default::default() };
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("postgres://ebond:***@db/ebond"), "{shown}");
    }

    #[test]
    fn durability_is_full_unless_asked_and_checked() {
        assert_eq!(Settings::default().database.durability, Durability::Full);
        let mut s = Settings::default();
        s.apply_env(|n| (n == "EBOND_DB_DURABILITY").then(|| "fast".to_string())).unwrap();
        assert_eq!(s.database.durability, Durability::Fast);
        let err = s.apply_env(|n| (n == "EBOND_DB_DURABILITY").then(|| "off".to_string())).unwrap_err();
        assert!(err.to_string().contains("full or fast"), "{err}");
        let parsed: Settings = toml::from_str("[database]\ndurability = \"fast\"\nmax_batch = 32\n").unwrap();
        assert_eq!((parsed.database.durability, parsed.database.max_batch), (Durability::Fast, 32));
    }

    #[test]
    fn bad_env_value_is_named() {
        let mut s = Settings::default();
        let err = s.apply_env(|n| (n == "EBOND_MAX_BODY_BYTES").then(|| "lots".to_string())).unwrap_err();
        assert!(err.to_string().contains("EBOND_MAX_BODY_BYTES"));
    }
}
