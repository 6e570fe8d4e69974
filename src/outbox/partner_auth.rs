//! Outbound authentication per contract: OAuth 2.0 client credentials through the `oauth2`
//! crate (token cached, refreshed before expiry and once more after a 401), HTTP Basic, API-key
//! header. Secrets come from their references at use.

use crate::contract::OutboundAuth;
use crate::secrets::{SecretError, Secrets};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("token endpoint: {0}")]
    Token(String),
}

#[derive(Debug)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// OAuth2 access tokens per partner, shared by every delivery of this process.
#[derive(Debug)]
pub struct TokenCache {
    http: reqwest::Client,
    /// One slot per partner: a slow token endpoint delays only its own partner's pushes.
    tokens: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Cached>>>>>,
}

impl TokenCache {
    pub fn new(timeout: Duration) -> Result<TokenCache, reqwest::Error> {
        // No redirects on the token endpoint (the oauth2 crate's advice against SSRF).
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout).build()?;
        Ok(TokenCache { http, tokens: std::sync::Mutex::new(HashMap::new()) })
    }

    fn slot(&self, partner: &str) -> Arc<Mutex<Option<Cached>>> {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(partner.to_string()).or_default().clone()
    }

    /// Forgets a partner's token (after the partner answered 401).
    pub async fn invalidate(&self, partner: &str) {
        *self.slot(partner).lock().await = None;
    }

    /// Adds the contract's credentials to `req`.
    pub async fn authorize(
        &self,
        secrets: &Secrets,
        partner: &str,
        auth: &OutboundAuth,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, CredentialError> {
        Ok(match auth {
            OutboundAuth::None => req,
            OutboundAuth::Basic { username, password } => {
                req.basic_auth(username, Some(secrets.resolve(partner, password).await?.expose()))
            }
            OutboundAuth::ApiKey { header, key } => {
                req.header(header.as_str(), secrets.resolve(partner, key).await?.expose())
            }
            OutboundAuth::OAuth2ClientCredentials { token_url, client_id, client_secret, scope } => {
                let token =
                    self.bearer(secrets, partner, token_url, client_id, client_secret, scope.as_deref()).await?;
                req.bearer_auth(token)
            }
        })
    }

    async fn bearer(
        &self,
        secrets: &Secrets,
        partner: &str,
        token_url: &str,
        client_id: &str,
        secret_ref: &crate::contract::SecretRef,
        scope: Option<&str>,
    ) -> Result<String, CredentialError> {
        // Held across the fetch so concurrent deliveries to this partner wait for one request.
        let slot = self.slot(partner);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let secret = secrets.resolve(partner, secret_ref).await?;
        let client = BasicClient::new(ClientId::new(client_id.to_string()))
            .set_client_secret(ClientSecret::new(secret.expose().to_string()))
            .set_token_uri(TokenUrl::new(token_url.to_string()).map_err(|e| CredentialError::Token(e.to_string()))?);
        let mut request = client.exchange_client_credentials();
        if let Some(s) = scope {
            for part in s.split_whitespace() {
                request = request.add_scope(Scope::new(part.to_string()));
            }
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|e| CredentialError::Token(crate::util::describe_error(&e)))?;
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
        // Refresh once 80 % of the lifetime has passed, so no request carries a dying token.
        let refresh_at = Instant::now() + lifetime.mul_f64(0.8);
        let token = response.access_token().secret().clone();
        *cached = Some(Cached { token: token.clone(), refresh_at });
        tracing::info!(partner, expires_in_secs = lifetime.as_secs(), "outbound OAuth2 token fetched");
        Ok(token)
    }
}
