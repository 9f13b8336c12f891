//! Tenant ids, parsed once: they name a tenant's section of the configuration, are the
//! value of the token's tenant claim, go into keys (`{tenant}`) and are bound into
//! multipart handles.

use std::fmt;

use super::MAX_TENANT_ID_LEN;

/// A tenant id: 1 to 64 lower-case ASCII letters, digits, `-` or `_` (safe in a key, a
/// metric label and a Redis key without escaping).
///
/// Serialized as its string; deserializing (a handle read back) checks it again.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant id {0:?}: 1 to 64 lower-case letters, digits, '-' or '_'")]
pub struct InvalidTenantId(String);

impl TenantId {
    /// `id`, if it is a tenant id.
    pub fn parse(id: impl Into<String>) -> Result<Self, InvalidTenantId> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_TENANT_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        match ok {
            true => Ok(Self(id)),
            false => Err(InvalidTenantId(id)),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;

    fn try_from(value: String) -> Result<Self, InvalidTenantId> {
        Self::parse(value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl PartialEq<String> for TenantId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_short_lower_case_words() {
        for ok in ["acme", "a", "globex-2", "dev_put", &"a".repeat(64)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "Acme", "a b", "a/b", "a.b", "é", &"a".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<TenantId>(r#""Acme""#).is_err());
        let id: TenantId = serde_json::from_str(r#""acme""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""acme""#);
    }
}
