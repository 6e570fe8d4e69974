//! Per-request context: the request id (`X-Request-Id` accepted when sane, else made, always
//! echoed) and the tracing span every log line of the request carries (request id, method,
//! path, and — once known — partner and ticket).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// The partner a request was authenticated as (for metrics).
#[derive(Debug, Clone)]
pub struct PartnerId(pub String);

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        partner = tracing::field::Empty,
        ticket = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID), v);
    }
    let tls = res.request().connection_info().scheme() == "https";
    security_headers(res.headers_mut(), tls);
    let notice = res.request().extensions().get::<super::caller::VersionNotice>().cloned();
    if let Some(n) = notice {
        version_headers(res.headers_mut(), &n);
    }
    let status = res.status().as_u16();
    if res.request().path().starts_with(super::BASE) {
        if let Some(state) = res.request().app_data::<actix_web::web::Data<super::AppState>>() {
            let partner =
                res.request().extensions().get::<PartnerId>().map(|p| p.0.clone()).unwrap_or_else(|| "-".into());
            state.metrics.inbound.with_label_values(&[partner.as_str(), &status.to_string()]).inc();
        }
    }
    span.in_scope(|| tracing::info!(status, elapsed_ms = started.elapsed().as_millis() as u64, "request completed"));
    Ok(res)
}

/// Adds the partner to the current request span and to the request (for metrics).
pub fn record_partner(req: &HttpRequest, partner: &str) {
    tracing::Span::current().record("partner", partner);
    req.extensions_mut().insert(PartnerId(partner.to_string()));
}

/// Adds the ticket to the current request span.
pub fn record_ticket(ticket: &str) {
    tracing::Span::current().record("ticket", ticket);
}

/// Headers that keep browsers from sniffing, framing or caching partner data.
fn security_headers(h: &mut actix_web::http::header::HeaderMap, tls: bool) {
    use actix_web::http::header;
    let set = |h: &mut header::HeaderMap, name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'");
    set(h, header::CACHE_CONTROL, "no-store");
    if tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
}

/// `Deprecation` (RFC 9745: `@` and Unix seconds), `Sunset` (RFC 8594: an HTTP date) and a
/// `successor-version` link for a request served under an old contract version.
fn version_headers(headers: &mut actix_web::http::header::HeaderMap, n: &super::caller::VersionNotice) {
    let deprecated = n.deprecated.map(|at| format!("@{at}"));
    if let Some(v) = deprecated.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(HeaderName::from_static("deprecation"), v);
    }
    if let Some(at) = n.sunset.and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
        let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(v) = HeaderValue::from_str(&date) {
            headers.insert(HeaderName::from_static("sunset"), v);
        }
    }
    if let Some(link) =
        n.successor.as_ref().and_then(|l| HeaderValue::from_str(&format!("<{l}>; rel=\"successor-version\"")).ok())
    {
        headers.append(HeaderName::from_static("link"), link);
    }
}
