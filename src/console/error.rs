//! Why a console request was refused, rendered in one place: a page with the right status
//! (and `Retry-After` where waiting helps), or a redirect to sign-in.

use crate::api::problem::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: the browser goes to the sign-in page, told why.
    #[error("sign in first ({0})")]
    SignIn(&'static str),
    #[error("this form was not sent from your console session (its CSRF token is missing or stale); reload the page and try again")]
    Csrf,
    #[error("your operator credential is read-only: it may look, not act")]
    ReadOnly,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// What the shared operator functions refused (their messages are written for operators).
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        ConsoleError::Api(ApiError::from(e))
    }
}

impl ConsoleError {
    /// What the page says: the operator functions' own words, but for a database failure the
    /// same safe detail the admin API gives (never the driver's text).
    pub fn message(&self) -> String {
        match self {
            ConsoleError::Api(e) => e.problem().detail,
            other => other.to_string(),
        }
    }

    /// How long to wait before trying again, where waiting helps (the database is away, a
    /// lockout): the same `Retry-After` the admin API would send.
    pub fn retry_after(&self) -> Option<actix_web::http::header::HeaderValue> {
        match self {
            ConsoleError::Api(e) => e.error_response().headers().get(header::RETRY_AFTER).cloned(),
            _ => None,
        }
    }

    /// The short name the audit trail records for the refusal.
    pub fn code(&self) -> String {
        match self {
            ConsoleError::SignIn(_) => "signed-out".into(),
            ConsoleError::Csrf => "csrf".into(),
            ConsoleError::ReadOnly => "read-only-operator".into(),
            ConsoleError::NotFound(_) => "not-found".into(),
            ConsoleError::BadRequest(_) => "bad-request".into(),
            ConsoleError::Api(e) => e.problem().code,
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn(_) => StatusCode::SEE_OTHER,
            ConsoleError::Csrf | ConsoleError::ReadOnly => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::SignIn(reason) = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("{}/sign-in?reason={reason}", super::ROOT)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        let status = self.status_code();
        let title = status.canonical_reason().unwrap_or("Refused");
        let mut resp = super::layout::bare(status, title, &self.message());
        if let Some(wait) = self.retry_after() {
            resp.headers_mut().insert(header::RETRY_AFTER, wait);
        }
        resp
    }
}
