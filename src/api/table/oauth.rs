//! `POST /oauth_token.do`: ServiceNow's token endpoint as its clients call it. The password
//! grant authenticates two things: the OAuth client (a partner's `client` credential, in HTTP
//! Basic or the form) and the user (a facade `login` of the same partner, as username and
//! password); the refresh grant trades a refresh token, once, for a new pair; the
//! client-credentials grant takes a `client` credential alone. Answers carry the members the
//! clients require (`access_token`, `refresh_token`, `scope`, `token_type`, `expires_in`).

use crate::api::caller::record_auth_event;
use crate::api::oauth::{basic_credentials, token_form};
use crate::api::problem::ApiError;
use crate::api::AppState;
use crate::auth::{tokens, AuthError, CredentialKind};
use crate::store::models::RefreshTokenRow;
use crate::util::{now_ms, random_token, sha256_hex};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

/// Who a token is issued to.
enum Holder {
    Known(tokens::VerifiedClient),
    /// The login of the refresh token with this hash.
    Refresh(String),
}

/// Why a token request was refused (RFC 6749 §5.2).
struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Refusal {
        Refusal { status, error, description: description.into(), retry_after: None }
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        let rendered = e.error_response();
        let retry_after = rendered.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(String::from);
        let error = match rendered.status() {
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            StatusCode::UNAUTHORIZED => "invalid_client",
            StatusCode::TOO_MANY_REQUESTS => "slow_down",
            StatusCode::FORBIDDEN => "access_denied",
            _ => "invalid_request",
        };
        Refusal { status: rendered.status(), error, description: e.to_string(), retry_after }
    }
}

pub async fn token(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let limit = state.settings.limits.max_body_bytes;
    let answer = match crate::api::extract::read_body(&req, payload.into_inner(), limit).await {
        Ok(body) => grant(&state, &req, &body).await,
        Err(e) => Err(e.into()),
    };
    match answer {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(body),
        Err(r) => {
            let mut resp = HttpResponse::build(r.status);
            resp.insert_header((header::CACHE_CONTROL, "no-store"));
            if let Some(s) = r.retry_after {
                resp.insert_header((header::RETRY_AFTER, s));
            }
            if r.status == StatusCode::UNAUTHORIZED {
                resp.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"ebond\""));
            }
            resp.json(json!({"error": r.error, "error_description": r.description}))
        }
    }
}

async fn grant(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<serde_json::Value, Refusal> {
    let bad = |d: String| Refusal::new(StatusCode::BAD_REQUEST, "invalid_request", d);
    let fields = token_form(req, body)?;
    let grant_type = fields.get("grant_type").cloned().unwrap_or_default();
    if !matches!(grant_type.as_str(), "password" | "refresh_token" | "client_credentials") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be password, refresh_token or client_credentials",
        ));
    }
    let (client_id, client_secret) =
        match (basic_credentials(req)?, fields.get("client_id"), fields.get("client_secret")) {
            (Some(pair), _, _) => pair,
            (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "authenticate the OAuth client with HTTP Basic or client_id and client_secret",
                ))
            }
        };
    let source = crate::auth::network::client_ip(req, &state.trusted_proxies)
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into());
    locked_out(state, &client_id, &source).await?;
    let client = verify(state, &client_id, &client_secret, CredentialKind::Client, &source).await?;
    let Some(partner) = client.partner.clone() else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "operator credentials have no Table-API access",
        ));
    };
    let contract = state
        .registry()
        .get(&partner)
        .cloned()
        .ok_or_else(|| ApiError::from(AuthError::UnknownPartner(partner.clone())))?;
    crate::api::caller::check_partner_origin(state, req, &contract)?;
    if contract.table_api.is_none() {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("the Table-API facade is not enabled for partner {partner}"),
        ));
    }
    let invalid_grant = |d: &str| Refusal::new(StatusCode::BAD_REQUEST, "invalid_grant", d);
    // Whose token it is: the login for the user grants, the client itself otherwise; for a
    // refresh, the login the refresh token was issued to, read in the issuing transaction.
    let holder = match grant_type.as_str() {
        "password" => {
            let (Some(user), Some(password)) = (fields.get("username"), fields.get("password")) else {
                return Err(bad("the password grant needs username and password".into()));
            };
            locked_out(state, user, &source).await?;
            match verify(state, user, password, CredentialKind::Login, &source).await {
                // A read-only client or a read-only login gives a read-only token.
                Ok(mut login) if login.partner.as_deref() == Some(partner.as_str()) => {
                    if client.scope == crate::auth::Scope::TicketsRead {
                        login.scope = crate::auth::Scope::TicketsRead;
                    }
                    Holder::Known(login)
                }
                Ok(_) => return Err(invalid_grant("this login belongs to another partner than the OAuth client")),
                Err(r) if r.status == StatusCode::UNAUTHORIZED => {
                    return Err(invalid_grant("the username or password is not a valid Table-API login"))
                }
                Err(r) => return Err(r),
            }
        }
        "refresh_token" => match fields.get("refresh_token") {
            Some(token) => Holder::Refresh(sha256_hex(token.as_bytes())),
            None => return Err(bad("the refresh_token grant needs refresh_token".into())),
        },
        _ => Holder::Known(client),
    };
    let ttl = contract.token_ttl_secs.unwrap_or(state.settings.auth.default_token_ttl_secs);
    let refresh_ttl = state.settings.auth.refresh_token_ttl_secs;
    let with_refresh = grant_type != "client_credentials";
    let owner = partner.clone();
    // One transaction: a refresh token is spent only if its successor is issued.
    let issued = state
        .db
        .write(move |c| {
            let now = now_ms();
            let (holder, chain_expires) = match holder {
                Holder::Known(h) => (h, None),
                Holder::Refresh(hash) => {
                    let Some(row) = c.take_refresh_token(&hash, now)? else { return Ok(None) };
                    let cred = c.credential_by_id(row.credential_id)?;
                    let Some(cred) = cred.filter(|c| c.revoked_at.is_none() && row.partner == owner) else {
                        return Ok(None);
                    };
                    let scope = crate::auth::Scope::parse(&row.scope).unwrap_or(crate::auth::Scope::TicketsRead);
                    let login = tokens::VerifiedClient {
                        credential_id: cred.id,
                        partner: cred.partner,
                        scope,
                        kind: CredentialKind::Login,
                        contract_major: cred.contract_major,
                    };
                    // A successor ends when the first of its chain does: the password grant
                    // starts an absolute lifetime that refreshing does not extend.
                    (login, Some(row.expires_at))
                }
            };
            let refresh = match with_refresh {
                true => {
                    let token = random_token(32)?;
                    c.insert_refresh_token(&RefreshTokenRow {
                        token_hash: sha256_hex(token.as_bytes()),
                        credential_id: holder.credential_id,
                        partner: holder.partner.clone().unwrap_or_default(),
                        scope: holder.scope.as_str().into(),
                        expires_at: chain_expires.unwrap_or(now + refresh_ttl * 1000),
                        created_at: now,
                        used_at: None,
                    })?;
                    Some(token)
                }
                false => None,
            };
            Ok::<_, AuthError>(Some((tokens::issue_token(c, holder, ttl)?, refresh)))
        })
        .await
        .map_err(ApiError::from)?;
    let Some((access, refresh)) = issued else {
        return Err(invalid_grant("the refresh token is unknown, expired, already used or revoked"));
    };
    record_auth_event(state, Some(client_id.clone()), source, "success", "token_issued").await;
    tracing::info!(client_id = %client_id, partner = %partner, grant = %grant_type, "Table-API token issued");
    let mut body = json!({
        "access_token": access.access_token,
        // ServiceNow's clients read the scope back; a facade token acts for the partner.
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": access.expires_in,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    Ok(body)
}

async fn locked_out(state: &AppState, id: &str, source: &str) -> Result<(), Refusal> {
    Ok(crate::api::caller::refuse_if_locked_out(state, id, source).await?)
}

async fn verify(
    state: &AppState,
    id: &str,
    secret: &str,
    kind: CredentialKind,
    source: &str,
) -> Result<tokens::VerifiedClient, Refusal> {
    let iterations = state.settings.auth.pbkdf2_iterations;
    let (id2, secret) = (id.to_string(), secret.to_string());
    let verified = state
        .db
        .read(move |c| {
            Ok::<_, crate::store::StoreError>(tokens::verify_client(c, &id2, &secret, None, kind, iterations, None))
        })
        .await
        .map_err(ApiError::from)?;
    match verified {
        Ok(v) => Ok(v),
        Err((e @ AuthError::Store(_), _)) => Err(ApiError::from(e).into()),
        Err((_, reason)) => {
            record_auth_event(state, Some(id.to_string()), source.to_string(), "failure", reason).await;
            tracing::warn!(client_id = %id, source = %source, reason, "Table-API token refused");
            Err(Refusal::new(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"))
        }
    }
}
