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
use actix_web::web;

/// A page's size: the admin API's default page size, within its maximum.
pub fn page_size(state: &AppState, asked: Option<i64>) -> i64 {
    asked.unwrap_or(50).clamp(1, state.settings.limits.max_page_size)
}

/// `?name=value` of the request, empty values as absent.
pub fn param(q: &web::Query<std::collections::HashMap<String, String>>, name: &str) -> Option<String> {
    q.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// An optional number from the query (a malformed one is a clear 400).
pub fn number(
    q: &web::Query<std::collections::HashMap<String, String>>,
    name: &str,
) -> Result<Option<i64>, super::ConsoleError> {
    param(q, name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| super::ConsoleError::BadRequest(format!("`{name}` must be a whole number, not `{v}`")))
        })
        .transpose()
}

/// The query of a console page.
pub type Params = web::Query<std::collections::HashMap<String, String>>;

/// The options of a partner filter: every loaded partner, after "every partner".
pub fn partner_options(state: &AppState) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "every partner".to_string())];
    out.extend(state.registry().partners().map(|c| (c.id.to_string(), c.id.to_string())));
    out
}
