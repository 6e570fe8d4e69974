//! Console forms: an `application/x-www-form-urlencoded` body, read only after the session is
//! known, whose `csrf` field must be the session's token (the synchronizer-token pattern; the
//! sign-in form, before any session, pairs a field with a cookie instead).

use super::{ConsoleError, Viewer};
use actix_web::{web, HttpMessage, HttpRequest};
use std::collections::HashMap;

/// The name of the hidden field every form carries.
pub const CSRF_FIELD: &str = "csrf";

/// A posted form's fields (a repeated name keeps its last value).
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    /// Parses `body`; its digest goes to the audit row.
    pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<Fields, ConsoleError> {
        req.extensions_mut().insert(crate::api::audit::BodyDigest(crate::util::sha256_hex(body)));
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ConsoleError::BadRequest(format!("the form could not be read: {e}")))?;
        // No stored value holds a NUL, and PostgreSQL could not even look one up.
        if let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(ConsoleError::BadRequest(format!(
                "the form field `{}` holds a NUL character",
                k.replace('\0', "\\0")
            )));
        }
        Ok(Fields(pairs.into_iter().collect()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A field the form must have.
    pub fn require(&self, name: &str) -> Result<&str, ConsoleError> {
        self.get(name).ok_or_else(|| ConsoleError::BadRequest(format!("the form has no `{name}`")))
    }

    /// Every field whose name starts with `prefix`, the prefix cut off.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0.iter().filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v.as_str())))
    }
}

/// A form posted in `viewer`'s session: its CSRF token checked (constant time).
pub fn checked(req: &HttpRequest, viewer: &Viewer, body: &web::Bytes) -> Result<Fields, ConsoleError> {
    let fields = Fields::parse(req, body)?;
    let sent = fields.get(CSRF_FIELD).unwrap_or("");
    if !crate::util::constant_time_eq(sent.as_bytes(), viewer.csrf.as_bytes()) {
        return Err(ConsoleError::Csrf);
    }
    Ok(fields)
}

/// The body of an action by `viewer`: [`checked`], then whether the operator may act at all.
pub fn action(req: &HttpRequest, viewer: &Viewer, body: &web::Bytes) -> Result<Fields, ConsoleError> {
    let fields = checked(req, viewer, body)?;
    viewer.may_act()?;
    Ok(fields)
}

/// The sign-in form's cookie: it holds the token the form's hidden field must repeat.
pub const SIGN_IN_COOKIE: &str = "ebond_console_sign_in";

/// Checks the sign-in form's token against its cookie.
pub fn sign_in_token_matches(req: &HttpRequest, fields: &Fields) -> bool {
    let cookie = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    let sent = fields.get(CSRF_FIELD).unwrap_or("");
    !cookie.is_empty() && crate::util::constant_time_eq(sent.as_bytes(), cookie.as_bytes())
}
