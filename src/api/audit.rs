//! The audit log of the partner endpoints, kept by one middleware: every request that was not
//! already audited inside its own write transaction (accepted writes are) gets a transaction
//! row — `rejected` with the error's codes, or `accepted` for reads — in a transaction of its
//! own, with the partner, ticket and body digest that the extractors and handlers left in the
//! request's extensions.

use super::context::{PartnerId, RequestId};
use super::AppState;
use crate::store::models::TransactionRow;
use crate::store::StoreError;
use crate::sync::{AuditInfo, AuditOutcome};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest};

/// Response extension: the problem code plus each field error's code (set by `ApiError`).
#[derive(Debug, Clone)]
pub struct AuditCodes(pub String);

/// Response extension: the result the row records instead of `accepted` / `rejected`
/// (`dry_run`: the request was a dry run, whatever it reports).
#[derive(Debug, Clone, Copy)]
pub struct AuditResult(pub &'static str);

/// Response extension: the request's row was written inside its write transaction.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// Request extension: the operator making the request (`operator:<credential id>`), recorded
/// where a partner request records its partner.
#[derive(Debug, Clone)]
pub struct AuditActor(pub String);

/// Request extension: the ticket id from the path (resolved to a ticket when the row is written).
#[derive(Debug, Clone)]
pub struct Reference(pub String);

/// Request extension: the ticket the handler found (saves resolving the reference again).
#[derive(Debug, Clone)]
pub struct AuditTicket {
    pub id: i64,
    pub number: String,
}

/// Request extension: SHA-256 of the body that was read.
#[derive(Debug, Clone)]
pub struct BodyDigest(pub String);

/// The request facts every audit row carries: id, method, path with credentials in the query
/// redacted, and the body's digest (of an empty body when none was read).
pub fn request_facts(req: &HttpRequest) -> AuditInfo {
    let ext = req.extensions();
    AuditInfo {
        request_id: ext.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
        method: req.method().to_string(),
        path: match req.uri().query() {
            Some(q) if !q.is_empty() => format!("{}?{}", req.path(), crate::util::redact_query(q)),
            _ => req.path().to_string(),
        },
        payload_sha256: ext.get::<BodyDigest>().map(|d| d.0.clone()).unwrap_or_else(|| crate::util::sha256_hex(b"")),
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let res = next.call(req).await?;
    if res.response().extensions().get::<Audited>().is_some() {
        return Ok(res);
    }
    let Some(state) = res.request().app_data::<web::Data<AppState>>().cloned() else {
        return Ok(res);
    };
    let status = res.status();
    let codes = res.response().extensions().get::<AuditCodes>().map(|c| c.0.clone()).unwrap_or_default();
    let result = res.response().extensions().get::<AuditResult>().map(|r| r.0);
    let req = res.request();
    let info = request_facts(req);
    let (partner, reference, ticket) = {
        let ext = req.extensions();
        (
            ext.get::<PartnerId>().map(|p| p.0.clone()).or_else(|| ext.get::<AuditActor>().map(|a| a.0.clone())),
            ext.get::<Reference>().map(|r| r.0.clone()),
            ext.get::<AuditTicket>().cloned(),
        )
    };
    let outcome = AuditOutcome {
        partner,
        result: result.unwrap_or(if status.as_u16() < 400 { "accepted" } else { "rejected" }),
        status: status.as_u16(),
        error_codes: codes,
        ticket: ticket.map(|t| (t.id, t.number)),
    };
    let row = info.row(crate::util::now_ms(), outcome);
    let write = record(state.into_inner(), row, reference);
    if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
        // The database is likely what failed: answer now, keep the row if it comes back.
        tokio::spawn(write);
    } else {
        write.await;
    }
    Ok(res)
}

/// Writes the row in a transaction of its own, naming the ticket `reference` resolves to.
async fn record(state: std::sync::Arc<AppState>, mut row: TransactionRow, reference: Option<String>) {
    if let (None, Some(p), Some(r)) = (row.ticket_id, row.partner.clone(), reference) {
        // A read of its own: a lookup that fails (on PostgreSQL it would abort the transaction
        // it ran in) must not cost the row.
        let found = state.db.read(move |c| c.shared_ticket(&p, &r).map_err(StoreError::from)).await;
        if let Ok(Some((id, number))) = found {
            row.ticket_id = Some(id);
            row.ticket_number = Some(number);
        }
    }
    let written = state.db.write(move |c| c.insert_transaction(&row).map_err(StoreError::from)).await;
    if let Err(e) = written {
        tracing::error!(error = %e, "could not write the transaction log row");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_the_query_are_redacted() {
        assert_eq!(crate::util::redact_query("access_token=abc.def&limit=5"), "access_token=***&limit=5");
        assert_eq!(
            crate::util::redact_query("cursor=x&client_secret=s&api%5Fkey=k"),
            "cursor=x&client_secret=***&api%5Fkey=***"
        );
        assert_eq!(
            crate::util::redact_query("updated_since=2026-01-01T00:00:00Z"),
            "updated_since=2026-01-01T00:00:00Z"
        );
    }
}
