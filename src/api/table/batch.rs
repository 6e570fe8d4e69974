//! `POST /api/now/v1/batch`: ServiceNow's Batch API. Each sub-request runs as its own facade
//! request under the outer request's authentication (and counts against the partner's rate
//! limit); one that fails answers its own error and the others run.

use super::auth::{self, Caller};
use super::error::TableError;
use super::handlers::{self, Reply};
use crate::api::AppState;
use crate::sync::{AuditInfo, AuditOutcome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct BatchRequest {
    #[serde(default)]
    batch_request_id: Value,
    rest_requests: Vec<SubRequest>,
}

#[derive(Debug, Deserialize)]
struct SubRequest {
    id: Value,
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    /// Base64 of the body.
    #[serde(default)]
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

/// A JSON id as the string ServiceNow answers it with (`1` → `"1"`).
fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn batch(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, TableError> {
    let caller = auth::caller(&state, &req, false).await?;
    let body = crate::api::extract::read_body(&req, payload.into_inner(), state.settings.limits.max_body_bytes).await?;
    req.extensions_mut().insert(crate::api::audit::BodyDigest(crate::util::sha256_hex(&body)));
    crate::api::extract::require_json(&req)?;
    let json = crate::api::json::parse(&body, state.settings.security.max_json_depth)?;
    let batch: BatchRequest = serde_json::from_value(json).map_err(|e| {
        TableError::bad_request("bad-batch", "Invalid batch request", format!("{e}: send {{\"batch_request_id\", \"rest_requests\": [{{\"id\", \"method\", \"url\", \"headers\", \"body\"}}]}}"))
    })?;
    let origin = super::origin(&req);
    let outer = crate::api::audit::request_facts(&req);
    let mut serviced = Vec::new();
    for sub in &batch.rest_requests {
        let started = std::time::Instant::now();
        let (reply, audited) = match run(&state, &caller, &origin, &outer.request_id, sub).await {
            Ok((reply, info)) => {
                let audited = reply.audited;
                (reply, (!audited).then_some((info, None)))
            }
            Err((e, info)) => {
                let codes = e.codes.clone();
                (
                    Reply { status: e.status, headers: e.headers(), body: Some(e.body()), audited: false },
                    info.map(|i| (i, Some(codes))),
                )
            }
        };
        if let Some((info, codes)) = audited {
            audit(&state, &caller, info, reply.status, codes.unwrap_or_default()).await;
        }
        let mut headers: Vec<Value> = vec![json!({"name": "Content-Type", "value": "application/json;charset=UTF-8"})];
        headers.extend(reply.headers.iter().map(|(k, v)| json!({"name": k, "value": v})));
        let body = reply.body.map(|b| B64.encode(b.to_string())).unwrap_or_default();
        serviced.push(json!({
            "id": id_text(&sub.id),
            "status_code": reply.status.as_u16(),
            "status_text": reply.status.canonical_reason().unwrap_or(""),
            "headers": headers,
            "body": body,
            "execution_time": started.elapsed().as_millis() as u64,
        }));
    }
    Ok(HttpResponse::Ok().json(json!({
        "batch_request_id": id_text(&batch.batch_request_id),
        "serviced_requests": serviced,
        "unserviced_requests": [],
    })))
}

/// The sub-request's audit row, when its write did not write one (reads, refusals).
async fn audit(state: &AppState, caller: &Caller, info: AuditInfo, status: StatusCode, codes: String) {
    let outcome = AuditOutcome {
        partner: Some(caller.contract.id.to_string()),
        result: if status.as_u16() < 400 { "accepted" } else { "rejected" },
        status: status.as_u16(),
        error_codes: codes,
        ticket: None,
    };
    let row = info.row(crate::util::now_ms(), outcome);
    if let Err(e) = state.db.write(move |c| c.insert_transaction(&row).map_err(crate::store::StoreError::from)).await {
        tracing::error!(error = %e, "could not write the transaction log row of a batch sub-request");
    }
}

type Failed = (TableError, Option<AuditInfo>);

async fn run(
    state: &AppState,
    caller: &Caller,
    origin: &str,
    request_id: &str,
    sub: &SubRequest,
) -> Result<(Reply, AuditInfo), Failed> {
    // The URL may be absolute (`https://host/api/now/…`) or a path.
    let url = sub.url.trim();
    let url = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => url,
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let raw_body = match &sub.body {
        Some(b) if !b.is_empty() => B64.decode(b.trim()).map_err(|e| {
            (
                TableError::bad_request(
                    "bad-batch",
                    "Invalid batch request",
                    format!("the body of `{}` is not base64: {e}", id_text(&sub.id)),
                ),
                None,
            )
        })?,
        _ => Vec::new(),
    };
    let info = AuditInfo {
        request_id: format!("{request_id}:{}", id_text(&sub.id)),
        method: sub.method.to_ascii_uppercase(),
        path: match query.is_empty() {
            true => path.to_string(),
            false => format!("{path}?{}", crate::util::redact_query(query)),
        },
        payload_sha256: crate::util::sha256_hex(&raw_body),
    };
    let fail = |e: TableError| (e, Some(info.clone()));
    let (table, sys_id) = route(path).ok_or_else(|| {
        fail(TableError::bad_request(
            "no-resource",
            "Requested URI does not represent any resource",
            format!("{path}: a batch runs /api/now/table/{{table}}[/{{sys_id}}] requests"),
        ))
    })?;
    if let Err(wait) = state.limiter.check(&caller.contract.id, caller.contract.inbound_rate_per_minute) {
        let e = crate::api::problem::ApiError::Auth(crate::auth::AuthError::RateLimited {
            per_minute: caller.contract.inbound_rate_per_minute,
            retry_after_secs: wait.as_secs().max(1),
        });
        return Err(fail(e.into()));
    }
    let body = match raw_body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => {
            let ct = sub
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-type"))
                .map(|h| h.value.to_ascii_lowercase());
            if ct.as_deref().is_some_and(|c| !c.contains("json")) {
                return Err(fail(TableError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported Media Type",
                    Some("send the body as application/json".into()),
                )));
            }
            Some(
                crate::api::json::parse(&raw_body, state.settings.security.max_json_depth)
                    .map_err(|e| fail(e.into()))?,
            )
        }
    };
    let r = handlers::Request { table, sys_id, query, origin, path, audit: info.clone() };
    let reply = match (sub.method.to_ascii_uppercase().as_str(), sys_id) {
        ("GET", None) => handlers::list(state, caller, &r).await,
        ("GET", Some(_)) => handlers::read(state, caller, &r).await,
        ("POST", None) => handlers::create(state, caller, &r, &handlers::body_or_empty(body)).await,
        ("PATCH" | "PUT", Some(_)) => handlers::update(state, caller, &r, &handlers::body_or_empty(body)).await,
        ("DELETE", Some(_)) => handlers::delete(state, caller, &r).await,
        (m, _) => Err(TableError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not Supported",
            Some(format!("{m} is not supported on {path}")),
        )),
    };
    reply.map(|r| (r, info.clone())).map_err(fail)
}

/// `/api/now[/v1|/v2]/table/{table}[/{sys_id}]` → table and sys_id.
fn route(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/api/now/")?;
    let rest = rest.strip_prefix("v1/").or_else(|| rest.strip_prefix("v2/")).unwrap_or(rest);
    let rest = rest.strip_prefix("table/")?;
    let mut parts = rest.split('/');
    let table = parts.next().filter(|t| !t.is_empty())?;
    let id = parts.next().filter(|s| !s.is_empty());
    match parts.next() {
        Some(_) => None,
        None => Some((table, id)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sub_request_paths() {
        assert_eq!(super::route("/api/now/table/incident"), Some(("incident", None)));
        assert_eq!(super::route("/api/now/v2/table/incident/abc"), Some(("incident", Some("abc"))));
        assert_eq!(super::route("/api/now/table/incident/abc/x"), None);
        assert_eq!(super::route("/api/now/attachment"), None);
        assert_eq!(super::id_text(&serde_json::json!(1)), "1");
    }
}
