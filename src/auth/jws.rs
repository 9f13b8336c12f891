//! Compact JWS (RFC 7515) and the JWT claim checks of RFC 7519, with keys prepared once.
//!
//! `jsonwebtoken::decode` derives the HMAC key from the secret on every call, parses the
//! header twice and the claims twice: an eighth of a request's CPU under load
//! (`bench/RESULTS.md`). Here an HMAC key is prepared when the configuration loads and
//! cloned per token, and the header and the claims are each parsed once, into only what
//! is checked. Public-key signatures are verified by `jsonwebtoken::crypto::verify`.
//!
//! Order matters: the signature is checked before any claim is read.

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
pub(super) enum HmacKey {
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
    pub(super) fn new(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        // HMAC takes keys of any length; the length rule is the configuration's.
        match alg {
            Algorithm::HS256 => Hmac::new_from_slice(secret).ok().map(Self::Hs256),
            Algorithm::HS384 => Hmac::new_from_slice(secret).ok().map(Self::Hs384),
            Algorithm::HS512 => Hmac::new_from_slice(secret).ok().map(Self::Hs512),
            _ => None,
        }
    }

    pub(super) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hs256(_) => Algorithm::HS256,
            Self::Hs384(_) => Algorithm::HS384,
            Self::Hs512(_) => Algorithm::HS512,
        }
    }

    /// Whether `signature` is this key's MAC of `input`, compared in constant time.
    pub(super) fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
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
pub(super) struct Expected {
    pub issuer: String,
    pub audience: String,
    /// Clock skew allowed for `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

impl Claims {
    /// `exp` (required) and `nbf` (when present) at `now`, `iss` and `aud` (required).
    /// `sub` and the tenant are the caller's to read.
    pub(super) fn check(&self, expected: &Expected, now: u64) -> Result<(), AuthError> {
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
        if let Some(nbf) = date("nbf", &self.nbf)?
            && nbf > now.saturating_add(expected.leeway)
        {
            return Err(invalid("not yet valid (nbf)"));
        }
        match &self.iss {
            Some(Value::String(iss)) if *iss == expected.issuer => {}
            None => return Err(invalid("missing claim \"iss\"")),
            Some(_) => return Err(invalid("wrong issuer")),
        }
        let ours = |v: &Value| v.as_str() == Some(expected.audience.as_str());
        match &self.aud {
            Some(aud @ Value::String(_)) if ours(aud) => {}
            Some(Value::Array(auds)) if auds.iter().any(ours) => {}
            None => return Err(invalid("missing claim \"aud\"")),
            Some(_) => return Err(invalid("wrong audience")),
        }
        Ok(())
    }
}

/// Reads [`Claims`] from a verified payload, refusing duplicate names. RFC 7519 lets a
/// parser keep the last of duplicate names; we refuse them, because a gateway whose
/// parser keeps the first would see a different tenant than we do.
pub(super) fn read_claims(payload: &[u8], tenant_claim: &str) -> Result<Claims, AuthError> {
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
    tenant_claim: &'a str,
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
                (name_is(self.tenant_claim), &mut claims.tenant),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tokens_have_exactly_three_non_empty_parts() {
        let parts = split("aGVhZA.cGF5.c2ln").unwrap();
        assert_eq!(parts.signing_input, "aGVhZA.cGF5");
        assert_eq!(
            (parts.header, parts.payload, parts.signature),
            ("aGVhZA", "cGF5", "c2ln")
        );
        for bad in ["", "a", "a.b", "a.b.", ".b.c", "a..c", "a.b.c.d", "a.b.c."] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
        assert!(decode("cGF5").is_ok());
        assert!(decode("cGF5==").is_err(), "padding is not base64url of JWS");
        assert!(decode("c+F/").is_err(), "standard alphabet");
    }

    fn header_of(json: &str) -> Result<Header, AuthError> {
        let encoded = base64_simd::URL_SAFE_NO_PAD.encode_to_string(json);
        header(&split(&format!("{encoded}.e30.c2ln")).unwrap())
    }

    #[test]
    fn headers_name_a_known_algorithm_once_and_no_critical_extension() {
        let h = header_of(r#"{"alg":"HS256","typ":"JWT","kid":"k1","jku":"http://x"}"#).unwrap();
        assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::HS256, Some("k1")));
        for bad in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"RS256","alg":"HS256"}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"["HS256"]"#,
            r#"{"alg":"HS256"} x"#,
        ] {
            assert!(header_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hmac_keys_check_their_own_algorithm_in_constant_time() {
        let secret = b"a-secret-of-at-least-thirty-two-bytes!";
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let key = HmacKey::new(alg, secret).unwrap();
            assert_eq!(key.algorithm(), alg);
            let encoding = jsonwebtoken::EncodingKey::from_secret(secret);
            let signature = jsonwebtoken::crypto::sign(b"h.p", &encoding, alg).unwrap();
            let signature = decode(&signature).unwrap();
            assert!(key.verifies(b"h.p", &signature), "{alg:?}");
            assert!(!key.verifies(b"h.q", &signature));
            assert!(!key.verifies(b"h.p", &signature[1..]));
            assert!(!key.verifies(b"h.p", &[]));
            assert!(!format!("{key:?}").contains("secret"));
        }
        assert!(HmacKey::new(Algorithm::RS256, secret).is_none());
    }

    fn claims(value: Value) -> Result<Claims, AuthError> {
        read_claims(value.to_string().as_bytes(), "tenant")
    }

    #[test]
    fn registered_claims_are_checked_with_leeway() {
        let expected = Expected {
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway: 30,
        };
        let now = 1_000_000;
        let base = json!({"exp": now + 60, "iss": "iss", "aud": "aud"});
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut value = base.clone();
            edit(&mut value);
            claims(value).unwrap().check(&expected, now)
        };
        assert!(with(&|_| {}).is_ok());
        assert!(
            with(&|c| c["exp"] = json!(now - 30)).is_ok(),
            "inside the leeway"
        );
        assert!(
            with(&|c| c["nbf"] = json!(now + 30)).is_ok(),
            "inside the leeway"
        );
        assert!(with(&|c| c["aud"] = json!(["x", "aud"])).is_ok());
        for (what, edit) in [
            (
                "expired",
                &(|c: &mut Value| c["exp"] = json!(now - 31)) as &dyn Fn(&mut Value),
            ),
            ("no exp", &|c| c["exp"] = Value::Null),
            ("exp as text", &|c| c["exp"] = json!((now + 60).to_string())),
            ("exp fractional", &|c| c["exp"] = json!(1e6 + 60.5)),
            ("exp negative", &|c| c["exp"] = json!(-1)),
            ("nbf ahead", &|c| c["nbf"] = json!(now + 31)),
            ("nbf as text", &|c| c["nbf"] = json!("0")),
            ("wrong issuer", &|c| c["iss"] = json!("other")),
            ("issuer list", &|c| c["iss"] = json!(["iss"])),
            ("no issuer", &|c| c["iss"] = Value::Null),
            ("wrong audience", &|c| c["aud"] = json!("other")),
            ("list without ours", &|c| c["aud"] = json!(["x", "y"])),
            ("empty list", &|c| c["aud"] = json!([])),
            ("no audience", &|c| c["aud"] = Value::Null),
        ] {
            let result = with(&|c| {
                edit(c);
                // Null stands for "remove".
                c.as_object_mut().unwrap().retain(|_, v| !v.is_null());
            });
            assert!(result.is_err(), "{what}");
        }
    }

    #[test]
    fn claims_are_read_once_and_duplicates_are_refused_however_spelled() {
        let read = claims(json!({"sub": "u", "tenant": "acme", "scope": "a b", "scp": ["c"], "other": {"x": [1, 2]}})).unwrap();
        assert_eq!(read.sub, Some(Value::from("u")));
        assert_eq!(read.tenant, Some(Value::from("acme")));
        assert_eq!(read.scope, Some(Value::from("a b")));
        assert_eq!(read.scp, Some(json!(["c"])));

        // An escaped name is the same name: a parser keeping the first would see "a".
        let error = read_claims(br#"{"tenant":"a","te\u006eant":"b"}"#, "tenant").unwrap_err();
        assert!(
            matches!(&error, AuthError::Invalid(r) if r.contains("duplicate claim \"tenant\"")),
            "{error:?}"
        );
        let error = read_claims(br#"{"x":1,"y":2,"x":3}"#, "tenant").unwrap_err();
        assert!(
            matches!(&error, AuthError::Invalid(r) if r.contains("duplicate")),
            "{error:?}"
        );

        // The tenant claim may be any name, even one the service also reads.
        let read = read_claims(br#"{"sub":"org-1"}"#, "sub").unwrap();
        assert_eq!(read.tenant, Some(Value::from("org-1")));
        assert_eq!(read.sub, Some(Value::from("org-1")));

        for not_claims in [&b"[1]"[..], b"\"s\"", b"{", b"{} {}"] {
            assert!(read_claims(not_claims, "tenant").is_err());
        }
    }
}
