//! Reading a partner's system over HTTP: GET with the contract's outbound auth, its rate limit,
//! `Retry-After` on 429 / 503, a retry of a failing request on the contract's schedule, one
//! fresh OAuth2 token after a 401; then the pieces of a page (records, next page) and of a read.

use super::PullError;
use crate::contract::{Contract, Paging, Pull};
use crate::outbox::partner_auth::TokenCache;
use crate::outbox::retry::parse_retry_after;
use crate::secrets::Secrets;
use crate::util::TokenBucket;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// One page of a partner's list.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Value>,
    /// How to ask for the next page; `None` on the last.
    pub next: Option<NextPage>,
}

/// Where the next page is.
#[derive(Debug, Clone, PartialEq)]
pub enum NextPage {
    Offset(u64),
    Cursor(String),
    Url(String),
}

/// HTTP reads of partners' systems, shared by every pull and reconciliation run of a process.
pub struct Reader {
    http: reqwest::Client,
    tokens: TokenCache,
    secrets: Secrets,
    /// Per partner: the contract's `rate_limit_per_minute`, for reads.
    buckets: Mutex<HashMap<String, TokenBucket>>,
    max_retry_after: Duration,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    pub fn new(secrets: Secrets, settings: &crate::config::OutboxSettings) -> Result<Reader, reqwest::Error> {
        let timeout = Duration::from_millis(settings.request_timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ebond/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Reader {
            http,
            tokens: TokenCache::new(timeout)?,
            secrets,
            buckets: Mutex::new(HashMap::new()),
            max_retry_after: Duration::from_secs(settings.retry_after_max_secs),
        })
    }

    /// Waits for a token of the partner's rate limit.
    async fn pace(&self, contract: &Contract) {
        let per_minute = contract.outbound.as_ref().map_or(60, |o| o.rate_limit_per_minute);
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
                let bucket = buckets.entry(contract.id.to_string()).or_insert_with(|| TokenBucket::new(per_minute));
                bucket.take(per_minute)
            };
            match wait {
                Ok(()) => return,
                Err(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// GETs `url` as the partner's contract says: `Ok(None)` for 404, the JSON body and headers
    /// for 2xx. 429, 503, other 5xx and transport errors are retried after `Retry-After` or the
    /// contract's schedule; once it is used up, the last failure is the error.
    pub async fn get(
        &self,
        contract: &Contract,
        url: &str,
    ) -> Result<Option<(Value, reqwest::header::HeaderMap)>, PullError> {
        // What messages and logs show: no user info, no credential in the query.
        let shown = shown(url);
        let auth = contract.outbound.as_ref().map(|o| &o.auth).unwrap_or(&crate::contract::OutboundAuth::None);
        let schedule: &[Duration] = contract.outbound.as_ref().map_or(&[], |o| o.retry_schedule.as_slice());
        let mut retried_401 = false;
        let mut attempt = 0usize;
        loop {
            self.pace(contract).await;
            let mut req = self.http.get(url).header("Accept", "application/json");
            if let Some(o) = &contract.outbound {
                for (k, v) in &o.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
            }
            let req = self
                .tokens
                .authorize(&self.secrets, &contract.id, auth, req)
                .await
                .map_err(|e| PullError::Partner(format!("credentials: {e}")))?;
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let retry_after = headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    match status {
                        200..=299 => {
                            let body = resp.bytes().await.map_err(|e| {
                                PullError::Partner(format!(
                                    "GET {shown}: {}",
                                    crate::util::describe_error(&e.without_url())
                                ))
                            })?;
                            let doc = serde_json::from_slice(&body)
                                .map_err(|e| PullError::Partner(format!("GET {shown}: the answer is not JSON: {e}")))?;
                            return Ok(Some((doc, headers)));
                        }
                        404 => return Ok(None),
                        401 if !retried_401
                            && matches!(auth, crate::contract::OutboundAuth::OAuth2ClientCredentials { .. }) =>
                        {
                            // The cached token may have been revoked: one fresh token, once.
                            retried_401 = true;
                            self.tokens.invalidate(&contract.id).await;
                            continue;
                        }
                        408 | 425 | 429 | 500..=599 => (format!("GET {shown} answered {status}"), retry_after),
                        _ => return Err(PullError::Partner(format!("GET {shown} answered {status}"))),
                    }
                }
                Err(e) => (format!("GET {shown}: {}", crate::util::describe_error(&e.without_url())), None),
            };
            let (why, retry_after) = failure;
            let Some(scheduled) = schedule.get(attempt) else {
                return Err(PullError::Partner(why));
            };
            attempt += 1;
            let wait = retry_after.map_or(*scheduled, |r| r.min(self.max_retry_after));
            tracing::info!(partner = %contract.id, attempt, wait_ms = wait.as_millis() as u64, reason = %why, "partner read failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One page of records changed since `since` (partner time, ms).
    pub async fn list(
        &self,
        contract: &Contract,
        pull: &Pull,
        since: i64,
        next: Option<&NextPage>,
    ) -> Result<Page, PullError> {
        let url = page_url(pull, since, next)?;
        let Some((doc, headers)) = self.get(contract, &url).await? else {
            return Err(PullError::Partner(format!("GET {} answered 404: check [pull] list_url", shown(&url))));
        };
        let records = match &pull.records_pointer {
            Some(p) => p.get(&doc),
            None => Some(&doc),
        };
        let Some(Value::Array(records)) = records else {
            let at = pull.records_pointer.as_ref().map_or("the answer", |p| p.as_str());
            return Err(PullError::Partner(format!("GET {}: no array of records at {at}", shown(&url))));
        };
        let records = records.clone();
        let full = records.len() as u32 >= pull.batch_size;
        let next = match &pull.paging {
            Paging::Offset { .. } => {
                let at = match next {
                    Some(NextPage::Offset(o)) => *o,
                    _ => 0,
                };
                full.then(|| NextPage::Offset(at + records.len() as u64))
            }
            Paging::Cursor { pointer, .. } => match pointer.get(&doc) {
                Some(Value::String(c)) if !c.is_empty() && !records.is_empty() => Some(NextPage::Cursor(c.clone())),
                Some(Value::Number(n)) if !records.is_empty() => Some(NextPage::Cursor(n.to_string())),
                _ => None,
            },
            Paging::Link => match next_link(&headers).filter(|_| !records.is_empty()) {
                Some(link) => Some(NextPage::Url(same_origin(&url, &link)?)),
                None => None,
            },
        };
        Ok(Page { records, next })
    }

    /// The partner's copy of one ticket (`None`: it has none).
    pub async fn read(&self, contract: &Contract, partner_ticket_id: &str) -> Result<Option<Value>, PullError> {
        let Some(outbound) = &contract.outbound else { return Err(PullError::NoReader(contract.id.to_string())) };
        let Some(template) = &outbound.read_url else { return Err(PullError::NoReader(contract.id.to_string())) };
        let url = template.replace("{partner_ticket_id}", &crate::util::encode_path_segment(partner_ticket_id));
        let Some((doc, _)) = self.get(contract, &url).await? else { return Ok(None) };
        let found = match &outbound.read_pointer {
            Some(p) => p.get(&doc).cloned(),
            None => Some(doc),
        };
        Ok(match found {
            Some(Value::Array(mut items)) => (!items.is_empty()).then(|| items.swap_remove(0)),
            Some(Value::Null) | None => None,
            Some(record) => Some(record),
        })
    }
}

/// The URL of one page: the window's start (in the URL or as a parameter), the page size and
/// the page's position.
fn page_url(pull: &Pull, since: i64, next: Option<&NextPage>) -> Result<String, PullError> {
    if let Some(NextPage::Url(u)) = next {
        return Ok(u.clone());
    }
    let since_text = pull.since_format.format(since);
    let base = pull.list_url.replace("{since}", &crate::util::encode_path_segment(&since_text));
    let mut url =
        reqwest::Url::parse(&base).map_err(|e| PullError::Partner(format!("list_url `{}`: {e}", shown(&base))))?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(p) = &pull.since_param {
            q.append_pair(p, &since_text);
        }
        q.append_pair(&pull.limit_param, &pull.batch_size.to_string());
        match (&pull.paging, next) {
            (Paging::Offset { param }, Some(NextPage::Offset(o))) => {
                q.append_pair(param, &o.to_string());
            }
            (Paging::Offset { param }, _) => {
                q.append_pair(param, "0");
            }
            (Paging::Cursor { param, .. }, Some(NextPage::Cursor(c))) => {
                q.append_pair(param, c);
            }
            _ => {}
        }
    }
    Ok(url.to_string())
}

/// A URL as messages and logs show it: without user info, credentials in the query masked.
fn shown(url: &str) -> String {
    let plain = crate::config::redact_url_password(url);
    match plain.split_once('?') {
        Some((base, query)) => format!("{base}?{}", crate::util::redact_query(query)),
        None => plain,
    }
}

/// A `Link: rel="next"` target resolved against the page it came with (it may be relative); the
/// partner's credentials go only to the list's own scheme, host and port.
fn same_origin(page: &str, link: &str) -> Result<String, PullError> {
    let base = reqwest::Url::parse(page).map_err(|e| PullError::Partner(format!("list URL: {e}")))?;
    let next = base.join(link).map_err(|e| PullError::Partner(format!("Link rel=\"next\" `{}`: {e}", shown(link))))?;
    if next.origin() != base.origin() {
        return Err(PullError::Partner(format!(
            "Link rel=\"next\" points at {}, not the list's own origin: not followed (the contract's credentials would go there)",
            shown(next.as_str())
        )));
    }
    Ok(next.to_string())
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if any.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all("link") {
        let Ok(text) = value.to_str() else { continue };
        for link in text.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return target.strip_prefix('<').and_then(|t| t.strip_suffix('>')).map(str::to_string);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn link_headers_give_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://x.example/p?page=1>; rel=\"prev\", <https://x.example/p?page=3>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x.example/p?page=3"));
        assert_eq!(next_link(&HeaderMap::new()), None);
        let page = "https://x.example/p?page=1";
        assert_eq!(same_origin(page, "/p?page=2").unwrap(), "https://x.example/p?page=2");
        assert!(same_origin(page, "https://elsewhere.example/p?page=2").is_err());
        assert!(same_origin(page, "http://x.example/p?page=2").is_err());
        assert_eq!(
            shown("https://u:pw@x.example/l?api_key=k&limit=5"),
            "https://u:***@x.example/l?api_key=***&limit=5"
        );
    }

    #[test]
    fn servicenow_pages_carry_the_window_in_the_query() {
        let registry =
            crate::contract::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")).unwrap();
        let pull = registry.get("servicenow").unwrap().pull.as_ref().unwrap();
        let url = page_url(pull, 1_764_576_000_000, Some(&NextPage::Offset(500))).unwrap();
        assert!(
            url.contains("sysparm_query=sys_updated_on%3E%3D2025-12-01%2008%3A00%3A00%5EORDERBYsys_updated_on"),
            "{url}"
        );
        assert!(url.ends_with("&sysparm_limit=500&sysparm_offset=500"), "{url}");
    }
}
