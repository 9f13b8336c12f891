//! JWT verification: from a bearer token to a [`Caller`].
//!
//! Every check is set on purpose: the algorithm allow-list (never `none`; HMAC and
//! public-key algorithms never mixed, which is what makes algorithm confusion
//! impossible), the signature before anything else, then issuer, audience, required
//! `exp`, `iss`, `aud` and `sub`, `nbf` checked when present, and the leeway (`jws`).
//! Keys come from an HMAC secret in an environment variable (prepared once), a PEM
//! public key file or a JWKS URL; `jku` and `x5u` headers are ignored, never fetched.

mod cache;
pub mod jwks;
pub(crate) mod jws;
mod settings;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

pub use cache::CacheCounts;
use cache::{TokenCache, Verified};
use jwks::JwksCache;
pub use settings::AuthSettings;

/// Longest token accepted, in bytes: a bound on work done before any signature check.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

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

/// A bearer token the service hands out itself: `dev` makes one and fills it into the
/// demo page, so that a newcomer need not copy it. `Debug` never shows it.
#[derive(Clone)]
pub struct IssuedToken(pub String);

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken(..)")
    }
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
    /// Verified tokens, unless `auth.token_cache` is off.
    cache: Option<TokenCache>,
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
            .field("cache", &self.cache)
            .finish()
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Verifier {
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

    /// Verifies `token` as of `now` and reads the caller from its claims; a token
    /// verified before comes from the cache, its lifetime checked again.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Arc<Caller>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let Some(cache) = &self.cache else {
            return Ok(self.verify_signed(token, now).await?.caller);
        };
        let key = TokenCache::key(token);
        let cached = cache.get(&key, now, self.expected.leeway)?;
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            // The `jwt.verify` span the caller entered, where traces are on.
            tracing::Span::current().record("cache.hit", cached.is_some());
        }
        if let Some(caller) = cached {
            return Ok(caller);
        }
        let verified = self.verify_signed(token, now).await?;
        let caller = Arc::clone(&verified.caller);
        cache.insert(key, verified);
        Ok(caller)
    }

    /// Hits, misses and evictions of the token cache (`None` when it is off).
    pub fn cache_counts(&self) -> Option<CacheCounts> {
        self.cache.as_ref().map(TokenCache::counts)
    }

    /// Entries in the token cache and their weight in bytes (`(0, 0)` when it is off).
    pub fn cache_size(&self) -> (usize, u64) {
        self.cache.as_ref().map_or((0, 0), TokenCache::size)
    }

    /// The whole check of a token: algorithm, signature, registered claims, the caller.
    async fn verify_signed(&self, token: &str, now: u64) -> Result<Verified, AuthError> {
        let parts = jws::split(token)?;
        let header = jws::header(&parts)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let input = parts.signing_input.as_bytes();
        let (signed, key) = match &self.keys {
            Keys::Hmac(keys) => {
                let signature = jws::decode(parts.signature)?;
                // One key per algorithm and secret (the previous one while rotated out).
                let signed = keys
                    .iter()
                    .filter(|key| key.algorithm() == header.alg)
                    .any(|key| key.verifies(input, &signature));
                (signed, None)
            }
            // A key of another family than the algorithm is an error here: refused.
            Keys::Static(key) => {
                let signed = jsonwebtoken::crypto::verify(parts.signature, input, key, header.alg);
                (signed.unwrap_or(false), None)
            }
            Keys::Jwks(cache) => {
                let key = cache.key_for(header.kid.as_deref()).await?;
                let signed = jsonwebtoken::crypto::verify(parts.signature, input, &key, header.alg);
                (signed.unwrap_or(false), Some(Arc::downgrade(&key)))
            }
        };
        if !signed {
            return Err(AuthError::Invalid("bad signature".to_owned()));
        }
        let claims = jws::read_claims(&jws::decode(parts.payload)?, Some(&self.tenant_claim))?;
        let (exp, nbf) = claims.check(&self.expected, now)?;
        Ok(Verified {
            caller: Arc::new(self.caller(claims)?),
            exp,
            nbf,
            key,
        })
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
