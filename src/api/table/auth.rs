//! Who calls the facade, as ServiceNow's clients authenticate: HTTP Basic with a facade login
//! on every request (its slow hash checked once, then taken from memory for a short time), or a
//! bearer token from `/oauth_token.do`. Then the partner's controls exactly as on the v1 API:
//! scope, source networks, pinned client certificates, rate limit; and lockout after repeated
//! failed logins.

use super::error::TableError;
use crate::api::caller;
use crate::api::problem::ApiError;
use crate::api::AppState;
use crate::auth::{tokens, AuthError, CredentialKind, Principal};
use crate::contract::Contract;
use actix_web::http::header;
use actix_web::HttpRequest;
use std::sync::Arc;

/// The authenticated caller of a facade request.
pub struct Caller {
    pub contract: Arc<Contract>,
    pub principal: Principal,
}

impl Caller {
    /// May this caller write (a read-write login or token)?
    pub fn may_write(&self) -> bool {
        self.principal.scope == crate::auth::Scope::Tickets
    }
}

/// Authenticates `req` and applies the partner's controls (`write`: the request writes).
pub async fn caller(state: &AppState, req: &HttpRequest, write: bool) -> Result<Caller, TableError> {
    let scheme = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(s, _)| s.to_ascii_lowercase());
    let principal = match scheme.as_deref() {
        Some("basic") => basic(state, req).await?,
        Some("bearer") => caller::authenticate(state, req).await.map_err(|e| match e {
            ApiError::Auth(AuthError::Store(_)) => TableError::from(e),
            _ => TableError::unauthenticated("the bearer token is invalid or expired; get one from /oauth_token.do"),
        })?,
        _ => return Err(TableError::unauthenticated("")),
    };
    let contract = caller::partner_of(state, req, &principal, write).map_err(TableError::from)?;
    if contract.table_api.is_none() {
        return Err(TableError::forbidden(
            "table-api-disabled",
            "Insufficient rights",
            format!(
                "the Table-API facade is not enabled for partner {}: its contract has no `[table_api] enabled = true`",
                contract.id
            ),
        ));
    }
    Ok(Caller { contract, principal })
}

/// What a Basic login's check found (decided on the blocking thread).
enum Checked {
    Ok(tokens::VerifiedClient),
    Failed(&'static str),
    LockedOut(i64),
}

async fn basic(state: &AppState, req: &HttpRequest) -> Result<Principal, TableError> {
    let (user, password) = match crate::api::oauth::basic_credentials(req) {
        Ok(Some(pair)) if !pair.0.contains('\0') && !pair.1.contains('\0') => pair,
        _ => return Err(TableError::unauthenticated("the Authorization header is not valid HTTP Basic")),
    };
    let source = crate::auth::network::client_ip(req, &state.trusted_proxies)
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into());
    let data = crate::api::extract::app_state(req).map_err(TableError::from)?;
    let (user2, source2) = (user.clone(), source.clone());
    let checked = state
        .db
        .read(move |c| {
            let logins = &data.logins;
            let sec = &data.settings.security;
            let Some(cred) = c.credential_by_client_id(&user2).map_err(crate::store::StoreError::from)? else {
                // As long as a real check, so that unknown logins cannot be told apart by timing.
                let _ = crate::auth::password::hash(&password, data.settings.auth.pbkdf2_iterations);
                return Ok(Checked::Failed("unknown_client"));
            };
            // The lockout is looked at where the slow check would run: a login proven a moment
            // ago costs no extra statement, a guess always does.
            if !logins.is_known(&password, &cred.secret_hash) {
                let now = crate::util::now_ms();
                let locked = crate::auth::lockout::remaining(c, sec, &user2, &source2, now)
                    .map_err(crate::store::StoreError::from)?;
                if let Some(secs) = locked {
                    return Ok(Checked::LockedOut(secs));
                }
            }
            Ok::<_, crate::store::StoreError>(
                match tokens::check_credential(&cred, &password, None, CredentialKind::Login, Some(logins)) {
                    Ok(v) => Checked::Ok(v),
                    Err((_, reason)) => Checked::Failed(reason),
                },
            )
        })
        .await?;
    match checked {
        Checked::Ok(v) => Ok(Principal {
            partner: v.partner,
            scope: v.scope,
            credential_id: v.credential_id,
            contract_major: v.contract_major.and_then(|m| u64::try_from(m).ok()),
        }),
        Checked::Failed(reason) => {
            caller::record_auth_event(state, Some(user.clone()), source.clone(), "failure", reason).await;
            tracing::warn!(username = %user, source = %source, reason, "Table-API login refused");
            Err(TableError::unauthenticated("the username or password is not a valid Table-API login"))
        }
        Checked::LockedOut(secs) => {
            caller::record_auth_event(state, Some(user.clone()), source.clone(), "refused", "locked_out").await;
            Err(ApiError::Auth(AuthError::LockedOut(secs)).into())
        }
    }
}
