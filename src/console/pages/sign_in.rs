//! Sign-in with an operator credential (admin, or read-only `admin:read`), and sign-out.
//! Failures count towards the same lockout as the token endpoint and are authentication
//! events; partner credentials never open the console.

use super::Params;
use crate::api::AppState;
use crate::console::form::{self, Fields, CSRF_FIELD, SIGN_IN_COOKIE};
use crate::console::layout::bare_page;
use crate::console::{audit, session, ConsoleError, Viewer};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

fn reason_text(reason: Option<&str>) -> Option<&'static str> {
    Some(match reason? {
        "expired" => "Your session expired. Sign in again.",
        "signed-out" => "You are signed out.",
        "revoked" => "Your credential was revoked.",
        _ => return None,
    })
}

/// The form, with a fresh token in a cookie and a hidden field (they must match when posted).
fn render(status: StatusCode, message: Option<&str>, client_id: &str, secure: bool) -> HttpResponse {
    let token = crate::util::random_token(24).unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string());
    let mut resp = bare_page(
        status,
        "Sign in to the ebond console",
        html! {
            @if let Some(m) = message {
                p.notice role="alert" { (m) }
            }
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                div.stack {
                    label for="client_id" { "Client id" }
                    input type="text" id="client_id" name="client_id" value=(client_id) autocomplete="username" required autofocus;
                }
                div.stack {
                    label for="client_secret" { "Client secret" }
                    input type="password" id="client_secret" name="client_secret" autocomplete="current-password" required;
                }
                button type="submit" { "Sign in" }
            }
            p.muted { "An operator credential: " code { "ebond admin credentials issue" } " (add " code { "--read-only" } " for one that may only look)." }
        },
    );
    let _ = resp.add_cookie(&session::console_cookie(SIGN_IN_COOKIE, token, secure));
    resp
}

pub async fn form(state: web::Data<AppState>, req: HttpRequest, q: Params) -> HttpResponse {
    render(StatusCode::OK, reason_text(q.get("reason").map(String::as_str)), "", session::secure(&state, &req))
}

pub async fn submit(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let secure = session::secure(&state, &req);
    let fields = match Fields::parse(&req, &body) {
        Ok(f) => f,
        Err(e) => return render(StatusCode::BAD_REQUEST, Some(&e.to_string()), "", secure),
    };
    let client_id = fields.get("client_id").unwrap_or("").to_string();
    if !form::sign_in_token_matches(&req, &fields) {
        return render(StatusCode::FORBIDDEN, Some(&ConsoleError::Csrf.to_string()), &client_id, secure);
    }
    match verify(&state, &req, &client_id, fields.get("client_secret").unwrap_or("")).await {
        Ok((credential_id, read_only)) => match session::open(&state, credential_id, read_only, secure).await {
            Ok(cookie) => {
                tracing::info!(client_id = %client_id, read_only, "console sign-in");
                let mut resp = HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/")).finish();
                let _ = resp.add_cookie(&cookie);
                let _ = resp.add_cookie(&session::console_cookie(SIGN_IN_COOKIE, String::new(), secure));
                resp
            }
            Err(e) => actix_web::ResponseError::error_response(&e),
        },
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            let mut resp = render(status, Some(&e.message()), &client_id, secure);
            if let Some(wait) = e.retry_after() {
                resp.headers_mut().insert(header::RETRY_AFTER, wait);
            }
            resp
        }
    }
}

/// Checks the credential as the token endpoint does (`check_client`: lockout first, every
/// failure an authentication event): `(credential id, read-only)` of an operator.
async fn verify(
    state: &AppState,
    req: &HttpRequest,
    client_id: &str,
    secret: &str,
) -> Result<(i64, bool), ConsoleError> {
    if client_id.is_empty() || secret.is_empty() {
        return Err(ConsoleError::BadRequest("give the client id and the client secret".into()));
    }
    let source = crate::api::oauth::source_of(state, req);
    let client = crate::api::oauth::check_client(state, client_id, secret.to_string(), None, &source).await?;
    let record = |outcome: &'static str, reason: &'static str| {
        crate::api::caller::record_auth_event(state, Some(client_id.to_string()), source.clone(), outcome, reason)
    };
    if !client.scope.is_operator() {
        // A partner's credential is genuine but opens nothing here: not a lockout failure.
        record("refused", "not_operator").await;
        return Err(ConsoleError::Api(crate::api::problem::ApiError::AdminOnly));
    }
    record("success", "console_sign_in").await;
    Ok((client.credential_id, client.scope == crate::auth::Scope::AdminRead))
}

pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let id = viewer.session_id;
    let done = audit::audited(&state, &req, Some(&viewer), 303, async {
        // A read-only operator may sign out too: the token is checked, not the right to act.
        form::checked(&req, &viewer, &body)?;
        let now = crate::util::now_ms();
        state.db.write(move |c| c.end_session(id, now).map_err(crate::store::StoreError::from)).await?;
        Ok(())
    })
    .await;
    done?;
    let mut resp =
        HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/sign-in?reason=signed-out")).finish();
    let _ = resp.add_cookie(&session::cookie(String::new(), session::secure(&state, &req)));
    Ok(resp)
}
