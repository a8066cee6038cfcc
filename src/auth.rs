//! Who may call the gateway, and what they may see and change.
//!
//! Owns the `[auth]` configuration, the verified credentials (hashed API
//! keys, the JWT verifier), roles, the one-time stream tickets (their
//! hash and stored form; where they live is `crate::http::guard`), origins,
//! division scoping ([`scope_filter`]) and the typed [`AuthError`]. No
//! actix-web types: the HTTP edge (middleware, authentication of a request,
//! the [`Principal`] extractor) is [`crate::http::guard`], and whether a
//! caller may use a route is the route table's policy (`crate::http::table`).
//!
//! Auth may be off only on a loopback listener ([`exposure_check`]); then
//! every caller is the explicit [`Principal::anonymous`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::registry::Filter;

/// A caller's role. Each includes the rights of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: snapshots, agents, history, streams.
    Viewer,
    /// Viewer plus presence writes (single and bulk).
    Supervisor,
    /// Supervisor plus audit log, webhooks, replay and `/metrics`.
    Admin,
}

impl Role {
    /// Parses `viewer` / `supervisor` / `admin` (JWT claims).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// One API key (`[[auth.api_keys]]`). The key itself is never stored:
/// only the hex SHA-256 of it (`printf %s "$KEY" | sha256sum`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key; recorded as the actor in the audit log.
    pub name: String,
    /// Lower- or upper-case hex SHA-256 of the key (64 characters).
    pub sha256: String,
    /// `viewer`, `supervisor` or `admin`.
    pub role: Role,
    /// Division ids the key is limited to; empty: every division.
    #[serde(default)]
    pub divisions: Vec<String>,
}

/// JWT verification (`[auth.jwt]`): HS256 with a shared secret and/or
/// RS256 / ES256 with the public keys of a JWKS file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// HS256 shared secret (at least 32 bytes). Prefer the environment:
    /// `PRESENCE_GATEWAY__JWT__…` is not available for nested tables, so
    /// keep the file readable by the gateway only.
    pub hs256_secret: Option<String>,
    /// A JWKS file (`{"keys":[…]}`) holding RS256 / ES256 public keys,
    /// picked by the token's `kid` (or tried in turn without one).
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Claim holding the role (`viewer`/`supervisor`/`admin`). Default `role`.
    pub role_claim: String,
    /// Claim holding the division ids (array of strings; absent or empty:
    /// every division). Default `divisions`.
    pub divisions_claim: String,
    /// Clock skew allowed on `exp`/`nbf`, in seconds. Default 30.
    pub leeway_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hs256_secret: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            role_claim: "role".into(),
            divisions_claim: "divisions".into(),
            leeway_secs: 30,
        }
    }
}

/// `[auth]`: how clients prove who they are. With neither API keys nor a
/// JWT section, auth is off, which `serve` allows on loopback only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// API keys, stored hashed.
    pub api_keys: Vec<ApiKeyConfig>,
    /// JWT verification.
    pub jwt: Option<JwtConfig>,
    /// Lifetime of a stream ticket (`POST /api/v1/tickets`), in seconds.
    /// 1 to 300; default 30.
    pub ticket_ttl_secs: u64,
    /// Serve `/metrics` without credentials (for a scraper on a private
    /// network). Default false: `/metrics` needs an admin.
    pub public_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_keys: Vec::new(),
            jwt: None,
            ticket_ttl_secs: 30,
            public_metrics: false,
        }
    }
}

impl AuthConfig {
    /// True when any credential is configured.
    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }

    /// Checks keys, secrets and files; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.name.trim().is_empty() {
                return Err(format!("auth.api_keys[{i}].name must not be empty"));
            }
            if !names.insert(k.name.as_str()) {
                return Err(format!(
                    "auth.api_keys[{i}].name = {:?} is used twice",
                    k.name
                ));
            }
            if decode_hex32(&k.sha256).is_none() {
                return Err(format!(
                    "auth.api_keys[{i}].sha256 must be 64 hex characters (the SHA-256 of the key)"
                ));
            }
        }
        if !(1..=300).contains(&self.ticket_ttl_secs) {
            return Err(format!(
                "auth.ticket_ttl_secs = {}: must be between 1 and 300",
                self.ticket_ttl_secs
            ));
        }
        if let Some(j) = &self.jwt {
            JwtVerifier::new(j)?;
        }
        Ok(())
    }
}

/// Refuses to expose an unauthenticated gateway: auth may be off only on
/// a loopback listener (the demo, tests).
pub fn exposure_check(auth: &AuthConfig, listen: SocketAddr) -> Result<(), String> {
    if auth.enabled() || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "server.listen = {listen} is not a loopback address and no authentication is configured; \
         add [[auth.api_keys]] or [auth.jwt] (see docs/security.md), or listen on 127.0.0.1"
    ))
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of a presented key.
fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The hex SHA-256 of a stream ticket: what the store keeps instead of
/// the ticket (a leaked table row opens no stream).
pub fn ticket_hash(ticket: &str) -> String {
    sha256(ticket.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random ticket: 32 bytes, base64url without padding (43 characters).
pub(crate) fn new_ticket() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

/// A [`Principal`] as a stored ticket keeps it (JSON: `name`, `role`,
/// `divisions` (null: all), `anonymous`).
#[derive(serde::Serialize, Deserialize)]
struct StoredPrincipal {
    name: String,
    role: Role,
    divisions: Option<Vec<String>>,
    anonymous: bool,
}

/// Who is calling, after authentication.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Key name or JWT subject (`anonymous` when auth is off).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Divisions it is limited to; `None`: all.
    pub divisions: Option<Arc<Vec<String>>>,
    /// True only for [`Principal::anonymous`] (auth off).
    pub anonymous: bool,
}

impl Principal {
    fn new(name: String, role: Role, divisions: Vec<String>) -> Principal {
        let mut d = divisions;
        d.sort();
        d.dedup();
        Principal {
            name,
            role,
            divisions: (!d.is_empty()).then(|| Arc::new(d)),
            anonymous: false,
        }
    }

    /// The caller when auth is off (loopback only, see [`exposure_check`]):
    /// named `anonymous`, every right. Never used when auth is on.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".into(),
            role: Role::Admin,
            divisions: None,
            anonymous: true,
        }
    }

    /// The principal as JSON, for a stored ticket
    /// (`{"name","role","divisions","anonymous"}`; `divisions` null: all).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&StoredPrincipal {
            name: self.name.clone(),
            role: self.role,
            divisions: self.divisions.as_ref().map(|d| d.as_ref().clone()),
            anonymous: self.anonymous,
        })
        .unwrap_or_default()
    }

    /// Reads [`Principal::to_json`]'s JSON; the error says what is wrong.
    pub fn from_json(json: &str) -> Result<Principal, String> {
        let p: StoredPrincipal = serde_json::from_str(json)
            .map_err(|e| format!("a stored ticket's principal is not readable: {e}"))?;
        Ok(Principal {
            name: p.name,
            role: p.role,
            divisions: p.divisions.filter(|d| !d.is_empty()).map(Arc::new),
            anonymous: p.anonymous,
        })
    }

    /// May this principal see agents of `division`?
    pub fn sees(&self, division: &str) -> bool {
        self.divisions
            .as_ref()
            .is_none_or(|d| d.iter().any(|x| x == division))
    }
}

/// Verifies JWTs.
struct JwtVerifier {
    hs: Option<jsonwebtoken::DecodingKey>,
    /// `(kid, algorithm, key)` from the JWKS file.
    jwks: Vec<(
        Option<String>,
        jsonwebtoken::Algorithm,
        jsonwebtoken::DecodingKey,
    )>,
    cfg: JwtConfig,
}

impl JwtVerifier {
    fn new(cfg: &JwtConfig) -> Result<JwtVerifier, String> {
        use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
        use jsonwebtoken::{Algorithm, DecodingKey};
        let hs = match &cfg.hs256_secret {
            Some(s) if s.len() < 32 => {
                return Err("auth.jwt.hs256_secret must be at least 32 bytes".into())
            }
            Some(s) => Some(DecodingKey::from_secret(s.as_bytes())),
            None => None,
        };
        let mut jwks = Vec::new();
        if let Some(path) = &cfg.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("auth.jwt.jwks_file {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("auth.jwt.jwks_file {}: {e}", path.display()))?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("auth.jwt.jwks_file {}: {e}", path.display()))?;
                jwks.push((jwk.common.key_id.clone(), alg, key));
            }
            if jwks.is_empty() {
                return Err(format!(
                    "auth.jwt.jwks_file {}: no RSA or EC public key in it",
                    path.display()
                ));
            }
        }
        if hs.is_none() && jwks.is_empty() {
            return Err("auth.jwt needs hs256_secret or jwks_file".into());
        }
        Ok(JwtVerifier {
            hs,
            jwks,
            cfg: cfg.clone(),
        })
    }

    fn verify(&self, token: &str) -> Result<Principal, String> {
        use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
        let head = decode_header(token).map_err(|e| format!("malformed JWT: {e}"))?;
        let key = match head.alg {
            Algorithm::HS256 => self.hs.as_ref(),
            alg @ (Algorithm::RS256 | Algorithm::ES256) => self
                .jwks
                .iter()
                .find(|(kid, a, _)| *a == alg && (head.kid.is_none() || *kid == head.kid))
                .map(|(_, _, k)| k),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "no key for JWT algorithm {:?} / kid {:?}",
                head.alg, head.kid
            )
        })?;
        // RFC 7515 §4.1.11: a `crit` header names extensions the recipient
        // must understand; this verifier understands none.
        if header_has_crit(token) {
            return Err(
                "JWT refused: header `crit` names extensions this gateway does not \
                        support"
                    .into(),
            );
        }
        let mut v = Validation::new(head.alg);
        v.leeway = self.cfg.leeway_secs;
        v.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.cfg.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.cfg.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        let data = decode::<serde_json::Map<String, serde_json::Value>>(token, key, &v)
            .map_err(|e| format!("JWT refused: {e}"))?;
        let c = data.claims;
        let sub = c
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.trim().is_empty())
            .ok_or("JWT has no non-empty string `sub`")?;
        // RFC 7519 §4.1.4/§4.1.5: `exp` and `nbf` are NumericDates; a
        // jsonwebtoken validation skips an `nbf` of another type.
        for k in ["exp", "nbf", "iat"] {
            if c.get(k).is_some_and(|v| !v.is_number()) {
                return Err(format!(
                    "JWT claim `{k}` must be a number (seconds since 1970)"
                ));
            }
        }
        let role = c
            .get(&self.cfg.role_claim)
            .and_then(|s| s.as_str())
            .and_then(Role::parse)
            .ok_or_else(|| {
                format!(
                    "JWT claim `{}` must be viewer, supervisor or admin",
                    self.cfg.role_claim
                )
            })?;
        let divisions = match c.get(&self.cfg.divisions_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|d| d.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    format!(
                        "JWT claim `{}` must be an array of strings",
                        self.cfg.divisions_claim
                    )
                })?,
            Some(_) => {
                return Err(format!(
                    "JWT claim `{}` must be an array of strings",
                    self.cfg.divisions_claim
                ))
            }
        };
        // `jwt:` keeps token subjects apart from API key names and from the
        // gateway's own actors (`lease`, `anonymous@…`) in the audit log and
        // in idempotency keys.
        Ok(Principal::new(format!("jwt:{sub}"), role, divisions))
    }
}

/// Does the JWT's protected header carry `crit`? (jsonwebtoken's `Header`
/// does not keep the field, so the header is read here.)
fn header_has_crit(token: &str) -> bool {
    use base64::Engine;
    let Some(part) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&b).ok())
        .is_some_and(|m| m.contains_key("crit"))
}

/// Auth counters, exported by `/metrics`.
#[derive(Debug, Default)]
pub struct AuthMetrics {
    /// Requests refused with 401.
    pub unauthenticated: AtomicU64,
    /// Requests refused with 403 (role, division or origin).
    pub forbidden: AtomicU64,
    /// Stream tickets issued.
    pub tickets_issued: AtomicU64,
    /// Stream tickets redeemed.
    pub tickets_redeemed: AtomicU64,
}

/// Everything the guard needs. Shared through [`crate::http::AppState`].
pub struct Security {
    /// Auth configured at all.
    enabled: bool,
    /// API keys by SHA-256.
    keys: HashMap<[u8; 32], Principal>,
    /// JWT verifier.
    jwt: Option<JwtVerifier>,
    /// Live one-time tickets of a registry-only gateway (a full gateway
    /// keeps them in the store): ticket → (principal, expiry).
    tickets: parking_lot::Mutex<HashMap<String, (Principal, Instant)>>,
    /// Ticket lifetime.
    pub(crate) ticket_ttl: Duration,
    /// Origins allowed besides the gateway's own (`*`: any).
    allowed_origins: Vec<String>,
    /// The gateway's own origins from `server.public_origins`.
    public_origins: Vec<String>,
    /// The gateway's own origins derived from the bound listen address
    /// (set once by [`Security::set_listen_addr`]).
    listen_origins: std::sync::OnceLock<Vec<String>>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// `/metrics` without credentials.
    public_metrics: bool,
    /// Counters.
    pub metrics: AuthMetrics,
}

impl Default for Security {
    /// Auth off, same-origin only, 64 KiB bodies: the loopback default.
    fn default() -> Self {
        Security {
            enabled: false,
            keys: HashMap::new(),
            jwt: None,
            tickets: parking_lot::Mutex::new(HashMap::new()),
            ticket_ttl: Duration::from_secs(30),
            allowed_origins: Vec::new(),
            public_origins: Vec::new(),
            listen_origins: std::sync::OnceLock::new(),
            max_body_bytes: 64 * 1024,
            public_metrics: false,
            metrics: AuthMetrics::default(),
        }
    }
}

impl Security {
    /// Builds the verifiers from validated configuration.
    pub fn new(
        auth: &AuthConfig,
        allowed_origins: &[String],
        public_origins: &[String],
        max_body_bytes: usize,
    ) -> Result<Security, String> {
        auth.validate()?;
        let keys = auth
            .api_keys
            .iter()
            .map(|k| {
                // unwrap: validate() checked every hash.
                let h = decode_hex32(&k.sha256).unwrap();
                (
                    h,
                    Principal::new(k.name.clone(), k.role, k.divisions.clone()),
                )
            })
            .collect();
        Ok(Security {
            enabled: auth.enabled(),
            keys,
            jwt: auth.jwt.as_ref().map(JwtVerifier::new).transpose()?,
            ticket_ttl: Duration::from_secs(auth.ticket_ttl_secs),
            allowed_origins: allowed_origins
                .iter()
                .map(|o| normalise_origin(o))
                .collect(),
            public_origins: public_origins.iter().map(|o| normalise_origin(o)).collect(),
            max_body_bytes,
            public_metrics: auth.public_metrics,
            ..Security::default()
        })
    }

    /// Authenticates a bearer credential (API key or JWT).
    pub(crate) fn bearer(&self, cred: &str) -> Result<Principal, String> {
        let looks_jwt = cred.starts_with("eyJ") && cred.matches('.').count() == 2;
        if looks_jwt {
            if let Some(j) = &self.jwt {
                return j.verify(cred);
            }
        }
        // Hash first: the map lookup then compares digests, not the secret.
        self.keys
            .get(&sha256(cred.as_bytes()))
            .cloned()
            .ok_or_else(|| "unknown API key or token".to_owned())
    }

    /// Issues a one-time ticket for `p`, held in this process's memory:
    /// the ticket path of a registry-only gateway (`AppState::core`, no
    /// store). A full gateway keeps tickets in the store instead
    /// (`crate::http::guard`).
    pub(crate) fn issue_ticket(&self, p: &Principal) -> String {
        let t = new_ticket();
        let now = Instant::now();
        let mut map = self.tickets.lock();
        map.retain(|_, (_, exp)| *exp > now);
        map.insert(t.clone(), (p.clone(), now + self.ticket_ttl));
        self.metrics.tickets_issued.fetch_add(1, Ordering::Relaxed);
        t
    }

    /// Redeems a ticket [`Security::issue_ticket`] issued (once).
    pub(crate) fn redeem(&self, t: &str) -> Option<Principal> {
        let (p, exp) = self.tickets.lock().remove(t)?;
        (exp > Instant::now()).then(|| {
            self.metrics
                .tickets_redeemed
                .fetch_add(1, Ordering::Relaxed);
            p
        })
    }

    /// Records the address the server bound: without `server.public_origins`
    /// the gateway's own origin is `http://<that address>` (and, on a
    /// loopback address, the same port on `localhost`, `127.0.0.1` and
    /// `[::1]`; on an unspecified address such as `0.0.0.0`, those three).
    /// Only the first call counts.
    pub fn set_listen_addr(&self, addr: SocketAddr) {
        let mut v = vec![normalise_origin(&format!("http://{addr}"))];
        if addr.ip().is_unspecified() && self.public_origins.is_empty() {
            tracing::warn!(
                %addr,
                "server.public_origins is not set: browsers may use this gateway's pages and \
                 streams only as http://localhost:{}; set it to the address people open",
                addr.port()
            );
        }
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            let port = addr.port();
            for h in ["localhost", "127.0.0.1", "[::1]"] {
                v.push(format!("http://{h}:{port}"));
            }
        }
        let _ = self.listen_origins.set(v);
    }

    /// Is a browser `Origin` allowed? Only the configured public origins
    /// (else the listen address's), and `server.allowed_origins`. The
    /// request's `Host` header plays no part (DNS rebinding).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let o = normalise_origin(origin);
        let own = if self.public_origins.is_empty() {
            self.listen_origins.get().is_some_and(|l| l.contains(&o))
        } else {
            self.public_origins.contains(&o)
        };
        own || self.allowed_origins.iter().any(|a| a == "*" || *a == o)
    }

    /// Is `/metrics` served without credentials?
    pub fn public_metrics(&self) -> bool {
        self.public_metrics
    }

    /// Is authentication configured?
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// Lower-case, no trailing slash; default ports dropped
/// (`https://x:443` is `https://x`), as browsers serialise origins.
fn normalise_origin(o: &str) -> String {
    let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
    if let Some(h) = o
        .strip_prefix("http://")
        .and_then(|h| h.strip_suffix(":80"))
    {
        return format!("http://{h}");
    }
    if let Some(h) = o
        .strip_prefix("https://")
        .and_then(|h| h.strip_suffix(":443"))
    {
        return format!("https://{h}");
    }
    o
}

/// Why a request was refused by the guard. Always a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or bad credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A browser origin not in `server.allowed_origins`.
    #[error("origin {0:?} is not allowed; add it to server.allowed_origins")]
    Origin(String),
    /// Body over `server.max_body_bytes`.
    #[error("request body of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(u64, usize),
    /// A division-scoped agent outside the scope (reads): looks absent.
    #[error("no agent with id {0:?}; list agents with GET /api/v1/agents")]
    HiddenAgent(String),
}

/// Narrows a client's filter to the principal's divisions: no division
/// asked → all of its divisions; some asked → those it may see, and a 403
/// when none of them is.
pub fn scope_filter(p: &Principal, mut f: Filter) -> Result<Filter, AuthError> {
    let Some(allowed) = &p.divisions else {
        return Ok(f);
    };
    if f.divisions.is_empty() {
        f.divisions = allowed.as_ref().clone();
        return Ok(f);
    }
    f.divisions.retain(|d| allowed.contains(d));
    if f.divisions.is_empty() {
        return Err(AuthError::Forbidden(format!(
            "{:?} may only see divisions {}",
            p.name,
            allowed.join(",")
        )));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Own origins come from the listen address or `public_origins`, never
    /// from `Host`; default ports and case do not matter.
    #[test]
    fn origins() {
        let s = Security::new(&AuthConfig::default(), &[], &[], 1024).unwrap();
        assert!(!s.origin_allowed("http://127.0.0.1:8080"));
        s.set_listen_addr("127.0.0.1:8080".parse().unwrap());
        assert!(s.origin_allowed("http://127.0.0.1:8080"));
        assert!(s.origin_allowed("http://LOCALHOST:8080/"));
        assert!(!s.origin_allowed("http://evil.example:8080"));
        assert!(!s.origin_allowed("http://127.0.0.1:8081"));
        let p = Security::new(
            &AuthConfig::default(),
            &["https://wall.example".into()],
            &["https://presence.example:443".into()],
            1024,
        )
        .unwrap();
        p.set_listen_addr("127.0.0.1:8080".parse().unwrap());
        assert!(p.origin_allowed("https://presence.example"));
        assert!(p.origin_allowed("https://wall.example"));
        assert!(!p.origin_allowed("http://127.0.0.1:8080"));
    }

    /// A non-loopback listener needs auth.
    #[test]
    fn exposure() {
        let off = AuthConfig::default();
        assert!(exposure_check(&off, "127.0.0.1:8080".parse().unwrap()).is_ok());
        let err = exposure_check(&off, "0.0.0.0:8080".parse().unwrap()).unwrap_err();
        assert!(err.contains("no authentication"), "{err}");
    }

    /// A division-scoped filter is narrowed, never widened.
    #[test]
    fn scoping() {
        let p = Principal::new("k".into(), Role::Viewer, vec!["d1".into(), "d2".into()]);
        let f = scope_filter(&p, Filter::default()).unwrap();
        assert_eq!(f.divisions, vec!["d1", "d2"]);
        let asked = Filter {
            divisions: vec!["d2".into(), "d3".into()],
            ..Filter::default()
        };
        assert_eq!(scope_filter(&p, asked).unwrap().divisions, vec!["d2"]);
        let foreign = Filter {
            divisions: vec!["d3".into()],
            ..Filter::default()
        };
        assert!(scope_filter(&p, foreign).is_err());
    }

    /// A ticket's principal survives the store's JSON; the hash is hex
    /// SHA-256, not the ticket.
    #[test]
    fn stored_principal_round_trip() {
        let p = Principal::new("k".into(), Role::Supervisor, vec!["d2".into(), "d1".into()]);
        let q = Principal::from_json(&p.to_json()).unwrap();
        assert_eq!(
            (q.name.as_str(), q.role, q.anonymous),
            ("k", Role::Supervisor, false)
        );
        assert!(q.sees("d1") && q.sees("d2") && !q.sees("d3"));
        let a = Principal::from_json(&Principal::anonymous().to_json()).unwrap();
        assert!(a.anonymous && a.divisions.is_none() && a.role == Role::Admin);
        assert!(Principal::from_json("{}").is_err());
        let t = new_ticket();
        let h = ticket_hash(&t);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&t));
        assert_eq!(
            ticket_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// HS256 tokens carry subject, role and divisions; bad ones are refused.
    #[test]
    fn jwt_hs256() {
        let secret = "0123456789abcdef0123456789abcdef";
        let v = JwtVerifier::new(&JwtConfig {
            hs256_secret: Some(secret.into()),
            ..JwtConfig::default()
        })
        .unwrap();
        let exp = chrono::Utc::now().timestamp() + 60;
        let claims = serde_json::json!({"sub": "alice", "role": "supervisor", "divisions": ["d1"], "exp": exp});
        let tok = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        let p = v.verify(&tok).unwrap();
        assert_eq!(p.name, "jwt:alice");
        assert_eq!(p.role, Role::Supervisor);
        assert!(p.sees("d1") && !p.sees("d2"));
        let bad = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        assert!(v.verify(&bad).is_err());
    }

    fn hs_token(secret: &str, header: serde_json::Value, claims: serde_json::Value) -> String {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let sig = ring::hmac::sign(&key, input.as_bytes());
        format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
    }

    /// `nbf` in the future, a missing required `iss` / `aud`, and an
    /// unknown `crit` header are refused; the same token without the fault
    /// is accepted.
    #[test]
    fn jwt_claims_enforced() {
        let secret = "0123456789abcdef0123456789abcdef";
        let v = JwtVerifier::new(&JwtConfig {
            hs256_secret: Some(secret.into()),
            issuer: Some("https://idp.example".into()),
            audience: Some("presence-gateway".into()),
            ..JwtConfig::default()
        })
        .unwrap();
        let now = chrono::Utc::now().timestamp();
        let head = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let good = serde_json::json!({"sub": "a", "role": "viewer", "exp": now + 600,
            "iss": "https://idp.example", "aud": "presence-gateway"});
        assert!(v
            .verify(&hs_token(secret, head.clone(), good.clone()))
            .is_ok());
        let mut future = good.clone();
        future["nbf"] = serde_json::json!(now + 3600);
        let e = v
            .verify(&hs_token(secret, head.clone(), future))
            .unwrap_err();
        assert!(e.contains("Immature") || e.contains("nbf"), "{e}");
        for missing in ["iss", "aud"] {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(missing);
            let e = v.verify(&hs_token(secret, head.clone(), c)).unwrap_err();
            assert!(e.contains(missing), "{missing}: {e}");
        }
        let mut empty = good.clone();
        empty["sub"] = serde_json::json!("");
        assert!(v.verify(&hs_token(secret, head.clone(), empty)).is_err());
        let mut text_nbf = good.clone();
        text_nbf["nbf"] = serde_json::json!((now + 3600).to_string());
        let e = v
            .verify(&hs_token(secret, head.clone(), text_nbf))
            .unwrap_err();
        assert!(e.contains("nbf"), "{e}");
        // Subjects never collide with API key names or the gateway's actors.
        let p = v
            .verify(&hs_token(secret, head.clone(), good.clone()))
            .unwrap();
        assert_eq!(p.name, "jwt:a");
        let crit =
            serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": 1});
        let e = v.verify(&hs_token(secret, crit, good)).unwrap_err();
        assert!(e.contains("crit"), "{e}");
    }
}
