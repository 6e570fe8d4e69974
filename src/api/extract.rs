//! What handlers take as arguments (actix `FromRequest` extractors): the authenticated caller,
//! the bounded JSON body, `If-Match`, `Idempotency-Key`, the ticket id from the path and
//! checked query strings. Each refusal is an [`ApiError`]; each extractor also leaves in the
//! request's extensions what the audit middleware records (partner, ticket reference, body
//! digest).
//!
//! actix polls a handler's extractors together, so a handler that must authenticate first takes
//! the others as `Result<_, ApiError>` and unwraps them after the caller is known, in the order
//! a client should hear of its mistakes; the body is read only then ([`Body`]).

use super::audit::{BodyDigest, Reference};
use super::caller;
use super::problem::ApiError;
use super::AppState;
use crate::contract::Contract;
use crate::domain::ids::TicketReference;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use futures_util::future::{ready, LocalBoxFuture, Ready};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The gateway state of a request.
pub fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("no application state".into()))
}

/// A partner's bearer token, after every per-partner control (scope — `WRITE` needs a
/// read-write token —, source network, pinned client certificate, rate limit): the partner's
/// contract. Operator tokens are refused.
pub struct Partner<const WRITE: bool>(pub Arc<Contract>);

/// A partner that may write (a `tickets` token).
pub type WritingPartner = Partner<true>;
/// A partner that may read (`tickets` or `tickets:read`).
pub type ReadingPartner = Partner<false>;

impl<const WRITE: bool> FromRequest for Partner<WRITE> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let principal = caller::authenticate(&state, &req).await?;
            caller::partner_of(&state, &req, &principal, WRITE).map(Partner)
        })
    }
}

/// An operator (admin) token, and the credential it was issued to.
pub struct Operator {
    pub credential_id: i64,
}

impl Operator {
    /// How the operator is recorded (conflict resolutions, field stamps, the audit trail).
    pub fn label(&self) -> String {
        format!("operator:{}", self.credential_id)
    }
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let principal = caller::authenticate(&state, &req).await?;
            // A read-only operator reads the admin API too, and changes nothing there.
            let reading = matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD);
            match principal.scope {
                crate::auth::Scope::AdminRead if !reading => Err(ApiError::ReadOnlyOperator),
                scope if scope.is_operator() => {
                    let operator = Operator { credential_id: principal.credential_id };
                    req.extensions_mut().insert(super::audit::AuditActor(operator.label()));
                    Ok(operator)
                }
                _ => Err(ApiError::AdminOnly),
            }
        })
    }
}

/// The request body, not read yet: the handler reads it once the caller is known
/// ([`Body::bytes`] after the content type (`application/json` or `application/*+json`) and
/// size checks, [`Body::json`] parsed as strict JSON, see [`super::json`]), so that nobody
/// unauthenticated makes the gateway read or parse a body. Its SHA-256 goes to the audit log.
pub struct Body {
    req: HttpRequest,
    payload: Payload,
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(Ok(Body { req: req.clone(), payload: payload.take() }))
    }
}

impl Body {
    pub async fn bytes(self) -> Result<web::Bytes, ApiError> {
        let limit = app_state(&self.req)?.settings.limits.max_body_bytes;
        require_json(&self.req)?;
        let body = read_body(&self.req, self.payload, limit).await?;
        self.req.extensions_mut().insert(BodyDigest(crate::util::sha256_hex(&body)));
        Ok(body)
    }

    pub async fn json(self) -> Result<serde_json::Value, ApiError> {
        let req = self.req.clone();
        let body = self.bytes().await?;
        super::json::parse(&body, app_state(&req)?.settings.security.max_json_depth)
    }
}

/// `application/json` or any `application/*+json`; anything else (or nothing) is 415.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType { got: if ct.is_empty() { "(none)".into() } else { ct.to_string() } })
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
pub async fn read_body(req: &HttpRequest, mut payload: Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest { code: "bad-body", detail: format!("could not read the body: {e}") })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `If-Match: "3"` (or `W/"3"`; `*` or none: any version).
pub struct IfMatch(pub Option<i64>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_if_match(req.headers().get(header::IF_MATCH)).map(IfMatch))
    }
}

fn parse_if_match(value: Option<&header::HeaderValue>) -> Result<Option<i64>, ApiError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest {
        code: "bad-if-match",
        detail: "If-Match must be the ETag from a read or write, e.g. \"3\"".into(),
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s == "*" {
        return Ok(None);
    }
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').parse::<i64>().map(Some).map_err(|_| bad())
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters, when sent.
pub struct IdempotencyKeyHeader(pub Option<String>);

impl FromRequest for IdempotencyKeyHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(v) = req.headers().get("idempotency-key") else {
            return ready(Ok(IdempotencyKeyHeader(None)));
        };
        let key = v
            .to_str()
            .ok()
            .map(|k| k.trim().trim_matches('"').to_string())
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        ready(key.map(|k| IdempotencyKeyHeader(Some(k))).ok_or_else(|| ApiError::BadRequest {
            code: "bad-idempotency-key",
            detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        }))
    }
}

/// The `{partner_ticket_id}` of the path: the partner's own ticket id or a hub number shared
/// with it. An id that cannot exist (a NUL or other control character in it) is 404 without
/// touching the database.
pub struct TicketRef(pub TicketReference);

impl FromRequest for TicketRef {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Decoded as `web::Path` decodes (match_info keeps `%2F`, `%25`, `%2B` encoded).
        let decoded = web::Path::<String>::extract(req).into_inner().map(web::Path::into_inner);
        let id = decoded.unwrap_or_default();
        match TicketReference::parse(&id) {
            Ok(reference) => {
                req.extensions_mut().insert(Reference(reference.to_string()));
                ready(Ok(TicketRef(reference)))
            }
            // Reported as an unknown ticket is: no ticket can have this id.
            Err(_) => ready(Err(crate::sync::SyncError::NotFound { reference: id.escape_debug().to_string() }.into())),
        }
    }
}

/// The `cursor` query parameter of a paged list: where the previous page ended (`(updated_at,
/// id)` of its last row), opaque to the client. None on the first page.
pub struct Cursor(pub Option<(i64, i64)>);

impl Cursor {
    /// The cursor a page ending at `(updated_at, id)` hands out.
    pub fn encode(updated_at: i64, id: i64) -> String {
        B64URL.encode(format!("{updated_at}:{id}"))
    }

    fn decode(s: &str) -> Result<(i64, i64), ApiError> {
        let bad = || ApiError::BadRequest { code: "bad-cursor", detail: "cursor is not one this server issued".into() };
        let raw = B64URL.decode(s).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (a, b) = text.split_once(':').ok_or_else(bad)?;
        Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
    }
}

impl FromRequest for Cursor {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Other parameters (and an unreadable query string) are the handler's query type's to
        // check.
        let given = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "cursor"))
            .map(|(_, v)| v)
            .filter(|c| !c.is_empty());
        ready(given.as_deref().map(Cursor::decode).transpose().map(Cursor))
    }
}

/// A query string read into `T`; a parameter holding a NUL, or one `T` cannot take, is 400
/// `bad-query` naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_query(req.query_string()).map(Query))
    }
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let bad = |detail: String| ApiError::BadRequest { code: "bad-query", detail };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| bad(format!("query string: {e}")))?;
    if let Some((name, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(bad(format!("query parameter `{}` contains a NUL character", name.replace('\0', "\\u0000"))));
    }
    serde_urlencoded::from_str(query).map_err(|e| bad(format!("query string: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Q {
        partner: Option<String>,
        limit: Option<i64>,
    }

    #[test]
    fn queries_refuse_nul_and_bad_types_naming_the_parameter() {
        let q: Q = parse_query("partner=enovia&limit=5").unwrap();
        assert_eq!((q.partner.as_deref(), q.limit), (Some("enovia"), Some(5)));
        let e = parse_query::<Q>("partner=a%00b").unwrap_err();
        assert!(e.to_string().contains("`partner` contains a NUL"), "{e}");
        assert_eq!(parse_query::<Q>("limit=many").unwrap_err().code(), "bad-query");
    }

    #[test]
    fn if_match_forms() {
        let h = |s: &str| header::HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_if_match(None).unwrap(), None);
        assert_eq!(parse_if_match(Some(&h("\"3\""))).unwrap(), Some(3));
        assert_eq!(parse_if_match(Some(&h("W/\"4\""))).unwrap(), Some(4));
        assert_eq!(parse_if_match(Some(&h("*"))).unwrap(), None);
        assert_eq!(parse_if_match(Some(&h("abc"))).unwrap_err().code(), "bad-if-match");
    }
}
