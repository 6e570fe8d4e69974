//! The facade's refusals, in ServiceNow's error shape
//! (`{"error": {"message", "detail"}, "status": "failure"}`), mapped from ebond's own errors in
//! one place: the status stays ebond's (422 for a contract violation, 409, 412, 429, 503 with
//! `Retry-After`), the detail names the contract's fields and codes.

use crate::api::audit::AuditCodes;
use crate::api::problem::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct TableError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<String>,
    pub retry_after: Option<String>,
    /// For the audit row: the problem code plus each field error's code.
    pub codes: String,
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{}: {d}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl TableError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>, detail: Option<String>) -> TableError {
        TableError { status, message: message.into(), detail, retry_after: None, codes: code.into() }
    }

    /// 401, as ServiceNow answers a request without (valid) credentials.
    pub fn unauthenticated(detail: &str) -> TableError {
        let detail = match detail {
            "" => "Required to provide Auth information".to_string(),
            d => d.to_string(),
        };
        TableError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "User Not Authenticated", Some(detail))
    }

    pub fn not_found() -> TableError {
        TableError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No Record found",
            Some("Record doesn't exist or ACL restricts the record retrieval".into()),
        )
    }

    pub fn invalid_table(table: &str) -> TableError {
        TableError::new(
            StatusCode::BAD_REQUEST,
            "invalid-table",
            format!("Invalid table {table}"),
            Some("this Table-API facade answers the tables incident, change_request, problem and sc_req_item".into()),
        )
    }

    pub fn bad_request(code: &str, message: impl Into<String>, detail: impl Into<String>) -> TableError {
        TableError::new(StatusCode::BAD_REQUEST, code, message, Some(detail.into()))
    }

    pub fn forbidden(code: &str, message: impl Into<String>, detail: impl Into<String>) -> TableError {
        TableError::new(StatusCode::FORBIDDEN, code, message, Some(detail.into()))
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "detail": self.detail}, "status": "failure"})
    }

    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if let Some(r) = &self.retry_after {
            h.push(("Retry-After".to_string(), r.clone()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.push(("WWW-Authenticate".to_string(), "Basic realm=\"ebond\"".to_string()));
        }
        h
    }
}

impl From<ApiError> for TableError {
    fn from(e: ApiError) -> TableError {
        let rendered = e.error_response();
        let status = rendered.status();
        let retry_after = rendered.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let p = e.problem();
        let mut codes = vec![p.code.clone()];
        let mut detail = p.detail.clone();
        if let Some(errors) = &p.errors {
            let listed: Vec<String> = errors
                .iter()
                .map(|f| {
                    codes.push(f.code.clone());
                    format!("{} ({}): {}", f.field, f.code, f.message)
                })
                .collect();
            detail = format!("{detail}: {}", listed.join("; "));
        }
        let message = match status {
            StatusCode::UNAUTHORIZED => "User Not Authenticated".to_string(),
            _ => p.title.clone(),
        };
        TableError { status, message, detail: Some(detail), retry_after, codes: codes.join(",") }
    }
}

impl From<crate::sync::SyncError> for TableError {
    fn from(e: crate::sync::SyncError) -> TableError {
        ApiError::from(e).into()
    }
}

impl From<crate::store::StoreError> for TableError {
    fn from(e: crate::store::StoreError) -> TableError {
        ApiError::from(e).into()
    }
}

impl ResponseError for TableError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        for (k, v) in self.headers() {
            resp.insert_header((k, v));
        }
        let mut resp = resp.json(self.body());
        resp.extensions_mut().insert(AuditCodes(self.codes.clone()));
        resp
    }
}
