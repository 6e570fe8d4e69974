//! Console sessions: made at sign-in, kept in the database (every gateway process honours
//! them; only the SHA-256 of the cookie's token is stored), ended by sign-out, by the idle and
//! absolute limits (`auth.console_idle_secs`, `auth.console_absolute_secs`), or by revoking
//! the credential. The cookie is `HttpOnly`, `SameSite=Strict`, and `Secure` over HTTPS.

use super::ConsoleError;
use crate::api::AppState;
use crate::store::console::{NewSession, SessionRow};
use crate::store::StoreError;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

/// The session cookie.
pub const COOKIE: &str = "ebond_console";

/// The signed-in operator of one console request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session_id: i64,
    pub credential_id: i64,
    pub client_id: String,
    pub read_only: bool,
    /// What every form of this session sends back.
    pub csrf: String,
}

impl Viewer {
    /// How the operator is recorded (audit trail, resolutions), as on the admin API.
    pub fn label(&self) -> String {
        format!("operator:{}", self.credential_id)
    }

    /// Refuses a read-only operator's action.
    pub fn may_act(&self) -> Result<(), ConsoleError> {
        if self.read_only {
            Err(ConsoleError::ReadOnly)
        } else {
            Ok(())
        }
    }
}

/// Whether a stored session still counts at `now`, and if not why (shown at sign-in).
pub fn standing(row: &SessionRow, now: i64, idle_secs: i64) -> Result<(), &'static str> {
    if row.ended_at.is_some() {
        return Err("signed-out");
    }
    if row.revoked_at.is_some() {
        return Err("revoked");
    }
    if now >= row.expires_at || now - row.last_seen_at > idle_secs * 1000 {
        return Err("expired");
    }
    Ok(())
}

/// How stale `last_seen_at` may get before a request writes it again: a page view costs no
/// write most of the time, and the idle limit stays exact to within a quarter of itself.
fn touch_after_ms(idle_secs: i64) -> i64 {
    (idle_secs * 1000 / 4).clamp(1000, 60_000)
}

impl FromRequest for Viewer {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ConsoleError::BadRequest("the console is not served here".into()))?;
            let token = req.cookie(COOKIE).map(|c| c.value().to_string()).ok_or(ConsoleError::SignIn("signed-out"))?;
            let hash = crate::util::sha256_hex(token.as_bytes());
            let row = state
                .db
                .read(move |c| c.session_by_token(&hash).map_err(StoreError::from))
                .await?
                .ok_or(ConsoleError::SignIn("signed-out"))?;
            let now = crate::util::now_ms();
            let idle = state.settings.auth.console_idle_secs;
            standing(&row, now, idle).map_err(ConsoleError::SignIn)?;
            if now - row.last_seen_at > touch_after_ms(idle) {
                let id = row.id;
                state.db.write(move |c| c.touch_session(id, now).map_err(StoreError::from)).await?;
            }
            let viewer = Viewer {
                session_id: row.id,
                credential_id: row.credential_id,
                client_id: row.client_id,
                read_only: row.read_only,
                csrf: row.csrf_token,
            };
            // The audit middleware of shared code records operators by this.
            req.extensions_mut().insert(crate::api::audit::AuditActor(viewer.label()));
            Ok(viewer)
        })
    }
}

/// A new session for a verified operator credential; the cookie to set.
pub async fn open(
    state: &AppState,
    credential_id: i64,
    read_only: bool,
    secure: bool,
) -> Result<Cookie<'static>, ConsoleError> {
    let token = crate::util::random_token(32).map_err(|e| crate::api::problem::ApiError::Internal(e.to_string()))?;
    let csrf = crate::util::random_token(24).map_err(|e| crate::api::problem::ApiError::Internal(e.to_string()))?;
    let hash = crate::util::sha256_hex(token.as_bytes());
    let now = crate::util::now_ms();
    let expires_at = now + state.settings.auth.console_absolute_secs * 1000;
    state
        .db
        .write(move |c| {
            c.insert_session(&NewSession {
                token_hash: &hash,
                credential_id,
                read_only,
                csrf_token: &csrf,
                now,
                expires_at,
            })
            .map_err(StoreError::from)
        })
        .await?;
    Ok(cookie(token, secure))
}

/// The session cookie holding `value` (empty and expired: the browser forgets it).
pub fn cookie(value: String, secure: bool) -> Cookie<'static> {
    console_cookie(COOKIE, value, secure)
}

/// A console cookie (the session's, or the sign-in form's): `HttpOnly`, `SameSite=Strict`,
/// path `/console`, `Secure` over HTTPS; an empty value makes the browser forget it.
pub fn console_cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    let forget = value.is_empty();
    let mut c = Cookie::build(name, value)
        .path(super::ROOT)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish();
    if forget {
        c.make_removal();
    }
    c
}

/// Whether the browser reached the console over HTTPS: the gateway's own TLS, or a trusted
/// proxy (`security.trusted_proxies`) that terminated it and says so in `X-Forwarded-Proto`.
pub fn secure(state: &AppState, req: &HttpRequest) -> bool {
    if state.settings.tls.cert_file.is_some() {
        return true;
    }
    let from_proxy = req.peer_addr().is_some_and(|p| state.trusted_proxies.iter().any(|n| n.contains(&p.ip())));
    from_proxy
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(last_seen_at: i64, expires_at: i64) -> SessionRow {
        SessionRow {
            id: 1,
            credential_id: 1,
            client_id: "admin.x".into(),
            read_only: false,
            csrf_token: "t".into(),
            created_at: 0,
            last_seen_at,
            expires_at,
            ended_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn idle_and_absolute_limits_end_a_session() {
        assert_eq!(standing(&row(1_000, 100_000), 5_000, 10), Ok(()));
        assert_eq!(standing(&row(1_000, 100_000), 12_000, 10), Err("expired"), "idle for 11 s of 10");
        assert_eq!(standing(&row(99_000, 100_000), 100_000, 10), Err("expired"), "absolute limit");
        let mut ended = row(1_000, 100_000);
        ended.ended_at = Some(2_000);
        assert_eq!(standing(&ended, 3_000, 10), Err("signed-out"));
        let mut revoked = row(1_000, 100_000);
        revoked.revoked_at = Some(2_000);
        assert_eq!(standing(&revoked, 3_000, 10), Err("revoked"));
    }

    #[test]
    fn touches_are_rare_but_keep_the_idle_limit() {
        assert_eq!(touch_after_ms(1800), 60_000);
        assert_eq!(touch_after_ms(8), 2_000);
        assert_eq!(touch_after_ms(1), 1_000);
    }
}
