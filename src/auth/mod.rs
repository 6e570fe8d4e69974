//! Who is calling: client credentials (secret stored only as a slow PBKDF2 hash), the OAuth 2.0
//! client-credentials grant, and bearer-token checks (a fast SHA-256 lookup that never touches
//! the slow hash).

pub mod limits;
pub mod lockout;
pub mod network;
pub mod password;
pub mod tls;
pub mod token_cache;
pub mod tokens;
pub mod verified;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A partner's own tickets.
    Tickets,
    /// A partner's own tickets, read only.
    TicketsRead,
    /// Operator endpoints under `/admin`.
    Admin,
    /// An operator who may look but not act: the console's pages and the admin API's reads.
    AdminRead,
}

impl Scope {
    /// An operator's scope, read-only or not.
    pub fn is_operator(self) -> bool {
        matches!(self, Scope::Admin | Scope::AdminRead)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tickets => "tickets",
            Scope::TicketsRead => "tickets:read",
            Scope::Admin => "admin",
            Scope::AdminRead => "admin:read",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "tickets" => Some(Scope::Tickets),
            "tickets:read" => Some(Scope::TicketsRead),
            "admin" => Some(Scope::Admin),
            "admin:read" => Some(Scope::AdminRead),
            _ => None,
        }
    }
}

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An OAuth client: the client-credentials grant of `/api/ebond/v1`, and the client of the
    /// Table-API facade's password grant.
    Client,
    /// A Table-API facade login: the user of HTTP Basic on `/api/now`, and the username and
    /// password of the facade's password grant.
    Login,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Client => "client",
            CredentialKind::Login => "login",
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The partner, for partner tokens; `None` for operators.
    pub partner: Option<String>,
    pub scope: Scope,
    /// The credential the token was issued to (what an operator's actions are recorded under).
    pub credential_id: i64,
    /// The contract major version the credential is bound to (`None`: the partner's default).
    pub contract_major: Option<u64>,
}

/// Why authentication failed. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("only the client_credentials grant is supported")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    #[error("no bearer token: send `Authorization: Bearer <token>` from POST /api/ebond/v1/oauth/token")]
    MissingToken,
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("this token does not carry the `{0}` scope")]
    InsufficientScope(&'static str),
    #[error("the partner `{0}` of this credential has no contract loaded")]
    UnknownPartner(String),
    #[error("too many failed attempts: locked out for {0} more seconds")]
    LockedOut(i64),
    #[error("this token is read-only")]
    ReadOnly,
    #[error("{0}")]
    RetiredContractVersion(String),
    #[error("requests for this partner are not accepted from {0}")]
    SourceNotAllowed(String),
    #[error("{0}")]
    ClientCertificate(String),
    #[error("{0}")]
    Signature(String),
    #[error("rate limit of {per_minute} requests per minute exceeded")]
    RateLimited { per_minute: u32, retry_after_secs: u64 },
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        AuthError::Store(crate::store::StoreError::from(e))
    }
}
