//! `[auth]`: the settings, checked, and the keys they name, loaded once at start-up.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, errors::ErrorKind};
use serde::Deserialize;

use super::cache::TokenCache;
use super::jwks::JwksCache;
use super::{Keys, MIN_HMAC_SECRET_BYTES, Verifier, is_hmac, jws};
use crate::setting::InvalidSetting;

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
    /// Name of the environment variable holding the previous HMAC secret while it is
    /// rotated out: tokens signed with either verify (the issuer signs with the new one).
    pub hmac_previous_secret_env: Option<String>,
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
    /// Remember verified tokens (their hash and claims) so that a repeated token skips
    /// the signature; default true.
    #[serde(default = "default_token_cache")]
    pub token_cache: bool,
    /// Most bytes the token cache holds, about 250 per token; default 4 MiB (some
    /// 16 000 tokens), 64 KiB to 1 GiB.
    #[serde(default = "default_token_cache_bytes")]
    pub token_cache_max_bytes: u64,
}

fn default_token_cache() -> bool {
    true
}
fn default_token_cache_bytes() -> u64 {
    4 * 1024 * 1024
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

impl Verifier {
    /// Checks the settings and loads static keys (the HMAC secret from its variable, the
    /// PEM file). A JWKS is fetched later: see [`Verifier::jwks`].
    pub fn from_settings(
        auth: &AuthSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, InvalidSetting> {
        fn invalid(setting: &str, reason: impl Into<String>) -> InvalidSetting {
            InvalidSetting::new(setting, reason)
        }
        if auth.issuer.is_empty() {
            return Err(invalid("issuer", "must not be empty"));
        }
        if auth.audience.is_empty() {
            return Err(invalid("audience", "must not be empty"));
        }
        if auth.tenant_claim.is_empty() {
            return Err(invalid("tenant_claim", "must not be empty"));
        }
        if auth.leeway_seconds > 300 {
            return Err(invalid("leeway_seconds", "must be at most 300"));
        }
        let mut algorithms = Vec::new();
        for name in &auth.algorithms {
            if name.eq_ignore_ascii_case("none") {
                return Err(invalid("algorithms", "\"none\" is never accepted"));
            }
            let alg = Algorithm::from_str(name).map_err(|_| {
                invalid(
                    "algorithms",
                    format!("unknown algorithm {name:?} (HS256, RS256, PS256, ES256, EdDSA, ...)"),
                )
            })?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        let Some(&first) = algorithms.first() else {
            return Err(invalid("algorithms", "name at least one algorithm"));
        };
        let hmac = is_hmac(first);
        if algorithms.iter().any(|&a| is_hmac(a) != hmac) {
            return Err(invalid(
                "algorithms",
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
                "",
                "set exactly one of jwks_url, public_key_pem_file, hmac_secret_env",
            ));
        }
        if auth.hmac_previous_secret_env.is_some() && auth.hmac_secret_env.is_none() {
            return Err(invalid(
                "hmac_previous_secret_env",
                "a previous HMAC secret needs a current one: set hmac_secret_env",
            ));
        }
        let keys = if let Some(var) = &auth.hmac_secret_env {
            if !hmac {
                return Err(invalid(
                    "algorithms",
                    "hmac_secret_env needs HS256, HS384 or HS512",
                ));
            }
            // A secret of at least the minimum length from the variable `var` that
            // `setting` names.
            let secret_in = |setting: &'static str, var: &str| {
                let secret = env(var).ok_or_else(|| {
                    invalid(setting, format!("environment variable {var} is not set"))
                })?;
                if secret.len() < MIN_HMAC_SECRET_BYTES {
                    return Err(invalid(
                        setting,
                        format!(
                            "the secret in {var} is shorter than {MIN_HMAC_SECRET_BYTES} bytes"
                        ),
                    ));
                }
                Ok(secret)
            };
            let mut secrets = vec![secret_in("hmac_secret_env", var)?];
            if let Some(var) = &auth.hmac_previous_secret_env {
                secrets.push(secret_in("hmac_previous_secret_env", var)?);
            }
            // The current secret's keys first: most tokens verify on the first try.
            Keys::Hmac(
                secrets
                    .iter()
                    .flat_map(|secret| {
                        algorithms
                            .iter()
                            .filter_map(|&alg| jws::HmacKey::new(alg, secret.as_bytes()))
                    })
                    .collect(),
            )
        } else if let Some(path) = &auth.public_key_pem_file {
            if hmac {
                return Err(invalid(
                    "algorithms",
                    "a public key needs RS*, PS*, ES* or EdDSA algorithms",
                ));
            }
            let pem = std::fs::read(path)
                .map_err(|e| invalid("public_key_pem_file", format!("{}: {e}", path.display())))?;
            Keys::Static(pem_key(&pem, &algorithms).map_err(|reason| {
                invalid(
                    "public_key_pem_file",
                    format!("{}: {reason}", path.display()),
                )
            })?)
        } else {
            if hmac {
                return Err(invalid(
                    "algorithms",
                    "a JWKS needs RS*, PS*, ES* or EdDSA algorithms",
                ));
            }
            let url = auth.jwks_url.as_deref().unwrap_or_default();
            let cache = JwksCache::new(
                url,
                Duration::from_secs(auth.jwks_min_refresh_interval_seconds),
                Duration::from_secs(auth.jwks_refresh_seconds.max(1)),
            )
            .map_err(|reason| invalid("jwks_url", reason))?;
            Keys::Jwks(Arc::new(cache))
        };

        // Every check is set here on purpose: `exp` required, `nbf` checked when present,
        // `iss`, `aud` (ours among a list) and `sub` required, and the leeway.
        let expected = jws::Expected {
            issuer: Some(auth.issuer.clone()),
            audience: auth.audience.clone(),
            leeway: auth.leeway_seconds,
        };
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&auth.token_cache_max_bytes) {
            return Err(invalid(
                "token_cache_max_bytes",
                "must be 65536 to 1073741824",
            ));
        }
        Ok(Self {
            algorithms,
            expected,
            keys,
            tenant_claim: auth.tenant_claim.clone(),
            required_scope: auth.required_scope.clone(),
            cache: auth
                .token_cache
                .then(|| TokenCache::new(auth.token_cache_max_bytes)),
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
