//! One module per console page (or group of pages): each reads through the shared store and
//! sync functions and renders with [`super::layout`].

pub mod audit_pages;
pub mod conflicts;
pub mod contracts;
pub mod dead_letters;
pub mod overview;
pub mod partner;
pub mod reconcile;
pub mod sign_in;
pub mod ticket;

use crate::api::AppState;

/// A page's size: the admin API's default page size, within its maximum.
pub fn page_size(state: &AppState, asked: Option<i64>) -> i64 {
    asked.unwrap_or(50).clamp(1, state.settings.limits.max_page_size)
}

/// `?name=value` of the request, empty values as absent.
pub fn param(q: &Params, name: &str) -> Option<String> {
    q.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// An optional number from the query (a malformed one is a clear 400).
pub fn number(q: &Params, name: &str) -> Result<Option<i64>, super::ConsoleError> {
    param(q, name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| super::ConsoleError::BadRequest(format!("`{name}` must be a whole number, not `{v}`")))
        })
        .transpose()
}

/// The query of a console page: its parameters decoded, a malformed query or one holding a
/// NUL (no stored value has one, and PostgreSQL could not even look one up) a clear 400.
pub struct Params(std::collections::HashMap<String, String>);

impl std::ops::Deref for Params {
    type Target = std::collections::HashMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl actix_web::FromRequest for Params {
    type Error = super::ConsoleError;
    type Future = std::future::Ready<Result<Params, super::ConsoleError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()))
    }
}

fn parse_query(query: &str) -> Result<Params, super::ConsoleError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| super::ConsoleError::BadRequest(format!("the query could not be read: {e}")))?;
    if let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(super::ConsoleError::BadRequest(format!(
            "the query parameter `{}` holds a NUL character",
            k.replace('\0', "\\0")
        )));
    }
    Ok(Params(pairs.into_iter().collect()))
}

/// The options of a partner filter: every loaded partner, after "every partner".
pub fn partner_options(state: &AppState) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "every partner".to_string())];
    out.extend(state.registry().partners().map(|c| (c.id.to_string(), c.id.to_string())));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_with_a_nul_are_refused() {
        assert_eq!(super::parse_query("q=ACME-1&partner=acme").unwrap().get("q").map(String::as_str), Some("ACME-1"));
        assert!(super::parse_query("q=A%00B").is_err());
        assert!(super::parse_query("").unwrap().is_empty());
    }
}
