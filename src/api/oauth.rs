//! `POST /api/ebond/v1/oauth/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).
//! Client authentication by HTTP Basic (§2.3.1) or form fields; success and error bodies as in
//! §5.1 / §5.2 (errors also carry the problem+json members, so both kinds of client can read
//! them).

use super::problem::ApiError;
use super::AppState;
use crate::auth::{tokens, AuthError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use base64::Engine;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// RFC 6749 §5.1.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    pub scope: String,
}

/// RFC 6749 §5.2, with RFC 9457 members alongside.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    /// invalid_request, invalid_client, unsupported_grant_type, invalid_scope,
    /// unauthorized_client (403: not from this network or certificate), temporarily_unavailable
    /// (429 locked out, 503: retry after `Retry-After`).
    pub error: String,
    pub error_description: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// ebond's own code (the last segment of `type`), as in every problem document.
    pub code: String,
}

/// The only grant this endpoint serves.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
}

/// Form fields of a token request.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    grant_type: GrantType,
    /// When not sent with HTTP Basic.
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `tickets` (or `tickets:read`) for partners, `admin` (or `admin:read`, read-only) for
    /// operators (optional).
    scope: Option<String>,
}

#[utoipa::path(
    post, path = "/api/ebond/v1/oauth/token", tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Access token", body = TokenResponse),
        (status = 400, description = "Bad request (invalid_request, unsupported_grant_type, invalid_scope)", body = OAuthError),
        (status = 401, description = "Client authentication failed (invalid_client)", body = OAuthError),
        (status = 403, description = "The client may not have a token from this network or certificate (unauthorized_client)", body = OAuthError),
        (status = 413, description = "Body too large (invalid_request)", body = OAuthError),
        (status = 429, description = "Locked out after failed attempts (temporarily_unavailable); retry after `Retry-After` seconds", body = OAuthError),
        (status = 503, description = "Database unavailable (temporarily_unavailable); retry after `Retry-After` seconds", body = OAuthError),
    )
)]
pub async fn token(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let limit = state.settings.limits.max_body_bytes;
    let granted = match super::extract::read_body(&req, payload.into_inner(), limit).await {
        Ok(body) => grant(&state, &req, &body).await,
        Err(e) => Err(e),
    };
    match granted {
        Ok(t) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(t),
        Err(e) => oauth_error(&req, e),
    }
}

/// A token request's form fields (RFC 6749 §3.2: `application/x-www-form-urlencoded`), each
/// once, none holding a NUL: what both token endpoints (this one and the Table-API facade's)
/// read.
pub(crate) fn token_form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(
            AuthError::InvalidRequest("send the token request as application/x-www-form-urlencoded".into()).into()
        );
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| AuthError::InvalidRequest(format!("unreadable form body: {e}")))?;
    let mut fields: HashMap<String, String> = HashMap::new();
    for (k, v) in form {
        refuse_nul(&k, &k)?;
        refuse_nul(&k, &v)?;
        if fields.insert(k.clone(), v).is_some() {
            return Err(AuthError::InvalidRequest(format!("parameter `{k}` is repeated")).into());
        }
    }
    Ok(fields)
}

async fn grant(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<TokenResponse, ApiError> {
    let fields = token_form(req, body)?;
    match fields.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => return Err(AuthError::UnsupportedGrantType.into()),
        None => {
            return Err(
                AuthError::InvalidRequest("grant_type is missing; send grant_type=client_credentials".into()).into()
            )
        }
    }
    let basic = basic_credentials(req)?;
    let (client_id, client_secret) = match (basic, fields.get("client_id"), fields.get("client_secret")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(
                AuthError::InvalidRequest("authenticate with HTTP Basic or with form fields, not both".into()).into()
            )
        }
        (Some((id, secret)), None, None) => {
            refuse_nul("client_id", &id)?;
            refuse_nul("client_secret", &secret)?;
            (id, secret)
        }
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => return Err(AuthError::InvalidClient.into()),
    };
    let scope = fields.get("scope").cloned();
    let source = source_of(state, req);
    let client = check_client(state, &client_id, client_secret, scope, &source).await?;
    let registry = state.registry();
    let default_ttl = state.settings.auth.default_token_ttl_secs;
    let ttl = match client.partner.as_deref() {
        None => default_ttl,
        Some(p) => {
            let Some(contract) = registry.get(p) else {
                record(state, Some(&client_id), &source, "failure", "unknown_partner").await;
                return Err(AuthError::UnknownPartner(p.to_string()).into());
            };
            // A partner gets no token from outside its networks or without its pinned certificate.
            if let Err(e) = super::caller::check_partner_origin(state, req, contract) {
                record(state, Some(&client_id), &source, "refused", "transport").await;
                tracing::warn!(client_id = %client_id, source = %source, error = %e, "token refused");
                return Err(e);
            }
            contract.token_ttl_secs.unwrap_or(default_ttl)
        }
    };
    let issued = state.db.write(move |c| tokens::issue_token(c, client, ttl)).await?;
    record(state, Some(&client_id), &source, "success", "token_issued").await;
    tracing::info!(client_id = %client_id, partner = ?issued.partner, "token issued");
    Ok(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".into(),
        expires_in: issued.expires_in,
        scope: issued.scope.as_str().into(),
    })
}

/// The address an authentication attempt came from, as the auth events record it.
pub(crate) fn source_of(state: &AppState, req: &HttpRequest) -> String {
    crate::auth::network::client_ip(req, &state.trusted_proxies)
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Client authentication as the token endpoint does it, for every front door that takes a
/// client id and secret (this endpoint, the console's sign-in): refused while locked out, the
/// secret checked against its slow hash, each failure an authentication event that counts
/// towards the lockout.
pub(crate) async fn check_client(
    state: &AppState,
    client_id: &str,
    client_secret: String,
    scope: Option<String>,
    source: &str,
) -> Result<tokens::VerifiedClient, ApiError> {
    refuse_nul("client_id", client_id)?;
    refuse_nul("client_secret", &client_secret)?;
    super::caller::refuse_if_locked_out(state, client_id, source).await?;
    let iterations = state.settings.auth.pbkdf2_iterations;
    let id = client_id.to_string();
    let verified = state
        .db
        .read(move |c| {
            Ok::<_, crate::store::StoreError>(tokens::verify_client(
                c,
                &id,
                &client_secret,
                scope.as_deref(),
                crate::auth::CredentialKind::Client,
                iterations,
                None,
            ))
        })
        .await?;
    match verified {
        Ok(client) => Ok(client),
        // The store could not be asked: not a failed authentication (no lockout count), and
        // recording it would only wait for the same database again.
        Err((e @ AuthError::Store(_), _)) => Err(e.into()),
        Err((e, reason)) => {
            record(state, Some(client_id), source, "failure", reason).await;
            tracing::warn!(client_id = %client_id, source = %source, reason, "client authentication refused");
            Err(e.into())
        }
    }
}

/// No credential holds a NUL character, and PostgreSQL could not even look one up.
pub(crate) fn refuse_nul(name: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        let name = name.replace('\0', "\\u0000");
        return Err(AuthError::InvalidRequest(format!("parameter `{name}` contains a NUL character")).into());
    }
    Ok(())
}

async fn record(state: &AppState, client_id: Option<&str>, source: &str, outcome: &'static str, reason: &'static str) {
    super::caller::record_auth_event(state, client_id.map(str::to_string), source.to_string(), outcome, reason).await
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, if present.
pub(crate) fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, ApiError> {
    let Some(v) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| AuthError::InvalidClient)?;
    let Some((scheme, b64)) = v.split_once(' ') else {
        return Err(AuthError::InvalidClient.into());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        // Another scheme (say a stale bearer token) is not client authentication: ignore it
        // and fall back to the form fields.
        return Ok(None);
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| AuthError::InvalidClient)?;
    let text = String::from_utf8(raw).map_err(|_| AuthError::InvalidClient)?;
    let (id, secret) = text.split_once(':').ok_or(AuthError::InvalidClient)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn form_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
        .unwrap_or_else(|| s.to_string())
}

fn oauth_error(req: &HttpRequest, e: ApiError) -> HttpResponse {
    let (status, error) = match &e {
        ApiError::Auth(AuthError::InvalidClient) => (StatusCode::UNAUTHORIZED, "invalid_client"),
        ApiError::Auth(AuthError::UnknownPartner(_)) => (StatusCode::UNAUTHORIZED, "invalid_client"),
        ApiError::Auth(AuthError::UnsupportedGrantType) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        ApiError::Auth(AuthError::InvalidScope(_)) => (StatusCode::BAD_REQUEST, "invalid_scope"),
        ApiError::Auth(AuthError::InvalidRequest(_)) => (StatusCode::BAD_REQUEST, "invalid_request"),
        ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
        e if e.status_code() == StatusCode::SERVICE_UNAVAILABLE => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        // A client that authenticated but may not have a token from here (source network,
        // client certificate): RFC 6749's closest code.
        e if e.status_code() == StatusCode::FORBIDDEN => (StatusCode::FORBIDDEN, "unauthorized_client"),
        // Locked out or rate limited: try again after `Retry-After`.
        e if e.status_code() == StatusCode::TOO_MANY_REQUESTS => {
            (StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable")
        }
        other => return other.error_response(),
    };
    let problem = e.problem();
    let body = OAuthError {
        error: error.into(),
        error_description: e.to_string(),
        type_: problem.type_,
        title: problem.title,
        status: status.as_u16(),
        code: problem.code,
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        let used_basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "));
        let challenge = if used_basic { "Basic realm=\"ebond\"" } else { "Basic realm=\"ebond\", charset=\"UTF-8\"" };
        resp.insert_header((header::WWW_AUTHENTICATE, challenge));
    }
    // The wait the problem rendering would send (1 s when unavailable, the lockout's or the
    // limit's own otherwise).
    if let Some(wait) = e.error_response().headers().get(header::RETRY_AFTER) {
        resp.insert_header((header::RETRY_AFTER, wait.clone()));
    }
    resp.json(body)
}
