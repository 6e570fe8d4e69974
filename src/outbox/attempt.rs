//! One HTTP attempt: the partner's request built from the payload, its outbound auth, the
//! Standard Webhooks signature, the call with its timeouts, and the verdict from the answer.

use super::*;

/// The result of one attempt, before it is written down.
#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) verdict: Verdict,
    pub(super) http_status: Option<u16>,
    pub(super) excerpt: Option<String>,
    pub(super) error: Option<String>,
    /// The partner's id from a create response.
    pub(super) created_id: Option<String>,
    /// Nothing was sent (a recall for a partner that never had the ticket).
    pub(super) skipped: bool,
}

impl Attempt {
    fn failed(verdict: Verdict, error: impl Into<String>) -> Attempt {
        Attempt {
            verdict,
            http_status: None,
            excerpt: None,
            error: Some(error.into()),
            created_id: None,
            skipped: false,
        }
    }
}

impl Processor {
    /// Makes one HTTP attempt for `row`; `pid` is the partner's id for its ticket, if bonded.
    pub(super) async fn attempt(
        &self,
        row: &OutboxRow,
        pid: Option<String>,
        payload: Result<OutboxPayload, String>,
    ) -> Attempt {
        let Some(contract) = self.registry().get(&row.partner).cloned() else {
            return Attempt::failed(
                Verdict::Permanent { class: "unknown_partner" },
                "no contract loaded for this partner",
            );
        };
        let Some(outbound) = contract.outbound.as_ref() else {
            return Attempt::failed(
                Verdict::Permanent { class: "no_outbound" },
                "the contract has no [outbound] section",
            );
        };
        let payload = match payload {
            Ok(v) => v,
            Err(e) => return Attempt::failed(Verdict::Permanent { class: "bad_payload" }, e),
        };
        if row.event == "recalled" && pid.is_none() {
            return Attempt {
                skipped: true,
                ..Attempt::failed(Verdict::Delivered, "never bonded at the partner: nothing to recall")
            };
        }
        let req = match request::build(&contract, outbound, &payload, pid.as_deref()) {
            Ok(r) => r,
            Err(e) => return Attempt::failed(Verdict::Permanent { class: "no_endpoint" }, e.to_string()),
        };
        let mut refreshed = false;
        loop {
            match self.send(&contract, row, &req).await {
                Ok((status, retry_after, body)) => {
                    let oauth = matches!(outbound.auth, OutboundAuth::OAuth2ClientCredentials { .. });
                    if status == 401 && oauth && !refreshed {
                        // The partner may have revoked our token early: fetch a new one, once.
                        self.tokens.invalidate(&row.partner).await;
                        refreshed = true;
                        continue;
                    }
                    let mut verdict = retry::classify(status, retry_after);
                    let excerpt = Some(excerpt(&body, self.settings.response_excerpt_bytes));
                    let mut created_id = None;
                    let mut error = None;
                    if verdict == Verdict::Delivered && req.creates {
                        created_id = request::created_id(outbound, &body);
                        if created_id.is_none() {
                            verdict = Verdict::Permanent { class: "create_without_id" };
                            error = Some(
                                "the create response has no partner ticket id at the contract's id_pointer".into(),
                            );
                        }
                    }
                    return Attempt { verdict, http_status: Some(status), excerpt, error, created_id, skipped: false };
                }
                Err(a) => return a,
            }
        }
    }

    /// Sends the request with auth, signature and ebond headers; reads a bounded answer.
    async fn send(
        &self,
        contract: &Contract,
        row: &OutboxRow,
        req: &request::PartnerRequest,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Attempt> {
        let Some(outbound) = contract.outbound.as_ref() else {
            return Err(Attempt::failed(Verdict::Permanent { class: "no_outbound" }, "no [outbound]"));
        };
        let ts = chrono::Utc::now().timestamp();
        let mut builder = self
            .http
            .request(req.method.clone(), &req.url)
            .header("content-type", "application/json")
            .header("webhook-id", &row.delivery_id)
            .header("webhook-timestamp", ts.to_string())
            .header("x-ebond-event", &row.event)
            .header("x-ebond-delivery", &row.delivery_id)
            .header("x-ebond-version", req.version.to_string());
        if !req.ticket.is_empty() {
            builder = builder.header("x-ebond-ticket", req.ticket.as_str());
        }
        for (k, v) in &outbound.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(secret_ref) = &outbound.signing_secret {
            let signed =
                self.secrets.resolve(&row.partner, secret_ref).await.map_err(|e| e.to_string()).and_then(|s| {
                    crate::webhooks::sign(s.expose(), &row.delivery_id, ts, &req.body).map_err(|e| e.to_string())
                });
            match signed {
                Ok(sig) => builder = builder.header("webhook-signature", sig),
                Err(e) => {
                    return Err(Attempt::failed(Verdict::Retry { class: "signing_config", retry_after: None }, e))
                }
            }
        }
        let builder = match self.tokens.authorize(&self.secrets, &row.partner, &outbound.auth, builder).await {
            Ok(b) => b,
            Err(e) => return Err(Attempt::failed(Verdict::Retry { class: "auth", retry_after: None }, e.to_string())),
        };
        let response = match builder.body(req.body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                let class = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                return Err(Attempt::failed(Verdict::Retry { class, retry_after: None }, e.to_string()));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now()));
        let body = match read_bounded(response, 64 * 1024).await {
            Ok(b) => b,
            Err(e) => {
                let class = if e.is_timeout() { "timeout" } else { "transport" };
                return Err(Attempt::failed(Verdict::Retry { class, retry_after: None }, e.to_string()));
            }
        };
        Ok((status, retry_after, body))
    }
}

/// Reads at most `limit` bytes of a response body (the rest is dropped).
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn excerpt(body: &[u8], limit: usize) -> String {
    let cut = &body[..body.len().min(limit)];
    String::from_utf8_lossy(cut).into_owned()
}
