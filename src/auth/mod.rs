//! Who is calling: client credentials (secret stored only as a slow PBKDF2 hash), the OAuth 2.0
//! client-credentials grant, and bearer-token checks (a fast SHA-256 lookup that never touches
//! the slow hash).

pub mod password;
pub mod tokens;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A partner's own tickets.
    Tickets,
    /// Operator endpoints under `/admin`.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tickets => "tickets",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "tickets" => Some(Scope::Tickets),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The partner, for partner tokens; `None` for operators.
    pub partner: Option<String>,
    pub scope: Scope,
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
    #[error(
        "no bearer token: send `Authorization: Bearer <token>` from POST /api/ebond/v1/oauth/token"
    )]
    MissingToken,
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("this token does not carry the `{0}` scope")]
    InsufficientScope(&'static str),
    #[error("the partner `{0}` of this credential has no contract loaded")]
    UnknownPartner(String),
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        AuthError::Store(crate::store::StoreError::Query(e))
    }
}
