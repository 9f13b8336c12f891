//! JWT verification: from a bearer token to a [`Caller`].
//!
//! Every check is set on purpose: the algorithm allow-list (never `none`; HMAC and
//! public-key algorithms never mixed, which is what makes algorithm confusion
//! impossible), the signature before anything else, then issuer, audience, required
//! `exp`, `iss`, `aud` and `sub`, `nbf` checked when present, and the leeway (`jws`).
//! Keys come from an HMAC secret in an environment variable (prepared once), a PEM
//! public key file or a JWKS URL; `jku` and `x5u` headers are ignored, never fetched.

pub mod jwks;
mod jws;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, errors::ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use crate::config::ConfigError;
use jwks::JwksCache;

/// Longest token accepted, in bytes: a bound on work done before any signature check.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// `[auth]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (the token's `aud` may be a list containing it).
    pub audience: String,
    /// Allowed algorithms, e.g. `["RS256"]`; all HMAC or all public-key.
    pub algorithms: Vec<String>,
    /// JWKS endpoint of the identity provider.
    pub jwks_url: Option<String>,
    /// A PEM public key (RSA, EC or Ed25519).
    pub public_key_pem_file: Option<PathBuf>,
    /// Name of the environment variable holding the HMAC secret.
    pub hmac_secret_env: Option<String>,
    /// Claim naming the caller's tenant; default `tenant`.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Scope required in `scope` (space-separated) or `scp`; default none.
    pub required_scope: Option<String>,
    /// Clock skew allowed for `exp` and `nbf`, in seconds; default 30.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// How often the JWKS is refreshed in the background, in seconds; default 300.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_seconds: u64,
    /// Least time between two refreshes caused by unknown `kid`s, in seconds; default 60.
    #[serde(default = "default_jwks_min_interval")]
    pub jwks_min_refresh_interval_seconds: u64,
}

fn default_tenant_claim() -> String {
    "tenant".to_owned()
}
fn default_leeway() -> u64 {
    30
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_jwks_min_interval() -> u64 {
    60
}

/// Who is asking, once the token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant claim.
    pub tenant: String,
    /// The `sub` claim.
    pub subject: String,
    /// Scopes from `scope` or `scp`.
    pub scopes: Vec<String>,
}

/// Why a token is refused. The text is for debug logs; clients only see
/// `invalid_token` (or `insufficient_scope`). It never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token")]
    Malformed,
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("the token is over {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Signature, algorithm, claims or format.
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// No key with the token's `kid`.
    #[error("no signing key matches the token's kid")]
    UnknownKey,
    /// The required scope is missing.
    #[error("the token lacks scope {0:?}")]
    InsufficientScope(String),
}

/// Verifies tokens with the configured keys and rules.
pub struct Verifier {
    /// The allow-list: never `none`, never HMAC and public-key algorithms together.
    algorithms: Vec<Algorithm>,
    expected: jws::Expected,
    keys: Keys,
    tenant_claim: String,
    required_scope: Option<String>,
}

enum Keys {
    /// One prepared key per allowed HS algorithm.
    Hmac(Vec<jws::HmacKey>),
    Static(DecodingKey),
    Jwks(Arc<JwksCache>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            Keys::Hmac(_) => "HMAC secret (redacted)".to_owned(),
            Keys::Static(_) => "static key (redacted)".to_owned(),
            Keys::Jwks(cache) => format!("JWKS {}", cache.url()),
        };
        f.debug_struct("Verifier")
            .field("algorithms", &self.algorithms)
            .field("keys", &keys)
            .field("tenant_claim", &self.tenant_claim)
            .field("required_scope", &self.required_scope)
            .finish()
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Verifier {
    /// Checks the settings and loads static keys (the HMAC secret from its variable, the
    /// PEM file). A JWKS is fetched later: see [`Verifier::jwks`].
    pub fn from_settings(
        auth: &AuthSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
            ConfigError::invalid(setting, reason)
        }
        if auth.issuer.is_empty() {
            return Err(invalid("auth.issuer", "must not be empty"));
        }
        if auth.audience.is_empty() {
            return Err(invalid("auth.audience", "must not be empty"));
        }
        if auth.tenant_claim.is_empty() {
            return Err(invalid("auth.tenant_claim", "must not be empty"));
        }
        if auth.leeway_seconds > 300 {
            return Err(invalid("auth.leeway_seconds", "must be at most 300"));
        }
        let mut algorithms = Vec::new();
        for name in &auth.algorithms {
            if name.eq_ignore_ascii_case("none") {
                return Err(invalid("auth.algorithms", "\"none\" is never accepted"));
            }
            let alg = Algorithm::from_str(name).map_err(|_| {
                invalid(
                    "auth.algorithms",
                    format!("unknown algorithm {name:?} (HS256, RS256, PS256, ES256, EdDSA, ...)"),
                )
            })?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        let Some(&first) = algorithms.first() else {
            return Err(invalid("auth.algorithms", "name at least one algorithm"));
        };
        let hmac = is_hmac(first);
        if algorithms.iter().any(|&a| is_hmac(a) != hmac) {
            return Err(invalid(
                "auth.algorithms",
                "HMAC (HS*) and public-key algorithms cannot be mixed: that is what algorithm confusion attacks exploit",
            ));
        }

        let sources = [
            auth.jwks_url.is_some(),
            auth.public_key_pem_file.is_some(),
            auth.hmac_secret_env.is_some(),
        ];
        if sources.iter().filter(|&&s| s).count() != 1 {
            return Err(invalid(
                "auth",
                "set exactly one of jwks_url, public_key_pem_file, hmac_secret_env",
            ));
        }
        let keys = if let Some(var) = &auth.hmac_secret_env {
            if !hmac {
                return Err(invalid(
                    "auth.algorithms",
                    "hmac_secret_env needs HS256, HS384 or HS512",
                ));
            }
            let secret = env(var).ok_or_else(|| {
                invalid(
                    "auth.hmac_secret_env",
                    format!("environment variable {var} is not set"),
                )
            })?;
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(invalid(
                    "auth.hmac_secret_env",
                    format!("the secret in {var} is shorter than {MIN_HMAC_SECRET_BYTES} bytes"),
                ));
            }
            Keys::Hmac(
                algorithms
                    .iter()
                    .filter_map(|&alg| jws::HmacKey::new(alg, secret.as_bytes()))
                    .collect(),
            )
        } else if let Some(path) = &auth.public_key_pem_file {
            if hmac {
                return Err(invalid(
                    "auth.algorithms",
                    "a public key needs RS*, PS*, ES* or EdDSA algorithms",
                ));
            }
            let pem = std::fs::read(path).map_err(|e| {
                invalid(
                    "auth.public_key_pem_file",
                    format!("{}: {e}", path.display()),
                )
            })?;
            Keys::Static(pem_key(&pem, &algorithms).map_err(|reason| {
                invalid(
                    "auth.public_key_pem_file",
                    format!("{}: {reason}", path.display()),
                )
            })?)
        } else {
            if hmac {
                return Err(invalid(
                    "auth.algorithms",
                    "a JWKS needs RS*, PS*, ES* or EdDSA algorithms",
                ));
            }
            let url = auth.jwks_url.as_deref().unwrap_or_default();
            let cache = JwksCache::new(
                url,
                Duration::from_secs(auth.jwks_min_refresh_interval_seconds),
                Duration::from_secs(auth.jwks_refresh_seconds.max(1)),
            )
            .map_err(|reason| invalid("auth.jwks_url", reason))?;
            Keys::Jwks(Arc::new(cache))
        };

        // Every check is set here on purpose: `exp` required, `nbf` checked when present,
        // `iss`, `aud` (ours among a list) and `sub` required, and the leeway.
        let expected = jws::Expected {
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            leeway: auth.leeway_seconds,
        };
        Ok(Self {
            algorithms,
            expected,
            keys,
            tenant_claim: auth.tenant_claim.clone(),
            required_scope: auth.required_scope.clone(),
        })
    }

    /// The JWKS cache, when keys come from a JWKS URL.
    pub fn jwks(&self) -> Option<&Arc<JwksCache>> {
        match &self.keys {
            Keys::Jwks(cache) => Some(cache),
            Keys::Hmac(_) | Keys::Static(_) => None,
        }
    }

    /// Whether tokens can be verified now (a JWKS has been loaded at least once).
    pub fn is_ready(&self) -> bool {
        self.jwks().is_none_or(|cache| cache.is_loaded())
    }

    /// Verifies `token` and reads the caller from its claims.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let parts = jws::split(token)?;
        let header = jws::header(&parts)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let input = parts.signing_input.as_bytes();
        let signed = match &self.keys {
            Keys::Hmac(keys) => {
                let signature = jws::decode(parts.signature)?;
                keys.iter()
                    .find(|key| key.algorithm() == header.alg)
                    .is_some_and(|key| key.verifies(input, &signature))
            }
            // A key of another family than the algorithm is an error here: refused.
            Keys::Static(key) => {
                jsonwebtoken::crypto::verify(parts.signature, input, key, header.alg)
                    .unwrap_or(false)
            }
            Keys::Jwks(cache) => {
                let key = cache.key_for(header.kid.as_deref()).await?;
                jsonwebtoken::crypto::verify(parts.signature, input, &key, header.alg)
                    .unwrap_or(false)
            }
        };
        if !signed {
            return Err(AuthError::Invalid("bad signature".to_owned()));
        }
        let claims = jws::read_claims(&jws::decode(parts.payload)?, &self.tenant_claim)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        claims.check(&self.expected, now)?;
        self.caller(claims)
    }

    fn caller(&self, claims: jws::Claims) -> Result<Caller, AuthError> {
        let string = |name: &str, value: Option<Value>| match value {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(AuthError::Invalid(format!(
                "claim {name:?} is not a non-empty string"
            ))),
            None => Err(AuthError::Invalid(format!("claim {name:?} is missing"))),
        };
        let subject = string("sub", claims.sub)?;
        let tenant = string(&self.tenant_claim, claims.tenant)?;
        let mut scopes: Vec<String> = Vec::new();
        match claims.scope {
            Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
            Some(_) => {
                return Err(AuthError::Invalid(
                    "claim \"scope\" is not a string".to_owned(),
                ));
            }
            None => {}
        }
        match claims.scp {
            Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => scopes.push(s),
                        _ => {
                            return Err(AuthError::Invalid(
                                "claim \"scp\" has a non-string".to_owned(),
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(AuthError::Invalid(
                    "claim \"scp\" is not a string or list".to_owned(),
                ));
            }
            None => {}
        }
        if let Some(required) = &self.required_scope
            && !scopes.iter().any(|s| s == required)
        {
            return Err(AuthError::InsufficientScope(required.clone()));
        }
        Ok(Caller {
            tenant,
            subject,
            scopes,
        })
    }
}

/// A PEM public key of the family the algorithms need.
fn pem_key(pem: &[u8], algorithms: &[Algorithm]) -> Result<DecodingKey, String> {
    use Algorithm::*;
    let family = |a: &Algorithm| match a {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => "RSA",
        ES256 | ES384 => "EC",
        EdDSA => "Ed25519",
        _ => "HMAC",
    };
    let first = family(&algorithms[0]);
    if algorithms.iter().any(|a| family(a) != first) {
        return Err(
            "one PEM key serves one family: RSA (RS*, PS*), EC (ES*) or Ed25519 (EdDSA)".to_owned(),
        );
    }
    let key = match first {
        "RSA" => DecodingKey::from_rsa_pem(pem),
        "EC" => DecodingKey::from_ec_pem(pem),
        _ => DecodingKey::from_ed_pem(pem),
    };
    key.map_err(|e| format!("not a {first} public key in PEM ({})", reason(e.kind())))
}

/// A short reason for logs; never the token.
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidToken => "malformed".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::ExpiredSignature => "expired".to_owned(),
        ErrorKind::ImmatureSignature => "not yet valid (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidAlgorithm => "algorithm not allowed for this key".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c:?}"),
        ErrorKind::Base64(_) => "not base64url".to_owned(),
        ErrorKind::Json(_) => "not JSON".to_owned(),
        ErrorKind::Utf8(_) => "not UTF-8".to_owned(),
        other => format!("{other:?}").chars().take(80).collect(),
    }
}

/// Reads a bearer token from an `Authorization` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some("Basic abc")), Err(AuthError::Malformed));
        assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::Malformed));
        assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::Malformed));
    }

    #[test]
    fn errors_never_hold_the_token() {
        let shown = format!(
            "{} {:?}",
            AuthError::TooLarge,
            AuthError::Invalid("bad signature".into())
        );
        assert!(!shown.contains("eyJ"));
    }
}
