//! Compact JWS (RFC 7515) and the JWT claim checks of RFC 7519, with keys prepared once.
//!
//! `jsonwebtoken::decode` derives the HMAC key from the secret on every call, parses the
//! header twice and the claims twice: an eighth of a request's CPU under load
//! (`bench/RESULTS.md`). Here an HMAC key is prepared when the configuration loads and
//! cloned per token, and the header and the claims are each parsed once, into only what
//! is checked. Public-key signatures are verified by `jsonwebtoken::crypto::verify`.
//!
//! Order matters: the signature is checked before any claim is read.
//!
//! This is the one JWT verifier of the service: bearer tokens (`Verifier::verify`, which
//! adds public-key signatures and the caller's claims) and multipart handles
//! ([`verify_hmac`]) both go through it. A property test below holds it to
//! `jsonwebtoken::decode`: it accepts what the crate accepts and refuses at least what
//! the crate refuses (and duplicate claims besides).

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

use super::AuthError;

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::Invalid(reason.into())
}

/// The three parts of a compact token, still encoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Parts<'a> {
    /// `header.payload`: what the signature covers.
    pub signing_input: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

/// Splits `token` into exactly three non-empty parts.
pub(super) fn split(token: &str) -> Result<Parts<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed"));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(invalid("malformed"));
    }
    Ok(Parts {
        signing_input: &token[..header.len() + 1 + payload.len()],
        header,
        payload,
        signature,
    })
}

/// Base64url without padding, as JWS requires.
pub(super) fn decode(part: &str) -> Result<Vec<u8>, AuthError> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(part)
        .map_err(|_| invalid("not base64url"))
}

/// What the service reads of a JOSE header.
#[derive(Debug, Deserialize)]
pub(super) struct Header {
    /// Names outside `Algorithm` (`none` among them) fail here.
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// Extensions the recipient must understand (RFC 7515 §4.1.11): we know none.
    crit: Option<serde::de::IgnoredAny>,
}

/// The header of `parts`; duplicate names and `crit` are refused. Other members
/// (`typ`, `jku`, `x5u`, …) are ignored: keys never come from the token.
pub(super) fn header(parts: &Parts<'_>) -> Result<Header, AuthError> {
    let header: Header = serde_json::from_slice(&decode(parts.header)?)
        .map_err(|_| invalid("header: not a JOSE header"))?;
    if header.crit.is_some() {
        return Err(invalid(
            "header: crit names extensions we do not understand",
        ));
    }
    Ok(header)
}

/// An HMAC key derived from the secret once; each token clones its state.
#[derive(Clone)]
pub(crate) enum HmacKey {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacKey({:?}, ** redacted **)", self.algorithm())
    }
}

impl HmacKey {
    /// The key for `alg` (an HS algorithm) from `secret`.
    pub(crate) fn new(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        // HMAC takes keys of any length; the length rule is the configuration's.
        match alg {
            Algorithm::HS256 => Hmac::new_from_slice(secret).ok().map(Self::Hs256),
            Algorithm::HS384 => Hmac::new_from_slice(secret).ok().map(Self::Hs384),
            Algorithm::HS512 => Hmac::new_from_slice(secret).ok().map(Self::Hs512),
            _ => None,
        }
    }

    /// The HS256 key of `secret`: HMAC takes keys of any length, so this cannot fail.
    pub(crate) fn hs256(secret: &[u8]) -> Self {
        match Hmac::new_from_slice(secret) {
            Ok(key) => Self::Hs256(key),
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hs256(_) => Algorithm::HS256,
            Self::Hs384(_) => Algorithm::HS384,
            Self::Hs512(_) => Algorithm::HS512,
        }
    }

    /// Whether `signature` is this key's MAC of `input`, compared in constant time.
    pub(crate) fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        fn check<M: Mac + Clone>(key: &M, input: &[u8], signature: &[u8]) -> bool {
            let mut mac = key.clone();
            mac.update(input);
            mac.verify_slice(signature).is_ok()
        }
        match self {
            Self::Hs256(key) => check(key, input, signature),
            Self::Hs384(key) => check(key, input, signature),
            Self::Hs512(key) => check(key, input, signature),
        }
    }
}

/// The claims the service reads. Values stay JSON so that a wrong type is refused with
/// a reason; every other claim is skipped without being kept.
#[derive(Debug, Default)]
pub(super) struct Claims {
    pub exp: Option<Value>,
    pub nbf: Option<Value>,
    pub iss: Option<Value>,
    pub aud: Option<Value>,
    pub sub: Option<Value>,
    pub tenant: Option<Value>,
    pub scope: Option<Value>,
    pub scp: Option<Value>,
}

/// What a token's registered claims must say.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    /// `iss`, required when set (handles, our own tokens, carry none).
    pub issuer: Option<String>,
    pub audience: String,
    /// Clock skew allowed for `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

impl Claims {
    /// `exp` (required) and `nbf` (when present) at `now`, `iss` and `aud` (required);
    /// answers `exp` and `nbf`. `sub` and the tenant are the caller's to read.
    pub(super) fn check(
        &self,
        expected: &Expected,
        now: u64,
    ) -> Result<(u64, Option<u64>), AuthError> {
        let date = |name: &str, value: &Option<Value>| match value {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(format!("claim {name:?} is not a NumericDate"))),
            Some(_) => Err(invalid(format!("claim {name:?} is not a NumericDate"))),
        };
        let exp = date("exp", &self.exp)?.ok_or_else(|| invalid("missing claim \"exp\""))?;
        if exp.saturating_add(expected.leeway) < now {
            return Err(invalid("expired"));
        }
        let nbf = date("nbf", &self.nbf)?;
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(expected.leeway)) {
            return Err(invalid("not yet valid (nbf)"));
        }
        if let Some(issuer) = &expected.issuer {
            match &self.iss {
                Some(Value::String(iss)) if iss == issuer => {}
                None => return Err(invalid("missing claim \"iss\"")),
                Some(_) => return Err(invalid("wrong issuer")),
            }
        }
        let ours = |v: &Value| v.as_str() == Some(expected.audience.as_str());
        match &self.aud {
            Some(aud @ Value::String(_)) if ours(aud) => {}
            Some(Value::Array(auds)) if auds.iter().any(ours) => {}
            None => return Err(invalid("missing claim \"aud\"")),
            Some(_) => return Err(invalid("wrong audience")),
        }
        Ok((exp, nbf))
    }
}

/// Reads [`Claims`] from a verified payload, refusing duplicate names. RFC 7519 lets a
/// parser keep the last of duplicate names; we refuse them, because a gateway whose
/// parser keeps the first would see a different tenant than we do.
pub(super) fn read_claims(payload: &[u8], tenant_claim: Option<&str>) -> Result<Claims, AuthError> {
    let mut json = serde_json::Deserializer::from_slice(payload);
    serde::de::DeserializeSeed::deserialize(ClaimsSeed { tenant_claim }, &mut json)
        .and_then(|claims| json.end().map(|()| claims))
        .map_err(|e| {
            invalid(if e.is_data() {
                // A duplicate name; claims are not secret once the signature holds.
                e.to_string()
            } else {
                "claims: not JSON".to_owned()
            })
        })
}

struct ClaimsSeed<'a> {
    /// The claim naming the tenant, for bearer tokens.
    tenant_claim: Option<&'a str>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Claims, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        // Names are borrowed from the payload unless they hold escapes. A token is at
        // most MAX_TOKEN_BYTES and signed: the quadratic check stays small.
        let mut seen: Vec<Name<'de>> = Vec::new();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            if seen.iter().any(|n| n.0 == name.0) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate claim {:?}",
                    name.0
                )));
            }
            let name_is = |n: &str| name.0 == n;
            let slots = [
                (name_is("exp"), &mut claims.exp),
                (name_is("nbf"), &mut claims.nbf),
                (name_is("iss"), &mut claims.iss),
                (name_is("aud"), &mut claims.aud),
                (name_is("sub"), &mut claims.sub),
                // Any name, even one of the above.
                (self.tenant_claim.is_some_and(name_is), &mut claims.tenant),
                (name_is("scope"), &mut claims.scope),
                (name_is("scp"), &mut claims.scp),
            ];
            if slots.iter().any(|(wanted, _)| *wanted) {
                let value: Value = map.next_value()?;
                for (wanted, slot) in slots {
                    if wanted {
                        *slot = Some(value.clone());
                    }
                }
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            seen.push(name);
        }
        Ok(claims)
    }
}

/// A claim name, borrowed when it can be.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The payload of `token` once its HMAC signature (with `key`, whose algorithm the
/// header must name) and its registered claims hold at `now` (Unix seconds). What
/// multipart handles are verified with; the caller parses the payload for the rest.
pub(crate) fn verify_hmac(
    token: &str,
    key: &HmacKey,
    expected: &Expected,
    now: u64,
) -> Result<Vec<u8>, AuthError> {
    let parts = split(token)?;
    if header(&parts)?.alg != key.algorithm() {
        return Err(invalid("algorithm not allowed"));
    }
    if !key.verifies(parts.signing_input.as_bytes(), &decode(parts.signature)?) {
        return Err(invalid("bad signature"));
    }
    let payload = decode(parts.payload)?;
    read_claims(&payload, None)?.check(expected, now)?;
    Ok(payload)
}

#[cfg(test)]
mod tests;
