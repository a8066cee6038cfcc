//! The OAuth client-credentials token (`genesys-api.md` §1.2–1.4): Basic
//! auth on the login host, `grant_type=client_credentials`, cached and
//! renewed once `token_renew_fraction` of its life has passed (there is no
//! refresh token for this grant). One fetch at a time; the token never
//! leaves this module except as a bearer header value.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Why a token could not be had; each says what an operator should check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Genesys refused the client (`invalid_client`, …).
    #[error("Genesys refused the OAuth client ({error}: {description}); check GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET, that the client uses the Client Credentials grant, and that GENESYSCLOUD_REGION is the org's region (a client of another region is refused the same way)")]
    Rejected { error: String, description: String },
    /// The login host could not be reached.
    #[error("cannot reach the Genesys login host {host}: {reason}; check GENESYSCLOUD_REGION (or GENESYSCLOUD_LOGIN_BASE) and the network")]
    Unreachable { host: String, reason: String },
    /// The login host answered something that is not a token.
    #[error("unexpected answer from the Genesys login host {host}: {reason}")]
    BadResponse { host: String, reason: String },
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
    description: Option<String>,
}

#[derive(Clone)]
struct Cached {
    /// `Authorization` header value, e.g. `Bearer abc`.
    header: Rc<str>,
    renew_at: Instant,
    expires_at: Instant,
}

/// The token cache of one OAuth client.
pub struct Auth {
    token_url: String,
    basic: String,
    renew_fraction: f64,
    cached: RefCell<Option<Cached>>,
    /// Single-flight: one fetch at a time, others wait and reuse it.
    fetch_lock: tokio::sync::Mutex<()>,
}

impl Auth {
    pub fn new(
        login_base: &str,
        client_id: &str,
        client_secret: &str,
        renew_fraction: f64,
    ) -> Auth {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{client_id}:{client_secret}"));
        Auth {
            token_url: format!("{login_base}/oauth/token"),
            basic: format!("Basic {basic}"),
            renew_fraction,
            cached: RefCell::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets the token (after a 401), so the next call fetches a new one.
    pub fn invalidate(&self) {
        self.cached.borrow_mut().take();
    }

    /// True when the cached token should be renewed now.
    pub fn needs_renewal(&self) -> bool {
        self.cached
            .borrow()
            .as_ref()
            .is_none_or(|c| Instant::now() >= c.renew_at)
    }

    fn current(&self) -> Option<Rc<str>> {
        let now = Instant::now();
        self.cached
            .borrow()
            .as_ref()
            .filter(|c| now < c.renew_at && now < c.expires_at)
            .map(|c| c.header.clone())
    }

    /// A valid `Authorization` header value, fetching a token if needed.
    pub async fn header(&self, client: &awc::Client) -> Result<Rc<str>, AuthError> {
        if let Some(h) = self.current() {
            return Ok(h);
        }
        let _guard = self.fetch_lock.lock().await;
        if let Some(h) = self.current() {
            return Ok(h);
        }
        let fetched = self.fetch(client).await?;
        let header = fetched.header.clone();
        *self.cached.borrow_mut() = Some(fetched);
        Ok(header)
    }

    async fn fetch(&self, client: &awc::Client) -> Result<Cached, AuthError> {
        let host = self.token_url.clone();
        let started = Instant::now();
        let mut resp = client
            .post(&self.token_url)
            .insert_header(("Authorization", self.basic.as_str()))
            .content_type("application/x-www-form-urlencoded")
            .send_body("grant_type=client_credentials")
            .await
            .map_err(|e| AuthError::Unreachable {
                host: host.clone(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        let body = resp
            .body()
            .limit(64 * 1024)
            .await
            .map_err(|e| AuthError::Unreachable {
                host: host.clone(),
                reason: e.to_string(),
            })?;
        let parsed: TokenResponse =
            super::lenient::from_slice(&body).map_err(|_| AuthError::BadResponse {
                host: host.clone(),
                reason: format!("HTTP {status} with a body that is not a token response"),
            })?;
        if let Some(error) = parsed.error {
            return Err(AuthError::Rejected {
                error,
                description: parsed
                    .error_description
                    .or(parsed.description)
                    .unwrap_or_default(),
            });
        }
        let (Some(token), true) = (parsed.access_token, status.is_success()) else {
            return Err(AuthError::BadResponse {
                host,
                reason: format!("HTTP {status} without access_token"),
            });
        };
        // Lifetime 5 min – 48 h on Genesys, 24 h by default (§1.3).
        let life = Duration::from_secs(parsed.expires_in.unwrap_or(86_400).max(1));
        let token_type = parsed.token_type.unwrap_or_else(|| "bearer".into());
        // `bearer` casing is UNCONFIRMED (§1.3): always send the canonical `Bearer`.
        let scheme = if token_type.eq_ignore_ascii_case("bearer") {
            "Bearer".to_string()
        } else {
            token_type
        };
        tracing::info!(
            expires_in_secs = life.as_secs(),
            "obtained Genesys access token"
        );
        Ok(Cached {
            header: Rc::from(format!("{scheme} {token}")),
            renew_at: started + life.mul_f64(self.renew_fraction),
            expires_at: started + life,
        })
    }
}
