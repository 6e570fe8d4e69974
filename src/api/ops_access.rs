//! Who may read `/metrics` and the OpenAPI documents: anyone by default; only from
//! `security.ops_networks` when set; only with a token when `security.metrics_require_token` /
//! `security.documents_require_token` say so (both list which partners are connected).

use super::problem::ApiError;
use super::AppState;
use crate::auth::{AuthError, Scope};
use actix_web::HttpRequest;

/// What is asked for.
pub enum Needs<'a> {
    /// The generic document: the network rule only (it names no partner).
    Network,
    /// `/metrics`.
    Metrics,
    /// A partner's document: that partner's token or an operator's, when tokens are required.
    Document(&'a str),
}

pub async fn check(state: &AppState, req: &HttpRequest, needs: Needs<'_>) -> Result<(), ApiError> {
    if !state.ops_networks.is_empty() {
        let ip = crate::auth::network::client_ip(req, &state.trusted_proxies);
        if !ip.is_some_and(|ip| state.ops_networks.iter().any(|n| n.contains(&ip))) {
            let shown = ip.map(|i| i.to_string()).unwrap_or_else(|| "an unknown address".into());
            return Err(AuthError::SourceNotAllowed(shown).into());
        }
    }
    let sec = &state.settings.security;
    match needs {
        Needs::Network => Ok(()),
        Needs::Metrics if !sec.metrics_require_token => Ok(()),
        Needs::Document(_) if !sec.documents_require_token => Ok(()),
        Needs::Metrics => match super::caller::authenticate(state, req).await?.scope {
            Scope::Admin | Scope::AdminRead => Ok(()),
            _ => Err(ApiError::AdminOnly),
        },
        Needs::Document(partner) => {
            let principal = super::caller::authenticate(state, req).await?;
            match (principal.scope, principal.partner.as_deref()) {
                (Scope::Admin | Scope::AdminRead, _) => Ok(()),
                (_, Some(p)) if p == partner => Ok(()),
                // Another partner's document: as if there were none (no partner learns who else
                // is connected).
                _ => Err(ApiError::NotFound(format!("no partner `{partner}` has a contract here"))),
            }
        }
    }
}
